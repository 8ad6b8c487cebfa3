//! The tunnel's lifecycle, published on a `watch` channel for health checks, status and tool errors.

use std::time::{Duration, Instant};

use crate::error::ErrorClass;

/// Where the tunnel is in its lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelState {
    /// Attempt `attempt` (1-based, counted since the last established session) is under way.
    Connecting { attempt: u32 },
    /// A session is established; forwarded connections are served.
    Up { since: Instant },
    /// The last attempt failed or the session was lost; the next attempt starts at `next_try`.
    Reconnecting {
        /// Failed attempts since the last established session.
        attempt: u32,
        next_try: Instant,
        error: ErrorClass,
        /// The failure, for logs and `check`; no secrets, but host names: not for probe bodies.
        message: String,
    },
    /// Shut down.
    Stopped,
}

impl TunnelState {
    pub fn is_up(&self) -> bool {
        matches!(self, Self::Up { .. })
    }

    /// A sentence for tool errors and status: "SSH tunnel reconnecting: attempt 3, next try in 1.6s".
    pub fn describe(&self) -> String {
        match self {
            Self::Connecting { attempt } => format!("SSH tunnel connecting: attempt {attempt}"),
            Self::Up { .. } => "SSH tunnel up".into(),
            Self::Reconnecting {
                attempt,
                next_try,
                error,
                ..
            } => {
                let wait = next_try.saturating_duration_since(Instant::now());
                format!(
                    "SSH tunnel reconnecting ({}): attempt {}, next try in {}",
                    error.summary(),
                    attempt + 1,
                    short_duration(wait)
                )
            }
            Self::Stopped => "SSH tunnel stopped".into(),
        }
    }
}

fn short_duration(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_retry_state_for_users() {
        let s = TunnelState::Reconnecting {
            attempt: 2,
            next_try: Instant::now() + Duration::from_millis(1650),
            error: ErrorClass::SshUnreachable,
            message: "cannot reach u@h:22: connection refused".into(),
        };
        let text = s.describe();
        assert!(
            text.starts_with("SSH tunnel reconnecting (unreachable): attempt 3, next try in 1."),
            "{text}"
        );
    }
}
