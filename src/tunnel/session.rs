//! One SSH session to the bastion, through the ProxyJump chain if any: connect, verify each hop's host key,
//! authenticate, and notice when any hop is lost.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use russh::Preferred;
use russh::client::{self, DisconnectReason, Handle};
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKeyOrCertificate};
use std::borrow::Cow;
use tokio_util::sync::CancellationToken;

use super::config::{HostKeyPolicy, SshEndpoint, TunnelConfig};
use super::error::TunnelError;
use super::host_keys::{self, Verdict};
use super::{auth, keeper};

/// An established session. Dropping it closes every hop.
pub(super) struct Session {
    /// The jump hosts' sessions, outermost first; kept alive because the bastion's transport runs through them.
    _jumps: Vec<Handle<Client>>,
    /// The session with the bastion: forwards are opened here.
    pub(super) handle: Handle<Client>,
    /// Fires when any hop is lost.
    pub(super) loss: Arc<Loss>,
    /// The PTY session that turns off Nagle on the bastion (when enabled and granted).
    _keeper: Option<keeper::Keeper>,
}

/// The one-shot "this session is gone" signal, shared by every hop's handler and by the forward.
#[derive(Default)]
pub(super) struct Loss {
    token: CancellationToken,
    reason: OnceLock<String>,
}

impl Loss {
    /// Records the first reason and wakes every waiter. Later calls keep the first reason.
    pub(super) fn lose(&self, reason: impl Into<String>) {
        let _ = self.reason.set(reason.into());
        self.token.cancel();
    }

    pub(super) fn is_lost(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Waits for the loss and returns its reason.
    pub(super) async fn lost(&self) -> String {
        self.token.cancelled().await;
        self.reason
            .get()
            .cloned()
            .unwrap_or_else(|| "closed".into())
    }

    /// A token cancelled on loss, for forwarded connections to select on.
    pub(super) fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

/// The russh handler of one hop: host key policy and loss detection.
pub(super) struct Client {
    endpoint: SshEndpoint,
    known_hosts: std::path::PathBuf,
    policy: HostKeyPolicy,
    /// Why the host key was refused, for the connect error (russh only says "unknown key").
    refusal: Arc<Mutex<Option<TunnelError>>>,
    loss: Arc<Loss>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = offered.public_key();
        match host_keys::verify_offered(&self.endpoint, offered, &self.known_hosts, self.policy) {
            Verdict::Trusted => Ok(true),
            Verdict::Learned => {
                tracing::warn!(
                    endpoint = %self.endpoint,
                    fingerprint = %key.fingerprint(russh::keys::HashAlg::Sha256),
                    known_hosts = %self.known_hosts.display(),
                    "learned the host key of a new host (host_key_policy = accept-new)"
                );
                Ok(true)
            }
            Verdict::AcceptedInsecurely => {
                tracing::warn!(
                    endpoint = %self.endpoint,
                    fingerprint = %key.fingerprint(russh::keys::HashAlg::Sha256),
                    "INSECURE: host key NOT verified (host_key_policy = insecure-accept-any); anyone on the path \
                     can intercept this session and the database traffic"
                );
                Ok(true)
            }
            Verdict::Refused(e) => {
                *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Ok(false)
            }
        }
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let text = match &reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                format!(
                    "{} closed the session: {:?} {}",
                    self.endpoint, info.reason_code, info.message
                )
            }
            DisconnectReason::Error(e) => format!("{}: {e}", self.endpoint),
        };
        self.loss.lose(text);
        match reason {
            DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// Connects to the bastion through every jump host, verifying and authenticating each hop.
///
/// # Errors
/// The first hop that fails, classified ([`TunnelError::class`]).
pub(super) async fn connect(cfg: &TunnelConfig) -> Result<Session, TunnelError> {
    let loss = Arc::new(Loss::default());
    let mut hops = cfg.jumps.iter().chain(std::iter::once(&cfg.bastion));
    let first = hops.next().expect("the bastion is always a hop");
    let mut handle = connect_hop(cfg, &loss, first, None).await?;
    let mut jumps = Vec::new();
    let mut previous = first;
    for hop in hops {
        let channel = tokio::time::timeout(
            cfg.connect_timeout,
            handle.channel_open_direct_tcpip(hop.host.clone(), u32::from(hop.port), "127.0.0.1", 0),
        )
        .await
        .map_err(|_| TunnelError::ConnectTimeout {
            endpoint: hop.to_string(),
            timeout_ms: cfg.connect_timeout.as_millis(),
        })?
        .map_err(|e| TunnelError::Unreachable {
            endpoint: hop.to_string(),
            reason: format!("jump host {previous} could not open a connection to it: {e}"),
        })?;
        let next = connect_hop(cfg, &loss, hop, Some(channel.into_stream())).await?;
        jumps.push(handle);
        handle = next;
        previous = hop;
    }
    let keeper = if cfg.pty_keeper {
        keeper::start(&handle, &cfg.bastion).await
    } else {
        None
    };
    Ok(Session {
        _jumps: jumps,
        handle,
        loss,
        _keeper: keeper,
    })
}

type HopStream = russh::ChannelStream<client::Msg>;

/// The client configuration for `hop`: host certificate algorithms are offered only when known_hosts lists an
/// authority for it (otherwise a server with a certificate would present it and be refused for lack of one).
fn hop_config(cfg: &TunnelConfig, hop: &SshEndpoint) -> Arc<client::Config> {
    const CERTIFICATES: &[Algorithm] = &[
        Algorithm::Ed25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
    ];
    let certificates = cfg.host_key_policy != HostKeyPolicy::InsecureAcceptAny
        && host_keys::has_authority(hop, &cfg.known_hosts);
    Arc::new(client::Config {
        keepalive_interval: Some(cfg.keepalive_interval),
        keepalive_max: cfg.keepalive_max,
        // Forwarded MongoDB traffic is request/response: never wait for Nagle.
        nodelay: true,
        inactivity_timeout: None,
        preferred: Preferred {
            host_key_certificates: Cow::Borrowed(if certificates { CERTIFICATES } else { &[] }),
            ..Preferred::DEFAULT
        },
        ..client::Config::default()
    })
}

async fn connect_hop(
    cfg: &TunnelConfig,
    loss: &Arc<Loss>,
    hop: &SshEndpoint,
    through: Option<HopStream>,
) -> Result<Handle<Client>, TunnelError> {
    let refusal = Arc::new(Mutex::new(None));
    let handler = Client {
        endpoint: hop.clone(),
        known_hosts: cfg.known_hosts.clone(),
        policy: cfg.host_key_policy,
        refusal: refusal.clone(),
        loss: loss.clone(),
    };
    let ssh = hop_config(cfg, hop);
    let attempt = async {
        let connected = match through {
            None => client::connect(ssh.clone(), (hop.host.as_str(), hop.port), handler).await,
            Some(stream) => client::connect_stream(ssh.clone(), stream, handler).await,
        };
        let mut handle = connected.map_err(|e| {
            let refused = refusal.lock().unwrap_or_else(|p| p.into_inner()).take();
            refused.unwrap_or_else(|| TunnelError::Unreachable {
                endpoint: hop.to_string(),
                reason: describe(&e),
            })
        })?;
        auth::authenticate(&mut handle, hop, &cfg.auth).await?;
        Ok(handle)
    };
    timeout(cfg.connect_timeout, hop, attempt).await
}

async fn timeout<T>(
    limit: Duration,
    hop: &SshEndpoint,
    fut: impl Future<Output = Result<T, TunnelError>>,
) -> Result<T, TunnelError> {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
        Err(TunnelError::ConnectTimeout {
            endpoint: hop.to_string(),
            timeout_ms: limit.as_millis(),
        })
    })
}

/// A russh error as one lowercase line (russh errors can nest an io error).
pub(super) fn describe(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io.to_string(),
        other => other.to_string(),
    }
}
