//! Why a tunnel operation failed. Messages name the hop (`user@host:port`) and never a secret.

use crate::error::ErrorClass;

/// A tunnel failure; [`TunnelError::class`] maps it to the error class users see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "{endpoint} did not complete the SSH handshake and authentication within {timeout_ms} ms"
    )]
    ConnectTimeout { endpoint: String, timeout_ms: u128 },
    #[error(
        "host key of {endpoint} is not in {known_hosts} (offered {fingerprint}); add it (ssh-keyscan, or \
         host_key_policy = \"accept-new\" once) after checking the fingerprint out of band"
    )]
    HostKeyUnknown {
        endpoint: String,
        known_hosts: String,
        fingerprint: String,
    },
    #[error(
        "HOST KEY MISMATCH for {endpoint}: {known_hosts} line {line} records another key, the server offered \
         {fingerprint}; this may be an attack, refusing to connect"
    )]
    HostKeyMismatch {
        endpoint: String,
        known_hosts: String,
        line: usize,
        fingerprint: String,
    },
    #[error(
        "host key of {endpoint} ({fingerprint}) is marked @revoked in {known_hosts}: refusing to connect"
    )]
    HostKeyRevoked {
        endpoint: String,
        known_hosts: String,
        fingerprint: String,
    },
    #[error(
        "host certificate of {endpoint} ({certificate}) refused: {reason}; known_hosts {known_hosts} must list its \
         signer as `@cert-authority` for this host, and the certificate must be a valid host certificate naming it"
    )]
    HostCertificateRefused {
        endpoint: String,
        known_hosts: String,
        certificate: String,
        reason: String,
    },
    #[error(
        "the {what} of the host certificate of {endpoint} ({fingerprint}) is marked @revoked in {known_hosts}: \
         refusing to connect"
    )]
    HostCertificateRevoked {
        endpoint: String,
        known_hosts: String,
        what: &'static str,
        fingerprint: String,
    },
    #[error("cannot check the host key of {endpoint}: {reason}")]
    KnownHosts { endpoint: String, reason: String },
    #[error("authentication as {endpoint} failed; tried: {tried}")]
    AuthFailed { endpoint: String, tried: String },
    #[error("cannot use private key {path}: {reason}")]
    PrivateKey { path: String, reason: String },
    #[error("cannot use certificate {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("the bastion refused to forward to {target}: {reason}")]
    ForwardRefused { target: String, reason: String },
    #[error("no SSH session: {0}")]
    Down(String),
    #[error("SSH session lost: {0}")]
    SessionLost(String),
    #[error("cannot bind {what} {addr}: {reason}")]
    Bind {
        what: &'static str,
        addr: String,
        reason: String,
    },
    #[error(
        "tunnel.local_listen {addr} is in use by another process (another nexus-mcp?); set another port, or port \
         0 when nothing else needs to know it"
    )]
    AddressInUse { addr: String },
}

impl TunnelError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Unreachable { .. }
            | Self::ConnectTimeout { .. }
            | Self::Down(_)
            | Self::SessionLost(_) => ErrorClass::SshUnreachable,
            Self::HostKeyUnknown { .. }
            | Self::KnownHosts { .. }
            | Self::HostCertificateRefused { .. } => ErrorClass::SshHostKeyUnknown,
            Self::HostKeyMismatch { .. }
            | Self::HostKeyRevoked { .. }
            | Self::HostCertificateRevoked { .. } => ErrorClass::SshHostKeyMismatch,
            Self::AuthFailed { .. } | Self::PrivateKey { .. } | Self::Certificate { .. } => {
                ErrorClass::SshAuthFailed
            }
            Self::ForwardRefused { .. } => ErrorClass::SshForwardRefused,
            Self::Bind { .. } => ErrorClass::ConfigInvalid,
            Self::AddressInUse { .. } => ErrorClass::AddressInUse,
        }
    }
}
