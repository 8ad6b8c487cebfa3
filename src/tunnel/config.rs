//! The tunnel's validated configuration: which hops to take, how to authenticate, which host keys to trust and
//! what to forward. Built by the config loader, which sits above; the tunnel never parses config.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// How an unknown or changed bastion host key is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Unknown or changed key: refuse (log the offered key's fingerprint). The default.
    Strict,
    /// Unknown key: learn it into known_hosts. Changed key: refuse.
    AcceptNew,
    /// Accept any key, with a loud warning at every connect. Never in production.
    InsecureAcceptAny,
}

/// How the driver reaches MongoDB through the bastion (`tunnel.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelMode {
    /// The SOCKS route when the URI needs every member (several hosts, `replicaSet=`, `mongodb+srv://`, TLS);
    /// else the fixed forward.
    Auto,
    /// One fixed local forward to one host (the driver connects to it directly).
    Forward,
    /// A SOCKS5 route whose every connection is a channel to the host *name* the driver asks for.
    Socks,
}

/// One SSH hop: the bastion or a jump host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SshEndpoint {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for SshEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host, self.port)
    }
}

/// Credentials, tried in this order: agent, key files, password; certificates first wherever a key has one.
#[derive(Clone, Debug, Serialize)]
pub struct SshAuth {
    pub agent: bool,
    /// With the agent, offer only its identities matching a configured key or certificate (`IdentitiesOnly`).
    pub identities_only: bool,
    /// Private key files, tried in order (`ssh.private_key`, or the ssh_config's IdentityFile entries).
    pub private_keys: Vec<PathBuf>,
    /// User certificates (`ssh.certificate`, CertificateFile), each presented with the key — file or agent — it
    /// certifies. A key file's `<key>-cert.pub` is used too, as OpenSSH does.
    pub certificates: Vec<PathBuf>,
    /// Decrypts the key files.
    pub private_key_passphrase: Option<Secret>,
    pub password: Option<Secret>,
}

/// The SSH tunnel: how to reach the bastion and what to forward.
#[derive(Clone, Debug, Serialize)]
pub struct TunnelConfig {
    /// Jump hosts in order (ProxyJump), then the bastion last.
    pub jumps: Vec<SshEndpoint>,
    pub bastion: SshEndpoint,
    pub auth: SshAuth,
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    pub keepalive_max: usize,
    /// Open a PTY session so the bastion's sshd sends with TCP_NODELAY (see `tunnel::keeper`).
    pub pty_keeper: bool,
    #[serde(with = "humantime_serde")]
    pub reconnect_min_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub reconnect_max_delay: Duration,
    pub local_listen: SocketAddr,
    /// `local_listen` may be a non-loopback address (an explicit, logged opt-in).
    pub insecure_public_forward: bool,
    /// The fixed forward's target (host, port) as seen from the bastion; `None`: no fixed forward (nothing names
    /// one host, e.g. `mongodb+srv://` without `tunnel.remote_host`).
    pub forward_to: Option<(String, u16)>,
    /// Serve the SOCKS5 route (the driver dials each member by name through it).
    pub socks: bool,
    /// What the route must reach (the forward's target, or every seed host): opened by `probe_forward`.
    pub targets: Vec<(String, u16)>,
    pub max_connections: usize,
}
