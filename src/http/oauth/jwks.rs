//! The issuer's signing keys: found through its discovery document (OpenID `/.well-known/openid-configuration`,
//! else RFC 8414 `/.well-known/oauth-authorization-server`) unless `server.oauth.jwks_url` names them, fetched with
//! a bounded timeout and size, cached, refetched when a token names an unknown `kid` (at most every
//! [`MIN_REFETCH`]) or when the cache is older than [`MAX_AGE`]. While the issuer is down, the cached keys keep
//! serving, and it is asked again no sooner than [`MIN_REFETCH`] after a failure.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::http::metrics::Fetch;
use crate::metrics::LabelledCounter;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::TokenError;

/// Per request to the issuer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Unknown key ids do not make the issuer a target: one refetch per this interval at most.
const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Keys rotate: refetch a cache this old on the next token.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// Discovery documents and key sets are small.
const MAX_BODY: usize = 1024 * 1024;

pub struct Jwks {
    issuer: String,
    configured_url: Option<String>,
    client: reqwest::Client,
    state: Mutex<State>,
    /// `nexus_oauth_jwks_fetches_total{outcome="ok"|"failed"}`.
    fetches: LabelledCounter<Fetch>,
}

#[derive(Default)]
struct State {
    url: Option<String>,
    set: Option<JwkSet>,
    fetched_at: Option<Instant>,
    /// The last refetch for a key id the cache did not know.
    refetched_for_kid_at: Option<Instant>,
    failed_at: Option<Instant>,
    last_error: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl Jwks {
    pub fn new(
        issuer: String,
        configured_url: Option<String>,
        fetches: LabelledCounter<Fetch>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client with static settings builds");
        Self {
            issuer,
            configured_url,
            client,
            state: Mutex::new(State::default()),
            fetches,
        }
    }

    /// The key that verifies a token with this `kid` (or, without one, the only key for `alg`).
    ///
    /// # Errors
    /// [`TokenError::Invalid`] for a key id the issuer does not publish; [`TokenError::KeysUnavailable`] when no
    /// keys could be fetched yet.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, TokenError> {
        let mut state = self.state.lock().await;
        let recent = |at: Option<Instant>| at.is_some_and(|at| at.elapsed() < MIN_REFETCH);
        let stale = state.fetched_at.is_none_or(|at| at.elapsed() >= MAX_AGE);
        let known = state
            .set
            .as_ref()
            .and_then(|set| find(set, kid, alg))
            .is_some();
        let fetch =
            !recent(state.failed_at) && (stale || (!known && !recent(state.refetched_for_kid_at)));
        if fetch {
            if !stale {
                state.refetched_for_kid_at = Some(Instant::now());
            }
            match self.fetch(&mut state).await {
                Ok(set) => {
                    self.fetches.inc(Fetch::Ok);
                    state.set = Some(set);
                    state.fetched_at = Some(Instant::now());
                    state.last_error = None;
                }
                Err(why) => {
                    self.fetches.inc(Fetch::Failed);
                    state.failed_at = Some(Instant::now());
                    tracing::warn!(issuer = %self.issuer, cause = %why, cached = state.set.is_some(),
                        "oauth: fetching the issuer's keys failed; keeping the cached ones");
                    state.last_error = Some(why);
                }
            }
        }
        let Some(set) = &state.set else {
            return Err(TokenError::KeysUnavailable(
                state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "not fetched yet".into()),
            ));
        };
        let jwk = find(set, kid, alg).ok_or_else(|| {
            TokenError::Invalid(match kid {
                Some(k) => format!("the issuer publishes no key {k:?}"),
                None => "no `kid`, and the issuer publishes more than one key".into(),
            })
        })?;
        DecodingKey::from_jwk(jwk)
            .map_err(|e| TokenError::Invalid(format!("unusable issuer key ({e})")))
    }

    async fn fetch(&self, state: &mut State) -> Result<JwkSet, String> {
        let url = match (&state.url, &self.configured_url) {
            (Some(url), _) | (None, Some(url)) => url.clone(),
            (None, None) => {
                let url = self.discover().await?;
                state.url = Some(url.clone());
                url
            }
        };
        let body = self.get(&url).await?;
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not a JWK set ({e})"))
    }

    async fn discover(&self) -> Result<String, String> {
        let issuer = self.issuer.trim_end_matches('/');
        let after_scheme = issuer.find("://").map_or(0, |i| i + 3);
        let (origin, path) = issuer.split_at(
            issuer[after_scheme..]
                .find('/')
                .map_or(issuer.len(), |i| after_scheme + i),
        );
        let candidates = [
            format!("{issuer}/.well-known/openid-configuration"),
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
        ];
        let mut errors = Vec::new();
        for url in candidates {
            match self.get(&url).await {
                Ok(body) => match serde_json::from_slice::<Discovery>(&body) {
                    Ok(d) => return Ok(d.jwks_uri),
                    Err(e) => errors.push(format!("{url}: no jwks_uri ({e})")),
                },
                Err(e) => errors.push(e),
            }
        }
        Err(errors.join("; "))
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::error::first_line(&e.to_string())))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{url}: {}", crate::error::first_line(&e.to_string())))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(format!("{url}: larger than {MAX_BODY} bytes"));
            }
        }
        Ok(body)
    }
}

/// The key named `kid`, or without a `kid` the only key usable with `alg`.
fn find<'a>(
    set: &'a JwkSet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<&'a jsonwebtoken::jwk::Jwk> {
    match kid {
        Some(kid) => set.find(kid),
        None => {
            let family = alg.family();
            let mut usable = set
                .keys
                .iter()
                .filter(|k| DecodingKey::from_jwk(k).is_ok_and(|d| d.family() == family));
            let first = usable.next();
            usable.next().is_none().then_some(first).flatten()
        }
    }
}
