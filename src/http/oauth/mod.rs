//! nexus-mcp as an OAuth 2.1 resource server (MCP authorization, 2025-11-25): access tokens are JWTs signed by the
//! configured issuer, checked against its JWKS ([`jwks`]) for signature, `iss`, `aud` (exactly this server's
//! `/mcp` URL, RFC 8707), `exp`/`nbf` with leeway and an allow-list of asymmetric algorithms. A token's scopes
//! become [`Grants`]; `sub` (with `client_id`/`azp`) becomes the caller. Tokens never go anywhere else.
//!
//! Also the Protected Resource Metadata (RFC 9728) and the `WWW-Authenticate` challenges that point clients to it.

pub mod jwks;

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::{Grants, ToolClass};
use crate::http::metrics::{Fetch, Rejected};
use crate::metrics::LabelledCounter;
use jwks::Jwks;

/// `[server.oauth]`, validated.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OAuthConfig {
    pub issuer: String,
    /// The canonical URL of this server's `/mcp`: the only `aud` accepted, and the metadata's `resource`.
    pub audience: String,
    /// `None`: found through the issuer's discovery document.
    pub jwks_url: Option<String>,
    #[serde(skip)]
    pub algorithms: Vec<Algorithm>,
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    pub scope_read: String,
    pub scope_write: String,
    pub scope_admin: String,
}

impl OAuthConfig {
    fn scope(&self, class: ToolClass) -> &str {
        match class {
            ToolClass::Read => &self.scope_read,
            ToolClass::Write => &self.scope_write,
            ToolClass::Admin => &self.scope_admin,
        }
    }
}

/// Who a valid token names, and what it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `sub`, with the client (`client_id` or `azp`) when present: `alice (client agent-1)`.
    pub caller: String,
    pub grants: Grants,
}

/// Why a token was not accepted. Messages never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is invalid: audience is not {0}")]
    WrongAudience(String),
    #[error("the access token is invalid: issuer is not {0}")]
    WrongIssuer(String),
    #[error("the access token is invalid: {0}")]
    Invalid(String),
    /// The issuer's keys could not be fetched (and none are cached): not the client's fault.
    #[error("the issuer's signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl TokenError {
    /// The `reason` label of `nexus_http_rejected_total` (bounded: one per variant).
    pub fn reason(&self) -> Rejected {
        match self {
            Self::Expired => Rejected::TokenExpired,
            Self::WrongAudience(_) => Rejected::BadAudience,
            Self::WrongIssuer(_) => Rejected::BadIssuer,
            Self::Invalid(_) => Rejected::TokenInvalid,
            Self::KeysUnavailable(_) => Rejected::AuthUnavailable,
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    /// RFC 9068 / RFC 8693: space-separated.
    #[serde(default)]
    scope: Option<String>,
    /// Some issuers (Azure, Okta) send a list.
    #[serde(default)]
    scp: Option<Value>,
}

/// Checks access tokens; cheap to share.
pub struct Verifier {
    config: OAuthConfig,
    validation: Validation,
    keys: Jwks,
}

impl Verifier {
    /// `fetches`: `nexus_oauth_jwks_fetches_total{outcome}`.
    pub fn new(config: OAuthConfig, fetches: LabelledCounter<Fetch>) -> Self {
        let mut validation = Validation::new(config.algorithms[0]);
        validation.algorithms = config.algorithms.clone();
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.required_spec_claims =
            HashSet::from(["exp", "iss", "aud", "sub"].map(String::from));
        let keys = Jwks::new(config.issuer.clone(), config.jwks_url.clone(), fetches);
        Self {
            config,
            validation,
            keys,
        }
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// Whether `token` is shaped like a JWT (three base64url parts), so it is checked here rather than against
    /// the static tokens.
    pub fn looks_like_jwt(token: &str) -> bool {
        let parts: Vec<&str> = token.split('.').collect();
        parts.len() == 3
            && parts[..2].iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    }

    /// Validates `token`.
    ///
    /// # Errors
    /// [`TokenError::Expired`], [`TokenError::Invalid`] (with the reason), or
    /// [`TokenError::KeysUnavailable`] when the issuer cannot be reached and no key is cached.
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Invalid(format!("unreadable header ({e})")))?;
        if let Some(typ) = &header.typ
            && !(typ.eq_ignore_ascii_case("at+jwt")
                || typ.eq_ignore_ascii_case("application/at+jwt")
                || typ.eq_ignore_ascii_case("JWT"))
        {
            return Err(TokenError::Invalid(format!(
                "typ {typ:?} is not an access token"
            )));
        }
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not allowed (server.oauth.algorithms)",
                header.alg
            )));
        }
        let key = self.keys.key_for(header.kid.as_deref(), header.alg).await?;
        // The crate checks every listed algorithm against the key's family: list only this token's (allowed) one.
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::Invalid("not valid yet (nbf)".into()),
                K::InvalidAudience => TokenError::WrongAudience(self.config.audience.clone()),
                K::InvalidIssuer => TokenError::WrongIssuer(self.config.issuer.clone()),
                K::InvalidSignature => TokenError::Invalid("bad signature".into()),
                K::MissingRequiredClaim(c) => TokenError::Invalid(format!("no `{c}` claim")),
                other => TokenError::Invalid(format!("{other:?}")),
            }
        })?;
        let claims = data.claims;
        let scopes = scopes(&claims);
        let grants = Grants {
            read: scopes.contains(self.config.scope_read.as_str()),
            write: scopes.contains(self.config.scope_write.as_str()),
            admin: scopes.contains(self.config.scope_admin.as_str()),
        };
        let client = claims.client_id.or(claims.azp);
        let caller = match client {
            Some(c) if c != claims.sub => format!("{} (client {c})", claims.sub),
            _ => claims.sub,
        };
        Ok(Principal { caller, grants })
    }

    /// The Protected Resource Metadata document (RFC 9728).
    pub fn metadata(&self) -> Value {
        json!({
            "resource": self.config.audience,
            "authorization_servers": [self.config.issuer],
            "scopes_supported": [self.config.scope_read, self.config.scope_write, self.config.scope_admin],
            "bearer_methods_supported": ["header"],
        })
    }

    /// The metadata's URL: RFC 9728 inserts `/.well-known/oauth-protected-resource` before the resource's path.
    pub fn metadata_url(&self) -> String {
        let audience = &self.config.audience;
        let after_scheme = audience.find("://").map_or(0, |i| i + 3);
        let path_start = audience[after_scheme..]
            .find('/')
            .map_or(audience.len(), |i| after_scheme + i);
        let (origin, path) = audience.split_at(path_start);
        format!(
            "{origin}/.well-known/oauth-protected-resource{}",
            path.trim_end_matches('/')
        )
    }

    /// `WWW-Authenticate` for a missing, invalid or expired token (401).
    pub fn challenge(&self, error: Option<&TokenError>) -> String {
        let mut value = format!(
            "Bearer resource_metadata=\"{}\", scope=\"{}\"",
            self.metadata_url(),
            self.config.scope_read
        );
        if let Some(e) = error {
            let description = e.to_string().replace(['"', '\\'], "'");
            value.push_str(&format!(
                ", error=\"invalid_token\", error_description=\"{description}\""
            ));
        }
        value
    }

    /// `WWW-Authenticate` for a token without the scope `class` needs (403).
    pub fn insufficient(&self, class: ToolClass) -> String {
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\"",
            self.config.scope(class),
            self.metadata_url()
        )
    }

    /// The scope `class` needs.
    pub fn scope_for(&self, class: ToolClass) -> &str {
        self.config.scope(class)
    }
}

fn scopes(claims: &Claims) -> HashSet<&str> {
    let mut out: HashSet<&str> = claims
        .scope
        .as_deref()
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    match &claims.scp {
        Some(Value::String(s)) => out.extend(s.split_whitespace()),
        Some(Value::Array(list)) => out.extend(list.iter().filter_map(Value::as_str)),
        _ => {}
    }
    out
}

/// Parses `server.oauth.algorithms`: asymmetric only.
///
/// # Errors
/// The name that is not an allowed algorithm.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg = match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "none" | "HS256" | "HS384" | "HS512" => {
            return Err(format!(
                "{name} is refused: only asymmetric algorithms (RS*, PS*, ES256, ES384, EdDSA) prove the issuer signed"
            ));
        }
        other => return Err(format!("unknown algorithm {other:?}")),
    };
    Ok(alg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(audience: &str) -> Verifier {
        let fetches = crate::metrics::LabelledCounter::register(
            &prometheus::Registry::new(),
            "f",
            "f",
            "outcome",
        );
        Verifier::new(
            OAuthConfig {
                issuer: "http://127.0.0.1:9/".into(),
                audience: audience.into(),
                jwks_url: None,
                algorithms: vec![Algorithm::RS256],
                leeway: Duration::from_secs(30),
                scope_read: "mongodb:read".into(),
                scope_write: "mongodb:write".into(),
                scope_admin: "mongodb:admin".into(),
            },
            fetches,
        )
    }

    #[test]
    fn metadata_url_inserts_the_well_known_path() {
        assert_eq!(
            verifier("https://nexus.example.com/mcp").metadata_url(),
            "https://nexus.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            verifier("http://127.0.0.1:3000").metadata_url(),
            "http://127.0.0.1:3000/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn only_asymmetric_algorithms_are_allowed() {
        assert!(parse_algorithm("RS256").is_ok());
        assert!(parse_algorithm("EdDSA").is_ok());
        for bad in ["none", "HS256", "rs256", ""] {
            assert!(parse_algorithm(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jwt_shapes() {
        assert!(Verifier::looks_like_jwt("eyJh.eyJz.sig"));
        assert!(Verifier::looks_like_jwt("eyJh.eyJz."));
        assert!(!Verifier::looks_like_jwt("alice-token"));
        assert!(!Verifier::looks_like_jwt("a.b"));
        assert!(!Verifier::looks_like_jwt("a..c"));
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let c: Claims =
            serde_json::from_value(json!({"sub": "a", "scope": "x y", "scp": ["z"]})).unwrap();
        assert_eq!(scopes(&c), HashSet::from(["x", "y", "z"]));
    }
}
