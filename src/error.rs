//! The error classes a user sees.
//!
//! Every failure in nexus-mcp maps to one [`ErrorClass`]: it labels log lines, `check` output, tool errors and
//! metrics, and its [`ErrorClass::summary`] is the only error text that probe bodies expose. Classes carry no
//! detail on purpose: nothing here can leak a host name, URI, user name or secret.

use std::fmt;

/// What went wrong, at the granularity an operator acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorClass {
    /// Configuration is missing or invalid; fix the named key and restart.
    ConfigInvalid,
    /// The bastion (or a jump host) does not answer, or the session was lost.
    SshUnreachable,
    /// The bastion's host key is not in known_hosts and the policy refuses to learn it.
    SshHostKeyUnknown,
    /// The bastion offered a different host key than known_hosts records: possible interception.
    SshHostKeyMismatch,
    /// The bastion refused every configured credential (or a key could not be decrypted).
    SshAuthFailed,
    /// The bastion refused to open the forward to the MongoDB host (policy or target unreachable from it).
    SshForwardRefused,
    /// A local address nexus-mcp must listen on is taken (another process, often another nexus-mcp).
    AddressInUse,
    /// MongoDB did not answer through the tunnel.
    MongoUnreachable,
    /// MongoDB refused the credentials in the URI.
    MongoAuthFailed,
    /// MongoDB answered too slowly.
    MongoTimeout,
    /// A guard refused the request before it reached MongoDB.
    QueryRejected,
    /// MongoDB rejected the request; its message is passed through.
    QueryFailed,
}

impl ErrorClass {
    /// The stable machine name, e.g. `SSH_HOST_KEY_MISMATCH` (metrics labels, logs, `check`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigInvalid => "CONFIG_INVALID",
            Self::SshUnreachable => "SSH_UNREACHABLE",
            Self::SshHostKeyUnknown => "SSH_HOST_KEY_UNKNOWN",
            Self::SshHostKeyMismatch => "SSH_HOST_KEY_MISMATCH",
            Self::SshAuthFailed => "SSH_AUTH_FAILED",
            Self::SshForwardRefused => "SSH_FORWARD_REFUSED",
            Self::AddressInUse => "ADDRESS_IN_USE",
            Self::MongoUnreachable => "MONGO_UNREACHABLE",
            Self::MongoAuthFailed => "MONGO_AUTH_FAILED",
            Self::MongoTimeout => "MONGO_TIMEOUT",
            Self::QueryRejected => "QUERY_REJECTED",
            Self::QueryFailed => "QUERY_FAILED",
        }
    }

    /// A short sanitized phrase for probe bodies and status resources, e.g. "host key mismatch".
    pub fn summary(self) -> &'static str {
        match self {
            Self::ConfigInvalid => "invalid configuration",
            Self::SshUnreachable | Self::MongoUnreachable => "unreachable",
            Self::SshHostKeyUnknown => "host key unknown",
            Self::SshHostKeyMismatch => "host key mismatch",
            Self::SshAuthFailed | Self::MongoAuthFailed => "authentication failed",
            Self::SshForwardRefused => "forward refused",
            Self::AddressInUse => "address in use",
            Self::MongoTimeout => "timeout",
            Self::QueryRejected => "query rejected",
            Self::QueryFailed => "query failed",
        }
    }
}

/// The first line of a (dependency's) error message, trimmed: user-facing errors are one line.
pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
