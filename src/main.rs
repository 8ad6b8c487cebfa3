//! The `nexus-mcp` binary: CLI → config → tracing → app, and exit codes.
//!
//! Exit codes: 0 success; 1 `health` probe not 200; 64 configuration error (names the key); 69 `server.listen`
//! in use by another process; 70 unexpected error; `check`: 11 tunnel stage failed, 12 mongodb stage failed, 13 mcp stage failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use nexus_mcp::config::{self, Config, ConfigError, Sources};
use nexus_mcp::http::Transport;
use nexus_mcp::logging::{self, LogConfig};
use nexus_mcp::metrics::Metrics;
use nexus_mcp::{app, probe, supervisor};

const EXIT_CONFIG: u8 = 64;
const EXIT_SOFTWARE: u8 = 70;
/// `server.listen` is taken by another process (sysexits' EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Parser)]
#[command(
    name = "nexus-mcp",
    version,
    about = "MCP server for MongoDB behind an SSH bastion: one process, in-process self-healing tunnel",
    args_conflicts_with_subcommands = true,
    after_help = "Exit codes: 0 ok, 1 health probe not 200, 64 config error, 69 listen address in use, \
                  70 unexpected error, \
                  check: 11 tunnel, 12 mongodb, 13 mcp stage failed."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default command).
    Serve(ServeArgs),
    /// Run each startup stage once and print one line per stage; exit non-zero at the first failing stage.
    Check(ConfigArgs),
    /// Probe a health endpoint (for Docker HEALTHCHECK); exit 0 iff it answers 200.
    Health {
        /// The probe URL.
        #[arg(long, default_value = "http://127.0.0.1:3000/health")]
        url: String,
        /// Give up after this long.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(Args, Default)]
struct ConfigArgs {
    /// TOML config file (layered over the built-in defaults; env and flags override it).
    #[arg(long, env = "NEXUS_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args, Default)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// MCP transport: Streamable HTTP on --listen, or stdin/stdout.
    #[arg(long, value_enum)]
    transport: Option<Transport>,
    /// HTTP listen address (IP:PORT) for /mcp and the probes.
    #[arg(long)]
    listen: Option<String>,
    /// Serve a non-loopback address without bearer tokens (anyone who reaches the port can query the database).
    #[arg(long)]
    insecure_no_auth: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nexus-mcp: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_SOFTWARE);
        }
    };
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => {
            let mut sources =
                Sources::from_process(args.config.config, args.transport, args.listen);
            sources.insecure_no_auth = args.insecure_no_auth;
            let Some(config) = load(sources) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            logging::init(&config.log);
            if config.server.insecure_no_auth && !config.server.listen.ip().is_loopback() {
                tracing::warn!(
                    listen = %config.server.listen,
                    "INSECURE: --insecure-no-auth: /mcp accepts unauthenticated requests from any host that reaches \
                     this port"
                );
            }
            for t in config
                .targets
                .iter()
                .filter_map(|t| t.tunnel.as_ref())
                .filter(|t| !t.local_listen.ip().is_loopback())
            {
                tracing::warn!(
                    local_listen = %t.local_listen,
                    "INSECURE: tunnel.insecure_public_forward: the forward to MongoDB listens beyond loopback; whoever \
                     reaches it bypasses tokens, read-only mode and the allow lists"
                );
            }
            let code = runtime.block_on(serve(config));
            // A read of stdin blocks a runtime thread until the host closes it; it must not hold up the exit.
            runtime.shutdown_timeout(Duration::from_millis(500));
            code
        }
        Command::Check(args) => {
            let Some(config) = load(Sources::from_process(args.config, None, None)) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            logging::init(&LogConfig {
                level: "warn".into(),
                ..config.log.clone()
            });
            runtime.block_on(check(config))
        }
        Command::Health { url, timeout } => {
            match runtime.block_on(probe::get_status(&url, timeout)) {
                Ok(200) => ExitCode::SUCCESS,
                Ok(code) => {
                    eprintln!("nexus-mcp health: {url} answered {code}");
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("nexus-mcp health: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn load(sources: Sources) -> Option<Config> {
    match config::load(&sources) {
        Ok(config) => Some(config),
        Err(e) => {
            eprintln!("nexus-mcp: configuration error: {e}");
            None
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    match app::serve(config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ConfigError>().is_some() => {
            eprintln!("nexus-mcp: configuration error: {e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) if e.downcast_ref::<app::AddressInUse>().is_some() => {
            eprintln!("nexus-mcp: {e:#}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
        Err(e) => {
            tracing::error!(cause = format!("{e:#}"), "nexus-mcp failed");
            ExitCode::from(EXIT_SOFTWARE)
        }
    }
}

/// `check`: each target's stages once (with named targets, a `target <name>` block each, separated by a blank
/// line); the exit code is that of the first failing stage of a required target.
async fn check(config: Config) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    let mut failed_required = false;
    for (i, target) in config.targets.iter().enumerate() {
        if config.named {
            if i > 0 {
                println!();
            }
            let optional = if target.required { "" } else { " (optional)" };
            println!("target {}{optional}", target.name);
        }
        let metrics = Metrics::new().target(None);
        let (lines, failed) =
            supervisor::check(target, &metrics, || "tools registered".into()).await;
        for line in &lines {
            let ms = line.took.as_secs_f64() * 1e3;
            match &line.outcome {
                Ok(detail) => println!("{:<8} ok      {ms:>8.1} ms  {detail}", line.stage),
                Err((class, why)) => {
                    println!("{:<8} FAILED  {ms:>8.1} ms  {class}: {why}", line.stage)
                }
            }
        }
        if let Some(stage) = failed {
            for skipped in supervisor::STARTUP.iter().filter(|s| s.stage > stage) {
                println!("{:<8} skipped", skipped.stage.as_str());
            }
            if target.required && !failed_required {
                failed_required = true;
                code = ExitCode::from(11 + stage as u8);
            }
        }
        // After the stages: what the tunnel used, and where each value came from (nexus-mcp's config,
        // ssh_config, defaults).
        for s in &target.ssh_settings {
            println!("ssh      {:<19} {}  (from {})", s.key, s.value, s.origin);
        }
    }
    code
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when the future is first
/// polled: a host may send SIGTERM right after the handshake, before startup reaches its first await.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let (mut term, mut int) = match (term, int) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(cause = %e, "cannot listen for SIGTERM/SIGINT; stop the process with SIGKILL");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
        }
    }
}
