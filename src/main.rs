//! The `brainstorm` command line: `stdio` for one MCP client, `serve` for many over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use brainstorm::config::Config;
use brainstorm::service::Service;
use brainstorm::service::identity::check_client_id_override;
use brainstorm::transport;

/// Coordination service for AI agents over MCP: projects, messages and shared resources
/// with etag locking, stored in one redb database file.
#[derive(Parser)]
#[command(name = "brainstorm", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Settings {
    /// Data folder holding brainstorm.redb [default: ~/.brainstorm].
    #[arg(long, global = true, env = "BRAINSTORM_STORAGE", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Largest resource content or message payload accepted, in bytes.
    #[arg(long, global = true, env = "BRAINSTORM_MAX_PAYLOAD_SIZE", value_name = "BYTES",
          default_value_t = Config::DEFAULT_MAX_PAYLOAD_SIZE)]
    max_payload_size: usize,

    /// Time an unread message is kept before it expires, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = Config::DEFAULT_MESSAGE_TTL_SECS)]
    message_ttl: u64,

    /// Long-poll duration when a call sets wait without timeout_seconds, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 50)]
    wait_default: u64,

    /// Longest long-poll a call may request with timeout_seconds, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 3600)]
    wait_max: u64,

    /// Interval between progress notifications during a long-poll, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    progress_interval: u64,

    /// Concurrent long-polls allowed per inbox, resource or project.
    #[arg(long, global = true, value_name = "COUNT", default_value_t = 100)]
    max_waiters: usize,

    /// Log filter for stderr, for example "info" or "brainstorm=debug,rmcp=warn".
    #[arg(
        long,
        global = true,
        env = "BRAINSTORM_LOG",
        value_name = "FILTER",
        default_value = "info,rmcp=warn"
    )]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one MCP client over stdin and stdout (what an MCP client launches).
    Stdio,
    /// Serve many MCP clients over streamable HTTP at /mcp.
    Serve {
        /// Address and port to listen on; keep it on loopback unless a proxy guards it.
        #[arg(long, value_name = "ADDR:PORT", default_value = transport::http::DEFAULT_LISTEN)]
        listen: SocketAddr,
    },
}

fn init_logging(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|err| {
        eprintln!("brainstorm: invalid --log filter {filter:?} ({err}); using \"info\"");
        EnvFilter::new("info")
    });
    // Standard output carries MCP frames on stdio, so logs go to standard error at every level.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn config(settings: &Settings, stdio: bool) -> anyhow::Result<Config> {
    let data_dir = settings
        .data_dir
        .clone()
        .unwrap_or_else(Config::default_data_dir);
    let mut config = Config::new(data_dir);
    config.max_payload_size = settings.max_payload_size;
    config.message_ttl = Duration::from_secs(settings.message_ttl);
    config.default_wait = Duration::from_secs(settings.wait_default.min(settings.wait_max));
    config.max_wait = Duration::from_secs(settings.wait_max);
    config.progress_interval = Duration::from_secs(settings.progress_interval);
    config.max_waiters = settings.max_waiters;
    // The client id override names the one client of a stdio process; over HTTP every client
    // brings its own working directory.
    if stdio {
        if let Ok(value) = std::env::var("BRAINSTORM_CLIENT_ID") {
            config.client_id_override =
                Some(check_client_id_override(&value).map_err(anyhow::Error::msg)?);
        }
    }
    Ok(config)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let stdio = matches!(cli.command, Command::Stdio);
    let config = config(&cli.settings, stdio)?;
    info!(version = env!("CARGO_PKG_VERSION"), data_dir = %config.data_dir.display(), "brainstorm starting");
    let service = Service::open(config)?;
    match cli.command {
        Command::Stdio => transport::stdio::serve(service).await?,
        Command::Serve { listen } => transport::http::serve(service, listen).await?,
    }
    info!("brainstorm stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.settings.log);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = %err, "brainstorm failed");
            eprintln!("brainstorm: {err}");
            ExitCode::FAILURE
        }
    }
}
