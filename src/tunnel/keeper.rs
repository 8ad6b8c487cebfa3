//! The PTY keeper: makes OpenSSH's sshd turn off Nagle's algorithm for our connection.
//!
//! sshd sets `TCP_NODELAY` on a connection only when a session on it runs with a PTY (OpenSSH's
//! `ssh_packet_set_interactive`; the first session decides). A connection used only for `direct-tcpip` forwards
//! keeps Nagle on, and MongoDB's reply batches then stall on delayed ACKs: bulk reads through `ssh -L` or a plain
//! forward run about 10× slower than direct. The keeper opens one session channel, requests a PTY and runs `cat`
//! (which waits on its stdin forever and prints nothing). A bastion that refuses (`PermitTTY no`, a forced
//! command, no shell) only leaves Nagle on: the tunnel works either way. Enabled by `ssh.pty_keeper`.

use std::time::Duration;

use russh::ChannelMsg;
use russh::client::Handle;
use tokio::task::JoinHandle;

use super::config::SshEndpoint;
use super::session::Client;

/// How long the bastion gets to answer the PTY request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// The keeper's channel drain; aborted when the session is dropped.
pub(super) struct Keeper(JoinHandle<()>);

impl Drop for Keeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens the keeper session; `None` (logged once at info) when the bastion refuses it.
pub(super) async fn start(handle: &Handle<Client>, bastion: &SshEndpoint) -> Option<Keeper> {
    let mut channel = match handle.channel_open_session().await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(%bastion, cause = %e, "bastion refused a session channel: bulk reads keep Nagle's delays");
            return None;
        }
    };
    if channel
        .request_pty(true, "dumb", 80, 24, 0, 0, &[])
        .await
        .is_err()
    {
        return None;
    }
    let granted = tokio::time::timeout(REPLY_TIMEOUT, async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Success => return true,
                ChannelMsg::Failure => return false,
                _ => {}
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !granted {
        tracing::info!(%bastion, "bastion refused a PTY (PermitTTY no?): bulk reads keep Nagle's delays");
        let _ = channel.close().await;
        return None;
    }
    if channel.exec(false, "cat").await.is_err() {
        return None;
    }
    tracing::debug!(%bastion, "PTY keeper session open: the bastion sends with TCP_NODELAY");
    // Drain whatever the session says (a forced command's banner, its exit) so it never holds up the connection.
    Some(Keeper(tokio::spawn(async move {
        while channel.wait().await.is_some() {}
    })))
}
