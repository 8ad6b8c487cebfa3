//! SSH user authentication: ssh-agent, then the private keys, then the password — each only if configured.
//! Certificates come first wherever a key has one: those the agent holds, the certificate files (`ssh.certificate`,
//! CertificateFile) presented with the key — file or agent — they certify, and `<key>-cert.pub` beside a key file
//! (as OpenSSH does). A certificate that cannot log in as the user (expired, other principals) is not offered, and
//! the error says why. Keys and certificates are read at every connect, so renewed files are picked up on the next
//! reconnect.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Certificate, PrivateKey, PrivateKeyWithHashAlg, PublicKey, decode_secret_key};

use super::certs;
use super::config::{SshAuth, SshEndpoint};
use super::error::TunnelError;
use super::session::{Client, describe};

/// What was tried, and why usable-looking credentials were not offered: the text of the final error.
#[derive(Default)]
struct Attempts {
    tried: Vec<String>,
    notes: Vec<String>,
}

impl Attempts {
    fn failed(self, hop: &SshEndpoint) -> TunnelError {
        let mut tried = self.tried.join(", ");
        if tried.is_empty() {
            tried = "nothing usable".into();
        }
        for note in self.notes {
            tried.push_str("; ");
            tried.push_str(&note);
        }
        TunnelError::AuthFailed {
            endpoint: hop.to_string(),
            tried,
        }
    }

    /// A certificate offered and refused: what the server needs for it to work.
    fn refused_certificate(&mut self, source: &str, cert: &Certificate, user: &str) {
        self.tried.push(format!("certificate {source}"));
        self.notes.push(format!(
            "the server refused certificate {source} ({}) for user {user:?}: it must trust the signing CA \
             (TrustedUserCAKeys) and accept one of the principals for this user",
            certs::describe(cert)
        ));
    }
}

/// A certificate file, read and checked for this user.
struct CertFile {
    path: PathBuf,
    cert: Certificate,
}

/// Authenticates `hop.user` with each configured method in turn.
///
/// # Errors
/// [`TunnelError::AuthFailed`] naming the methods tried and why a certificate was refused or not offered,
/// [`TunnelError::PrivateKey`] when a key or certificate cannot be read or decrypted, [`TunnelError::SessionLost`]
/// when the server goes away meanwhile.
pub(super) async fn authenticate(
    handle: &mut Handle<Client>,
    hop: &SshEndpoint,
    auth: &SshAuth,
) -> Result<(), TunnelError> {
    let mut attempts = Attempts::default();
    let now = certs::now();
    let mut certificates = Vec::new();
    for path in &auth.certificates {
        if let Some(c) = usable_certificate(path, &hop.user, now, &mut attempts)? {
            certificates.push(c);
        }
    }
    if auth.agent {
        attempts.tried.push("agent".into());
        if with_agent(handle, hop, auth, &certificates, now, &mut attempts).await? {
            return Ok(());
        }
    }
    for path in &auth.private_keys {
        let key = Arc::new(read_key(path, auth)?);
        let mut mine: Vec<&CertFile> = certificates
            .iter()
            .filter(|c| c.cert.public_key() == key.public_key().key_data())
            .collect();
        let beside = sidecar(path);
        let beside = match beside.exists() {
            true => usable_certificate(&beside, &hop.user, now, &mut attempts)?,
            false => None,
        };
        mine.extend(beside.iter());
        for c in mine {
            let result = handle
                .authenticate_openssh_cert(hop.user.clone(), key.clone(), c.cert.clone())
                .await
                .map_err(|e| lost(hop, &e))?;
            if result.success() {
                return Ok(());
            }
            attempts.refused_certificate(&c.path.display().to_string(), &c.cert, &hop.user);
        }
        attempts.tried.push(format!("publickey {}", path.display()));
        let hash = rsa_hash(handle, key.algorithm()).await;
        let result = handle
            .authenticate_publickey(hop.user.clone(), PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(|e| lost(hop, &e))?;
        if result.success() {
            return Ok(());
        }
    }
    if let Some(password) = &auth.password {
        attempts.tried.push("password".into());
        let result = handle
            .authenticate_password(hop.user.clone(), password.expose())
            .await
            .map_err(|e| lost(hop, &e))?;
        if result.success() {
            return Ok(());
        }
    }
    Err(attempts.failed(hop))
}

/// `<key>-cert.pub`: where OpenSSH looks for a key file's certificate.
fn sidecar(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push("-cert.pub");
    PathBuf::from(name)
}

/// Reads the certificate at `path`; `None` (with a note saying why) when it cannot log in as `user` now.
fn usable_certificate(
    path: &Path,
    user: &str,
    now: u64,
    attempts: &mut Attempts,
) -> Result<Option<CertFile>, TunnelError> {
    let cert = certs::read_certificate(path).map_err(|reason| TunnelError::Certificate {
        path: path.display().to_string(),
        reason,
    })?;
    Ok(match certs::user_certificate_problem(&cert, user, now) {
        Some(why) => {
            attempts.notes.push(format!(
                "certificate {} ({}) not offered: {why}",
                path.display(),
                certs::describe(&cert)
            ));
            None
        }
        None => Some(CertFile {
            path: path.to_path_buf(),
            cert,
        }),
    })
}

fn read_key(path: &Path, auth: &SshAuth) -> Result<PrivateKey, TunnelError> {
    let passphrase = auth.private_key_passphrase.as_ref().map(|s| s.expose());
    let text = crate::files::read_text_bounded(path, crate::files::MAX_SECRET).map_err(|e| {
        TunnelError::PrivateKey {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    })?;
    decode_secret_key(&text, passphrase).map_err(|e| TunnelError::PrivateKey {
        path: path.display().to_string(),
        reason: key_error(&e, passphrase.is_some()),
    })
}

/// Public keys of the configured identities (`<key>.pub` beside each key file, and each certificate's key): with
/// `IdentitiesOnly`, the only agent identities offered.
fn configured_keys(auth: &SshAuth, certificates: &[CertFile]) -> Vec<KeyData> {
    let mut keys: Vec<KeyData> = certificates
        .iter()
        .map(|c| c.cert.public_key().clone())
        .collect();
    for path in &auth.private_keys {
        let mut public = path.as_os_str().to_owned();
        public.push(".pub");
        if let Ok(text) =
            crate::files::read_text_bounded(Path::new(&public), crate::files::MAX_SECRET)
            && let Ok(key) = PublicKey::from_openssh(text.trim())
        {
            keys.push(key.key_data().clone());
        }
    }
    keys
}

/// Tries the agent's identities: its certificates, the certificate files whose key it holds, then its keys. A
/// missing agent is a warning, not a failure: the other methods may still succeed.
async fn with_agent(
    handle: &mut Handle<Client>,
    hop: &SshEndpoint,
    auth: &SshAuth,
    certificates: &[CertFile],
    now: u64,
    attempts: &mut Attempts,
) -> Result<bool, TunnelError> {
    let mut agent = match AgentClient::connect_env().await {
        Ok(agent) => agent,
        Err(e) => {
            tracing::warn!(cause = %e, "ssh.agent = true but no ssh-agent answers at $SSH_AUTH_SOCK");
            return Ok(false);
        }
    };
    let identities = match agent.request_identities().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(cause = %e, "ssh-agent did not list its identities");
            return Ok(false);
        }
    };
    let configured = auth
        .identities_only
        .then(|| configured_keys(auth, certificates));
    let allowed = |key: &KeyData| configured.as_ref().is_none_or(|c| c.contains(key));
    for identity in identities {
        let key = identity.public_key().into_owned();
        let hash = rsa_hash(handle, key.algorithm()).await;
        let mut offer: Vec<(String, Certificate)> = Vec::new();
        if let AgentIdentity::Certificate { certificate, .. } = &identity {
            let source = format!("held by the agent ({:?})", identity.comment());
            match certs::user_certificate_problem(certificate, &hop.user, now) {
                Some(why) => attempts.notes.push(format!(
                    "certificate {source} ({}) not offered: {why}",
                    certs::describe(certificate)
                )),
                None if allowed(certificate.public_key()) => {
                    offer.push((source, certificate.clone()));
                }
                None => {}
            }
        } else {
            offer.extend(
                certificates
                    .iter()
                    .filter(|c| c.cert.public_key() == key.key_data())
                    .map(|c| (c.path.display().to_string(), c.cert.clone())),
            );
        }
        for (source, cert) in offer {
            match handle
                .authenticate_certificate_with(hop.user.clone(), cert.clone(), hash, &mut agent)
                .await
            {
                Ok(result) if result.success() => return Ok(true),
                Ok(_) => attempts.refused_certificate(&source, &cert, &hop.user),
                Err(e) => agent_error(hop, e)?,
            }
        }
        if matches!(identity, AgentIdentity::Certificate { .. }) || !allowed(key.key_data()) {
            continue;
        }
        match handle
            .authenticate_publickey_with(hop.user.clone(), key, hash, &mut agent)
            .await
        {
            Ok(result) if result.success() => return Ok(true),
            Ok(_) => {}
            Err(e) => agent_error(hop, e)?,
        }
    }
    Ok(false)
}

/// The session went away (an error), or the agent could not sign with one identity (logged, the next is tried).
fn agent_error(hop: &SshEndpoint, e: russh::AgentAuthError) -> Result<(), TunnelError> {
    match e {
        russh::AgentAuthError::Send(_) => Err(TunnelError::SessionLost(format!(
            "{hop} went away during authentication"
        ))),
        e => {
            tracing::debug!(cause = %e, "ssh-agent could not sign with one identity");
            Ok(())
        }
    }
}

/// The signature hash the server prefers for RSA keys (`None` for other algorithms).
async fn rsa_hash(
    handle: &Handle<Client>,
    algorithm: russh::keys::Algorithm,
) -> Option<russh::keys::HashAlg> {
    if algorithm.is_rsa() {
        handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten()
    } else {
        None
    }
}

fn lost(hop: &SshEndpoint, e: &russh::Error) -> TunnelError {
    TunnelError::SessionLost(format!("{hop} during authentication: {}", describe(e)))
}

fn key_error(e: &russh::keys::Error, had_passphrase: bool) -> String {
    match e {
        russh::keys::Error::KeyIsEncrypted => {
            "the key is encrypted: set ssh.private_key_passphrase_file (or ssh.private_key_passphrase)".into()
        }
        russh::keys::Error::IO(io) => io.to_string(),
        _ if had_passphrase => "cannot decrypt the key: wrong passphrase, or not an OpenSSH/PEM private key".into(),
        other => format!("not a usable private key: {other}"),
    }
}
