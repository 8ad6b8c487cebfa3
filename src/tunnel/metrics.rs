//! The tunnel's metrics (`nexus_tunnel_*`) and the label values its code uses.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::error::ErrorClass;
use crate::metrics::{
    LabelledCounter, counter_vec, gauge, label_set, latency_histogram, opts, register,
};

label_set! {
    /// Why a local connection was closed without being carried.
    pub enum Refusal {
        /// No SSH session.
        Down = "down",
        /// `tunnel.max_connections` reached.
        Limit = "limit",
        /// The bastion did not open the channel.
        OpenFailed = "open_failed",
        /// A SOCKS5 client that did not complete the handshake.
        SocksHandshake = "socks_handshake",
    }
}

label_set! {
    /// The local route a connection arrived on.
    pub enum Route {
        /// The fixed forward to `tunnel.forward_to`.
        Forward = "forward",
        /// The SOCKS5 route to the host and port asked for.
        Socks = "socks",
    }
}

/// The SSH tunnel.
#[derive(Clone)]
pub struct TunnelMetrics {
    /// `nexus_tunnel_up`: 1 while an authenticated SSH session is established.
    pub up: IntGauge,
    /// `nexus_tunnel_reconnects_total`: sessions re-established after a loss.
    pub reconnects: IntCounter,
    /// `nexus_tunnel_connect_duration_seconds`: TCP connect + handshake + auth over every hop.
    pub connect_duration: Histogram,
    /// `nexus_tunnel_channels_active`: forwarded connections open right now.
    pub channels_active: IntGauge,
    /// `nexus_tunnel_bytes_total{direction="tx"}`: bytes sent toward MongoDB.
    pub bytes_tx: IntCounter,
    /// `nexus_tunnel_bytes_total{direction="rx"}`: bytes received from MongoDB.
    pub bytes_rx: IntCounter,
    /// `nexus_tunnel_connections_refused_total{reason}`: local connections closed at once.
    pub refused: LabelledCounter<Refusal>,
    /// `nexus_tunnel_channels_opened_total{route}`: channels opened for local connections, by route.
    pub channels_opened: LabelledCounter<Route>,
    /// `nexus_tunnel_connect_failures_total{class}`: failed attempts to establish the SSH session, by error class
    /// (`SSH_HOST_KEY_MISMATCH` is a security event).
    pub connect_failures: IntCounterVec,
}

/// The SSH connect failures by class, pre-created so a dashboard sees zeros.
pub const CONNECT_FAILURE_CLASSES: [ErrorClass; 5] = [
    ErrorClass::SshUnreachable,
    ErrorClass::SshHostKeyUnknown,
    ErrorClass::SshHostKeyMismatch,
    ErrorClass::SshAuthFailed,
    ErrorClass::ConfigInvalid,
];

impl TunnelMetrics {
    pub(crate) fn register(r: &Registry) -> Self {
        let bytes = counter_vec(
            r,
            "tunnel_bytes_total",
            "Bytes carried by the SSH forward: direction=tx toward MongoDB, rx from MongoDB.",
            &["direction"],
        );
        let refused = LabelledCounter::register(
            r,
            "tunnel_connections_refused_total",
            "Local connections to the forward closed at once: reason=down (no SSH session), limit \
             (tunnel.max_connections reached), open_failed (the bastion did not open the channel), socks_handshake \
             (a SOCKS5 client that did not complete the handshake).",
            "reason",
        );
        let channels_opened = LabelledCounter::register(
            r,
            "tunnel_channels_opened_total",
            "Channels opened through the SSH session for local connections: route=forward (the fixed forward) or \
             socks (the route the driver dials each member by name through).",
            "route",
        );
        let connect_failures = counter_vec(
            r,
            "tunnel_connect_failures_total",
            "Failed attempts to establish the SSH session, by error class (SSH_HOST_KEY_MISMATCH: possible \
             interception).",
            &["class"],
        );
        for class in CONNECT_FAILURE_CLASSES {
            connect_failures.with_label_values(&[class.as_str()]);
        }
        Self {
            up: gauge(
                r,
                "tunnel_up",
                "Whether an authenticated SSH session to the bastion is established: 1 or 0.",
            ),
            reconnects: register(
                r,
                IntCounter::with_opts(opts(
                    "tunnel_reconnects_total",
                    "SSH sessions re-established after the previous one was lost.",
                ))
                .expect("valid metric"),
            ),
            connect_duration: latency_histogram(
                r,
                "tunnel_connect_duration_seconds",
                "Time to establish an SSH session: TCP connect, handshake and authentication over every hop.",
            ),
            channels_active: gauge(
                r,
                "tunnel_channels_active",
                "Forwarded connections open through the SSH session.",
            ),
            bytes_tx: bytes.with_label_values(&["tx"]),
            bytes_rx: bytes.with_label_values(&["rx"]),
            refused,
            channels_opened,
            connect_failures,
        }
    }
}
