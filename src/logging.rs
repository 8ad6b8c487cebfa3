//! Logging: the `[log]` settings and the `tracing` subscriber the binary installs (stderr: stdout is the protocol
//! in stdio mode). The settings are built by the config loader; `main` installs the subscriber once.

use std::io::IsTerminal as _;

use serde::{Deserialize, Serialize};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    Json,
    Pretty,
}

/// Logging.
#[derive(Clone, Debug, Serialize)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// Installs the global subscriber: `RUST_LOG` if set, else `log.level` (dependencies quietened).
pub fn init(log: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(quiet_deps(&log.level)));
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .with_ansi(!json && std::io::stderr().is_terminal());
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.init();
    }
}

/// Dependencies log at `warn` unless the level names them: rmcp's INFO lines carry debug dumps of every request
/// and session (fast_socks5: two per driver connection), which drown our own lines (`log.level = "info,rmcp=info"` brings them back).
fn quiet_deps(level: &str) -> String {
    const QUIET: [&str; 3] = ["rmcp", "mongodb", "fast_socks5"];
    let mut filter = level.to_string();
    for dep in QUIET {
        if !level.contains(dep) {
            filter.push_str(&format!(",{dep}=warn"));
        }
    }
    filter
}
