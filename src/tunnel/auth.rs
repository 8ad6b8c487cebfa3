//! SSH user authentication: ssh-agent, then the private key, then the password — each only if configured.
//! Keys are read at every connect, so a rotated key file is picked up on the next reconnect.

use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, decode_secret_key};

use super::error::TunnelError;
use super::session::{Client, describe};
use crate::config::{SshAuth, SshEndpoint};

/// Authenticates `hop.user` with each configured method in turn.
///
/// # Errors
/// [`TunnelError::AuthFailed`] naming the methods tried, [`TunnelError::PrivateKey`] when the key cannot be read or
/// decrypted, [`TunnelError::SessionLost`] when the server goes away meanwhile.
pub(super) async fn authenticate(
    handle: &mut Handle<Client>,
    hop: &SshEndpoint,
    auth: &SshAuth,
) -> Result<(), TunnelError> {
    let mut tried = Vec::new();
    if auth.agent {
        tried.push("agent");
        if with_agent(handle, hop).await? {
            return Ok(());
        }
    }
    if let Some(path) = &auth.private_key {
        tried.push("publickey");
        let passphrase = auth.private_key_passphrase.as_ref().map(|s| s.expose());
        let text =
            crate::files::read_text_bounded(path, crate::files::MAX_SECRET).map_err(|e| {
                TunnelError::PrivateKey {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
        let key = decode_secret_key(&text, passphrase).map_err(|e| TunnelError::PrivateKey {
            path: path.display().to_string(),
            reason: key_error(&e, passphrase.is_some()),
        })?;
        let hash = rsa_hash(handle, key.algorithm()).await;
        let result = handle
            .authenticate_publickey(
                hop.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(|e| lost(hop, &e))?;
        if result.success() {
            return Ok(());
        }
    }
    if let Some(password) = &auth.password {
        tried.push("password");
        let result = handle
            .authenticate_password(hop.user.clone(), password.expose())
            .await
            .map_err(|e| lost(hop, &e))?;
        if result.success() {
            return Ok(());
        }
    }
    Err(TunnelError::AuthFailed {
        endpoint: hop.to_string(),
        tried: tried.join(", "),
    })
}

/// Tries every identity of the agent at `$SSH_AUTH_SOCK`. A missing agent is a warning, not a failure: the
/// other methods may still succeed.
async fn with_agent(handle: &mut Handle<Client>, hop: &SshEndpoint) -> Result<bool, TunnelError> {
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
    for identity in identities {
        let key = identity.public_key().into_owned();
        let hash = rsa_hash(handle, key.algorithm()).await;
        match handle
            .authenticate_publickey_with(hop.user.clone(), key, hash, &mut agent)
            .await
        {
            Ok(result) if result.success() => return Ok(true),
            Ok(_) => {}
            Err(russh::AgentAuthError::Send(_)) => {
                return Err(TunnelError::SessionLost(format!(
                    "{hop} went away during authentication"
                )));
            }
            Err(e) => tracing::debug!(cause = %e, "ssh-agent could not sign with one identity"),
        }
    }
    Ok(false)
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
