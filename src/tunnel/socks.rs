//! The SOCKS5 route (RFC 1928, with RFC 1929 username/password): each local connection names a host and port,
//! and is carried over a new channel to exactly that, as the bastion resolves it. The MongoDB driver reaches every
//! replica-set member this way — monitoring and pool connections alike — without local DNS or URI rewriting.
//!
//! Only this process's driver may use it: it listens on 127.0.0.1, requires a random per-process password
//! (compared in constant time), and the whole handshake must finish within `ssh.connect_timeout`. Only CONNECT is
//! supported (no BIND, no UDP).

use std::net::SocketAddr;

use fast_socks5::server::Socks5ServerProtocol;
use fast_socks5::{ReplyError, Socks5Command};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use super::Shared;
use super::error::TunnelError;
use super::listen::pipe;
use super::metrics::{Refusal, Route};

/// A fresh password for the route: 128 random bits, hex.
pub(super) fn random_password() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Reads the SOCKS5 request, opens a channel to its target and carries the connection over it.
pub(super) async fn carry(socket: TcpStream, peer: SocketAddr, shared: &Shared) {
    let Some(route) = &shared.socks else {
        return;
    };
    let expected: [u8; 32] = Sha256::digest(route.password.expose().as_bytes()).into();
    let handshake = async {
        let (protocol, _) = Socks5ServerProtocol::accept_password_auth(socket, |user, pass| {
            let digest: [u8; 32] = Sha256::digest(pass.as_bytes()).into();
            let diff = digest
                .iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            (diff == 0 && user == route.username).then_some(())
        })
        .await?;
        protocol.read_command().await
    };
    let (protocol, command, target) =
        match tokio::time::timeout(shared.config.connect_timeout, handshake).await {
            Ok(Ok(request)) => request,
            Ok(Err(e)) => return refuse_handshake(shared, peer, &e.to_string()),
            Err(_) => return refuse_handshake(shared, peer, "no complete request in time"),
        };
    if command != Socks5Command::TCPConnect {
        let _ = protocol.reply_error(&ReplyError::CommandNotSupported).await;
        return refuse_handshake(shared, peer, "only CONNECT is supported");
    }
    let (host, port) = target.into_string_and_port();
    match shared.dial(&host, port, Some(peer)).await {
        Ok((channel, lost)) => {
            let bound = SocketAddr::from(([0, 0, 0, 0], 0));
            match protocol.reply_success(bound).await {
                Ok(socket) => pipe(socket, channel, lost, peer, shared, Route::Socks).await,
                Err(e) => {
                    tracing::debug!(%peer, cause = %e, "tunnel: socks client left before the reply")
                }
            }
        }
        Err(e) => {
            shared.refused(Refusal::OpenFailed);
            let reply = match &e {
                TunnelError::ForwardRefused { .. } => ReplyError::ConnectionRefused,
                _ => ReplyError::NetworkUnreachable,
            };
            // A member the bastion cannot reach is the driver's business (it marks it unknown): debug only.
            tracing::debug!(target = %format_args!("{host}:{port}"), cause = %e, "tunnel: socks target not opened");
            let _ = protocol.reply_error(&reply).await;
        }
    }
}

fn refuse_handshake(shared: &Shared, peer: SocketAddr, why: &str) {
    shared.refused(Refusal::SocksHandshake);
    tracing::debug!(%peer, why, "tunnel: socks handshake refused");
}
