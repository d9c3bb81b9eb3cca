//! A `brainstorm serve` child process on a fresh temporary data folder, one per benchmark run.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};
use tokio::time::timeout;
use tracing::{debug, warn};

/// Time limit for the server to log the address it listens on.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// Time limit for the killed server to be reaped.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// Server log lines kept for error messages.
const LOG_TAIL_LINES: usize = 20;

/// Log filter given to the server: `serve` reports its port in an info line.
const SERVER_LOG_FILTER: &str = "info,rmcp=warn";

/// A temporary data folder, removed with its contents when dropped.
struct TempFolder(PathBuf);

impl TempFolder {
    /// Creates a new, empty folder with a unique name under the system temporary folder.
    fn create() -> anyhow::Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!(
            "brainstorm-bench-{}-{nanos}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let path = std::env::temp_dir().join(name);
        // create_dir (not create_dir_all) fails on an existing folder, so no run reuses data.
        std::fs::create_dir(&path)
            .with_context(|| format!("failed to create the data folder {}", path.display()))?;
        Ok(TempFolder(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            warn!(path = %self.0.display(), error = %err, "failed to remove the benchmark data folder");
        }
    }
}

/// The last lines a server wrote to stderr.
#[derive(Clone, Default)]
struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    fn push(&self, line: String) {
        let mut lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == LOG_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn text(&self) -> String {
        let lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A running `brainstorm serve --listen 127.0.0.1:0` started by the benchmark.
pub struct BenchServer {
    child: Child,
    url: String,
    log: LogTail,
    // Dropped after the child is killed, so the server never writes into a removed folder.
    data_dir: TempFolder,
}

impl BenchServer {
    /// Starts the current executable as `serve` on a new temporary data folder, with
    /// `extra_args` after the built-in arguments, and waits until it listens.
    pub async fn start(extra_args: &[String]) -> anyhow::Result<Self> {
        let data_dir = TempFolder::create()?;
        let program = std::env::current_exe()
            .context("failed to find the path of the running brainstorm executable")?;
        let mut command = Command::new(&program);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(extra_args)
            // Settings from this shell must not move the server's data, address or token.
            .env_remove("BRAINSTORM_STORAGE")
            .env_remove("BRAINSTORM_LISTEN")
            .env_remove("BRAINSTORM_TOKEN")
            .env("BRAINSTORM_LOG", SERVER_LOG_FILTER)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);

        let mut child = command
            .spawn()
            .with_context(|| format!("failed to start {} serve", program.display()))?;
        let stderr = child
            .stderr
            .take()
            .context("the server's stderr is not piped")?;

        let log = LogTail::default();
        let mut lines = BufReader::new(stderr).lines();
        let port = match timeout(STARTUP_LIMIT, read_port(&mut lines, &log)).await {
            Ok(Ok(port)) => port,
            Ok(Err(err)) => bail!("{err}\nserver log:\n{}", log.text()),
            Err(_) => bail!(
                "the server logged no listening address within {STARTUP_LIMIT:?}\nserver log:\n{}",
                log.text()
            ),
        };

        // The server logs every rejected call, so stderr is drained for the whole run, because
        // a full pipe would block the server.
        let drain = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                drain.push(line);
            }
        });

        let url = format!("http://127.0.0.1:{port}/mcp");
        debug!(%url, data_dir = %data_dir.path().display(), "benchmark server started");
        Ok(BenchServer {
            child,
            url,
            log,
            data_dir,
        })
    }

    /// Returns the MCP endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns the server's process id, or `None` once it has been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Returns the last lines the server wrote to stderr.
    pub fn log_tail(&self) -> String {
        self.log.text()
    }

    /// Kills the server with SIGKILL through its child handle, waits for it, and removes its
    /// data folder.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let killed = timeout(EXIT_LIMIT, self.child.kill())
            .await
            .context("timed out killing the benchmark server")?
            .context("failed to kill the benchmark server");
        debug!(data_dir = %self.data_dir.path().display(), "benchmark server stopped");
        killed
    }
}

/// Reads server log lines until one contains `listening on 127.0.0.1:PORT`, and returns the
/// port.
async fn read_port(
    lines: &mut Lines<BufReader<ChildStderr>>,
    log: &LogTail,
) -> anyhow::Result<u16> {
    while let Some(line) = lines
        .next_line()
        .await
        .context("failed to read the server's stderr")?
    {
        let port = parse_listening_port(&line);
        log.push(line);
        if let Some(port) = port {
            return Ok(port);
        }
    }
    bail!("the server exited before it logged a listening address")
}

/// Returns the port of a log line containing `listening on 127.0.0.1:PORT`.
fn parse_listening_port(line: &str) -> Option<u16> {
    let (_, tail) = line.split_once("listening on 127.0.0.1:")?;
    let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u16>().ok().filter(|port| *port != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_port_is_parsed_from_the_log_line() {
        let line = "2026-12-04T17:00:00Z  INFO brainstorm: listening on 127.0.0.1:40123, MCP \
                    endpoint http://127.0.0.1:40123/mcp addr=127.0.0.1:40123";
        assert_eq!(parse_listening_port(line), Some(40123));
        assert_eq!(parse_listening_port("brainstorm starting"), None);
        assert_eq!(parse_listening_port("listening on 127.0.0.1:0"), None);
    }

    #[test]
    fn temp_folder_is_removed_on_drop() {
        let folder = TempFolder::create().unwrap();
        let path = folder.path().to_path_buf();
        std::fs::write(path.join("file"), b"data").unwrap();
        drop(folder);
        assert!(!path.exists());
    }
}
