//! The `brainstorm` command line: `stdio` for one MCP client, `serve` for many over HTTP,
//! `audit` for the audit trail and `bench` for load tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use brainstorm::bench::BenchArgs;
use brainstorm::config::Config;
use brainstorm::import::ImportOptions;
use brainstorm::service::Service;
use brainstorm::service::identity::check_client_id_override;
use brainstorm::storage::{StorageError, Store, maintenance};
use brainstorm::transport;
use brainstorm::transport::http::{HttpEndpoint, HttpOptions};
use brainstorm::transport::owner;

/// Coordination service for AI agents over MCP: projects, messages and shared resources
/// with etag locking, stored in one redb database file.
#[derive(Parser)]
#[command(
    name = "brainstorm",
    version,
    about,
    long_about = None,
    after_help = "Environment: BRAINSTORM_CLIENT_ID (stdio) replaces the client id derived from the \
                  working directory, 1 to 256 characters."
)]
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
          default_value_t = Config::DEFAULT_MAX_PAYLOAD_SIZE, value_parser = at_least_one)]
    max_payload_size: usize,

    /// Time an unread message is kept before it expires, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = Config::DEFAULT_MESSAGE_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    message_ttl: u64,

    /// Long-poll duration when a call sets wait without timeout_seconds, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 50)]
    wait_default: u64,

    /// Maximum long-poll a call may request with timeout_seconds, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 3600)]
    wait_max: u64,

    /// Interval between progress notifications during a long-poll, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    progress_interval: u64,

    /// Concurrent long-polls allowed per inbox, resource or project.
    #[arg(long, global = true, value_name = "COUNT", default_value_t = 100, value_parser = at_least_one)]
    max_waiters: usize,

    /// Most write calls committed together in one transaction (group commit); 1 commits each
    /// call on its own.
    #[arg(long, global = true, value_name = "COUNT", default_value_t = 256, value_parser = at_least_one)]
    commit_batch_max: usize,

    /// Skip the disk sync at commit: much faster, but a crash loses recent acknowledged writes.
    #[arg(long, global = true)]
    unsafe_no_sync: bool,

    /// Maximum unread messages in an agent's inbox in one project. Sends past it fail with
    /// INBOX_FULL.
    #[arg(long, global = true, value_name = "COUNT", default_value_t = 10_000, value_parser = at_least_one)]
    max_inbox: usize,

    /// Concurrent long-polls allowed in the whole process.
    #[arg(long, global = true, value_name = "COUNT", default_value_t = 1000, value_parser = at_least_one)]
    max_long_polls: usize,

    /// Log filter for stderr, for example "info" or "brainstorm=debug,rmcp=warn" [default:
    /// "info,rmcp=warn" for stdio, serve and bench, "warn" for the one-shot commands].
    #[arg(long, global = true, env = "BRAINSTORM_LOG", value_name = "FILTER")]
    log: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one MCP client over stdin and stdout (what an MCP client launches).
    Stdio,
    /// Serve many MCP clients over streamable HTTP at /mcp.
    Serve(ServeArgs),
    /// Print the audit trail: one line per mutating call, oldest first.
    Audit(AuditArgs),
    /// Write a consistent copy of the database, safe while agents keep writing.
    Backup(BackupArgs),
    /// Print the schema version, file size, rows per table and the largest projects, as JSON.
    Stats,
    /// Check the file's integrity and the schema's invariants; exit 1 on any violation.
    /// Needs the file to itself: stop brainstorm processes on the data folder first.
    Check,
    /// Shrink the database file (offline: stop brainstorm processes on the data folder first).
    Compact,
    /// Replace the database with a checked backup, keeping the replaced file beside it
    /// (offline: stop brainstorm processes on the data folder first).
    Restore {
        /// Backup file to restore, as written by `brainstorm backup`.
        source: PathBuf,
    },
    /// Import the data folder of the original TypeScript server, one transaction per project
    /// (offline: stop brainstorm processes on the data folder first).
    Import(ImportArgs),
    /// Load-test a server with concurrent agents over MCP and check that nothing is lost.
    Bench(BenchArgs),
}

#[derive(Args)]
struct ImportArgs {
    /// The original server's data folder (what its BRAINSTORM_STORAGE named, by default
    /// ~/.brainstorm on the machine it ran on).
    folder: PathBuf,

    /// Home folder of the machine the data comes from: a file reference under it that is
    /// missing at its recorded path is looked for at the same place under this HOME.
    #[arg(long, value_name = "DIR")]
    original_home: Option<PathBuf>,

    /// Read and check everything and print the report, but write nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct BackupArgs {
    /// File to write; it must not exist yet.
    destination: PathBuf,

    /// Open the written backup and run redb's integrity check on it.
    #[arg(long)]
    verify: bool,
}

#[derive(Args)]
struct AuditArgs {
    /// Only calls in this project.
    #[arg(long, value_name = "PROJECT_ID")]
    project: Option<String>,

    /// Only calls that acted as this agent.
    #[arg(long, value_name = "AGENT_NAME")]
    agent: Option<String>,

    /// Only records with a sequence number after this one.
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    after: u64,

    /// Maximum records to print (at most 1000).
    #[arg(long, value_name = "COUNT", default_value_t = 100)]
    limit: u64,

    /// Print the records as one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// Address and port to listen on. A non-loopback address requires the token.
    #[arg(long, env = "BRAINSTORM_LISTEN", value_name = "ADDR:PORT",
          default_value = transport::http::DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Require the bearer token on every request, even on loopback.
    #[arg(long)]
    require_token: bool,

    /// File holding the bearer token [default: the data folder's token file, created 0600].
    #[arg(long, value_name = "PATH", conflicts_with = "token_env")]
    token_file: Option<PathBuf>,

    /// Bearer token itself; prefer --token-file, which keeps it out of the process list.
    #[arg(
        long = "token",
        env = "BRAINSTORM_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token_env: Option<String>,

    /// Largest request body accepted, in bytes; larger requests get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    max_body_size: usize,

    /// Most concurrent MCP sessions (clients of protocol versions with sessions).
    #[arg(long, value_name = "COUNT", default_value_t = 1000)]
    max_sessions: usize,
}

/// Parses a count or size that must be at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(value) => Ok(value),
        Err(err) => Err(format!("not a whole number: {err}")),
    }
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

/// Resolves the data folder: a leading `~` means HOME, since an MCP client's configuration
/// passes the value without a shell to expand it.
fn data_dir(settings: &Settings) -> anyhow::Result<PathBuf> {
    let Some(given) = settings.data_dir.clone() else {
        return Ok(Config::default_data_dir());
    };
    let text = given.to_string_lossy();
    let rest = match text.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
        _ => return check_folder(given),
    };
    let home = brainstorm::config::home_dir()
        .ok_or_else(|| anyhow::anyhow!("--data-dir {text:?} starts with ~ but HOME is not set"))?;
    check_folder(home.join(rest))
}

/// Fails when `path` exists and is not a folder.
fn check_folder(path: PathBuf) -> anyhow::Result<PathBuf> {
    if path.exists() && !path.is_dir() {
        anyhow::bail!(
            "the data folder {} is a file, not a folder; pass a folder with --data-dir",
            path.display()
        );
    }
    Ok(path)
}

/// Fails when the data folder has no database yet, so that a mistyped --data-dir is not
/// taken for an empty service.
fn require_database(config: &Config) -> anyhow::Result<()> {
    let path = config.database_path();
    if !path.exists() {
        anyhow::bail!(
            "no database at {}; check --data-dir or BRAINSTORM_STORAGE (the default is \
             ~/.brainstorm), or start brainstorm once to create it",
            path.display()
        );
    }
    Ok(())
}

fn config(settings: &Settings, stdio: bool) -> anyhow::Result<Config> {
    let mut config = Config::new(data_dir(settings)?);
    config.max_payload_size = settings.max_payload_size;
    config.message_ttl = Duration::from_secs(settings.message_ttl);
    if settings.wait_default > settings.wait_max {
        anyhow::bail!(
            "--wait-default {} is longer than --wait-max {}; lower the default or raise the maximum",
            settings.wait_default,
            settings.wait_max
        );
    }
    config.default_wait = Duration::from_secs(settings.wait_default);
    config.max_wait = Duration::from_secs(settings.wait_max);
    config.progress_interval = Duration::from_secs(settings.progress_interval);
    config.max_waiters = settings.max_waiters;
    config.max_inbox = settings.max_inbox;
    config.max_long_polls = settings.max_long_polls;
    config.commit.max_batch = settings.commit_batch_max;
    if settings.unsafe_no_sync {
        config.commit.durability = redb::Durability::None;
    }
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
    // The load generator starts its own servers, so it uses none of the service settings.
    let command = match cli.command {
        Command::Bench(args) => return brainstorm::bench::run(args).await,
        command => command,
    };
    let stdio = matches!(command, Command::Stdio);
    let mut config = config(&cli.settings, stdio)?;
    info!(version = env!("CARGO_PKG_VERSION"), data_dir = %config.data_dir.display(), "brainstorm starting");
    let reads_existing = matches!(
        command,
        Command::Audit(_) | Command::Backup(_) | Command::Stats | Command::Check | Command::Compact
    );
    if reads_existing {
        require_database(&config)?;
    }
    match command {
        Command::Stdio => transport::forward::serve(config).await?,
        Command::Audit(args) => audit(config, args).await?,
        Command::Backup(args) => backup(config, args).await?,
        Command::Check => {
            let path = config.database_path();
            let violations = tokio::task::spawn_blocking(move || maintenance::check(&path))
                .await?
                .map_err(|err| offline_error(&config, err))?;
            for violation in &violations {
                println!("{violation}");
            }
            if !violations.is_empty() {
                anyhow::bail!("{} violation(s) found", violations.len());
            }
            println!("check passed: integrity and invariants hold");
        }
        Command::Compact => {
            let path = config.database_path();
            let (before, after) = tokio::task::spawn_blocking(move || maintenance::compact(&path))
                .await?
                .map_err(|err| offline_error(&config, err))?;
            println!(
                "compacted {}: {before} bytes before, {after} bytes after",
                config.database_path().display()
            );
        }
        Command::Restore { source } => {
            let database = config.database_path();
            let kept =
                tokio::task::spawn_blocking(move || maintenance::restore(&source, &database))
                    .await?
                    .map_err(|err| offline_error(&config, err))?;
            if let Some(kept) = kept {
                println!("replaced file kept as {}", kept.display());
            }
            let stats = transport::admin::stats(&config).await?;
            println!("restored {}", config.database_path().display());
            println!("{}", serde_json::to_string_pretty(&stats["rows"])?);
        }
        Command::Stats => {
            let stats = transport::admin::stats(&config).await?;
            println!("{}", serde_json::to_string_pretty(&stats)?);
        }
        Command::Import(args) => import(config, args).await?,
        Command::Serve(args) => {
            config.max_body_bytes = args.max_body_size;
            config.max_sessions = args.max_sessions;
            serve(config, args).await?
        }
        Command::Bench(_) => unreachable!("bench returns before the service starts"),
    }
    info!("brainstorm stopped");
    Ok(())
}

/// Names the brainstorm process that owns the data folder, from its owner.json when there is
/// one.
fn database_holder(config: &Config) -> String {
    owner::read_owner(&config.data_dir).map_or("another brainstorm process".to_owned(), |record| {
        format!("brainstorm process {}", record.pid)
    })
}

/// Explains a failure of an offline command, naming the process that has the file open.
fn offline_error(config: &Config, err: brainstorm::storage::StorageError) -> anyhow::Error {
    if !owner::is_held_elsewhere(&err) {
        return err.into();
    }
    let holder = database_holder(config);
    anyhow::anyhow!(
        "{holder} has the database open; stop the brainstorm processes on {} and run this again",
        config.data_dir.display()
    )
}

async fn backup(config: Config, args: BackupArgs) -> anyhow::Result<()> {
    let report = transport::admin::backup(&config, &args.destination).await?;
    let path = report["path"].as_str().unwrap_or_default().to_owned();
    println!("backup written: {path}");
    println!("bytes: {}", report["bytes"]);
    println!("time: {} ms", report["millis"]);
    if let Some(rows) = report["rows"].as_object() {
        for (table, count) in rows {
            println!("  {table}: {count} rows");
        }
    }
    if args.verify {
        let intact = tokio::task::spawn_blocking(move || {
            brainstorm::storage::backup::verify(Path::new(&path))
        })
        .await??;
        if !intact {
            anyhow::bail!(
                "the backup failed its integrity check; redb repaired it, so take a new one"
            );
        }
        println!("verified: integrity check passed");
    }
    Ok(())
}

async fn import(config: Config, args: ImportArgs) -> anyhow::Result<()> {
    let options = ImportOptions {
        max_payload_bytes: config.max_payload_size,
        default_ttl_secs: config.message_ttl.as_secs(),
        original_home: args.original_home,
        dry_run: args.dry_run,
    };
    let database = config.database_path();
    let folder = args.folder;
    brainstorm::import::check_data_folder(&folder)?;
    // A dry run opens the database only when it exists, so that it never creates one.
    let open = !options.dry_run || database.exists();
    let report = tokio::task::spawn_blocking(move || {
        let store = if open {
            Some(Store::open(&database)?)
        } else {
            None
        };
        brainstorm::import::import(store.as_ref(), &folder, &options).map_err(anyhow::Error::from)
    })
    .await?
    .map_err(|err| match err.downcast::<StorageError>() {
        Ok(err) => offline_error(&config, err),
        Err(err) => err,
    })?;
    println!("{report}");
    if !report.skipped.is_empty() {
        anyhow::bail!(
            "{} file(s) were skipped (the lines starting with \"skipped\" say why); a later \
             import leaves projects that are already present unchanged",
            report.skipped.len()
        );
    }
    Ok(())
}

async fn audit(config: Config, args: AuditArgs) -> anyhow::Result<()> {
    let request = json!({
        "project_id": args.project,
        "actor": args.agent,
        "after": args.after,
        "limit": args.limit,
    });
    let records = transport::audit::read(&config, request).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(());
    }
    let empty = Vec::new();
    for record in records["records"].as_array().unwrap_or(&empty) {
        let field = |name: &str| record[name].as_str().unwrap_or("-").to_owned();
        println!(
            "{:>6}  {}  {}  {}  {}  {}  {}",
            record["seq"].as_u64().unwrap_or_default(),
            field("at"),
            field("project_id"),
            field("actor"),
            field("action"),
            field("target"),
            field("outcome")
        );
    }
    Ok(())
}

async fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let folder_token = owner::load_or_create_token(&config.data_dir)?;
    let token = match (&args.token_file, &args.token_env) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|err| anyhow::anyhow!("cannot read --token-file {}: {err}", path.display()))?
            .trim()
            .to_owned(),
        (None, Some(token)) => token.trim().to_owned(),
        (None, None) => folder_token.clone(),
    };
    if token.is_empty() {
        anyhow::bail!("the token is empty; put at least 32 random characters in it");
    }

    let service = Service::open(config.clone()).map_err(|err| {
        if !owner::is_held_elsewhere(&err) {
            return err.into();
        }
        let holder = database_holder(&config);
        anyhow::anyhow!(
            "{holder} owns the data folder {}; stop it first, or let its clients share it \
             through that process",
            config.data_dir.display()
        )
    })?;

    let options = HttpOptions {
        listen: args.listen,
        token: Some(token.clone()),
        require_token: args.require_token,
        max_body_bytes: config.max_body_bytes,
        max_sessions: config.max_sessions,
    };
    let endpoint = HttpEndpoint::bind(service.clone(), options).await?;
    let bound = endpoint.local_addr()?;
    info!(addr = %bound, database = %service.store().path().display(), "listening on {bound}, MCP endpoint http://{bound}/mcp");

    // stdio processes on the same data folder forward to this server when it uses the
    // folder's token.
    let advertised = token == folder_token;
    if advertised {
        let host = if bound.ip().is_loopback() {
            bound
        } else {
            SocketAddr::from(([127, 0, 0, 1], bound.port()))
        };
        let record = owner::OwnerRecord {
            pid: std::process::id(),
            url: format!("http://{host}/mcp"),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        owner::write_owner(&config.data_dir, &record)?;
    }

    let result = endpoint.serve(transport::shutdown_signal()).await;
    if advertised {
        owner::remove_owner(&config.data_dir);
    }
    result
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = matches!(
        cli.command,
        Command::Stdio | Command::Serve(_) | Command::Bench(_)
    );
    let default_filter = if server { "info,rmcp=warn" } else { "warn" };
    init_logging(cli.settings.log.as_deref().unwrap_or(default_filter));
    if !server {
        restore_default_sigpipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("brainstorm: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // The thread that reads stdin blocks until the client closes it, and cannot be
    // interrupted, so shutdown waits only briefly for blocking threads. Every task, and with
    // it the database, is dropped before this returns.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A server's log line is for log collectors; the plain line is for a person at a
            // terminal, and is all a one-shot command prints.
            if server {
                error!(error = %err, "brainstorm failed");
            }
            eprintln!("brainstorm: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Lets a one-shot command end quietly when its output pipe closes (`brainstorm audit | head`),
/// as other command-line tools do, instead of panicking on the failed write.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called at the start of main, before any other thread exists, and SIG_DFL is a
    // valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
