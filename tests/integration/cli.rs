//! The one-shot commands as an operator meets them: a mistyped data folder, `~` in settings
//! given without a shell, and output piped into a command that stops reading.

use std::process::{Output, Stdio};

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;

use crate::common::{Sandbox, ServerOptions, StdioServer};

/// Runs `brainstorm ARGS` with the sandbox's HOME and no data folder setting.
async fn run(sandbox: &Sandbox, args: &[&str], env: &[(&str, String)]) -> Result<Output> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_brainstorm"));
    command
        .args(args)
        .env_remove("BRAINSTORM_STORAGE")
        .env_remove("BRAINSTORM_LOG")
        .env("HOME", sandbox.home())
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.context("failed to run brainstorm")
}

#[tokio::test]
async fn mistyped_data_folder_creates_nothing() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let missing = sandbox.root().join("typo");
    let missing_arg = missing.to_string_lossy().into_owned();

    for command in ["stats", "audit", "check", "compact"] {
        let output = run(&sandbox, &[command, "--data-dir", &missing_arg], &[]).await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{command} succeeded on a missing folder"
        );
        assert!(
            stderr.contains("no database at") && stderr.contains("check --data-dir"),
            "{command}: {stderr}"
        );
    }
    let backup_file = sandbox.root().join("b.redb").to_string_lossy().into_owned();
    let output = run(
        &sandbox,
        &["backup", "--data-dir", &missing_arg, &backup_file],
        &[],
    )
    .await?;
    assert!(
        !output.status.success(),
        "backup of a missing database succeeded"
    );
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ts-storage/data"
    );
    let output = run(
        &sandbox,
        &["import", "--dry-run", "--data-dir", &missing_arg, fixture],
        &[],
    )
    .await?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    assert!(!missing.exists(), "a command created {}", missing.display());
    assert!(!sandbox.root().join("b.redb").exists());
    Ok(())
}

#[tokio::test]
async fn leading_tilde_in_storage_means_home() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let folder = sandbox.home().join("agents-data");
    let server = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    server.shutdown().await?;
    std::fs::rename(sandbox.data_dir(), &folder)?;

    let output = run(
        &sandbox,
        &["stats"],
        &[("BRAINSTORM_STORAGE", "~/agents-data".to_owned())],
    )
    .await?;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stats: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(
        stats["path"],
        folder.join("brainstorm.redb").to_string_lossy().as_ref()
    );
    assert!(
        !std::path::Path::new("~").exists(),
        "a literal ~ folder was created"
    );
    Ok(())
}

#[tokio::test]
async fn closed_output_pipe_ends_quietly() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    server.shutdown().await?;
    let data_dir = sandbox.data_dir().to_string_lossy().into_owned();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_brainstorm"))
        .args(["stats", "--data-dir", &data_dir])
        .env("HOME", sandbox.home())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Closing the read end before the command writes is what `brainstorm stats | head -0`
    // does.
    drop(child.stdout.take());

    let output = child.wait_with_output().await?;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn restore_names_a_missing_backup() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let data_dir = sandbox.data_dir().to_string_lossy().into_owned();
    let missing = sandbox
        .root()
        .join("nope.redb")
        .to_string_lossy()
        .into_owned();
    let garbage = sandbox.root().join("garbage.redb");
    let mut file = tokio::fs::File::create(&garbage).await?;
    file.write_all(b"not a database").await?;
    let garbage = garbage.to_string_lossy().into_owned();

    let absent = run(
        &sandbox,
        &["restore", "--data-dir", &data_dir, &missing],
        &[],
    )
    .await?;
    let damaged = run(
        &sandbox,
        &["restore", "--data-dir", &data_dir, &garbage],
        &[],
    )
    .await?;

    let absent = String::from_utf8_lossy(&absent.stderr);
    assert!(absent.contains("nope.redb does not exist"), "{absent}");
    assert!(!absent.contains("another brainstorm process"), "{absent}");
    let damaged = String::from_utf8_lossy(&damaged.stderr);
    assert!(
        damaged.contains("cannot be opened as a database"),
        "{damaged}"
    );
    assert!(damaged.contains("nothing was restored"), "{damaged}");
    assert!(
        !sandbox.database_file().exists(),
        "a failed restore left a database"
    );
    Ok(())
}
