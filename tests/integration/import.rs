//! `brainstorm import`: the data folder of the original TypeScript server, brought in whole,
//! once, and without the files that cannot be trusted.
//!
//! The example folder in `tests/fixtures/ts-storage/data` was written by the original server
//! driven through its tools; nothing in it was edited by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, Result, ensure};
use redb::{ReadableDatabase, ReadableTable};
use serde_json::{Value, json};

use brainstorm::storage::Store;
use brainstorm::storage::records::MessageRecord;
use brainstorm::storage::tables::*;

use crate::common::{Sandbox, ServerOptions, StdioServer, content_of, etag_of, server_command};

/// The home folder of the machine that wrote the example folder.
const ORIGINAL_HOME: &str = "/home/agent";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ts-storage")
}

/// Copies a folder tree, so that a test can damage its own copy.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Copies the example folder into the sandbox, and the file its file reference names into the
/// sandbox's home, where `--original-home` lets the import find it.
fn example_folder(sandbox: &Sandbox) -> Result<PathBuf> {
    let folder = sandbox.root().join("ts-storage");
    copy_tree(&fixture().join("data"), &folder)?;
    let notes = sandbox.home().join(".bsfixture");
    std::fs::create_dir_all(&notes)?;
    std::fs::copy(
        fixture().join("source-files/notes.txt"),
        notes.join("notes.txt"),
    )?;
    Ok(folder)
}

async fn run_import(sandbox: &Sandbox, folder: &Path, extra: &[&str]) -> Result<Output> {
    let mut args = vec!["import", "--log", "warn", "--original-home", ORIGINAL_HOME];
    args.extend_from_slice(extra);
    let mut command = server_command(sandbox, &ServerOptions::default(), &args);
    command.arg(folder).stdin(std::process::Stdio::null());
    command
        .output()
        .await
        .context("failed to run brainstorm import")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Rows of one table: each key shown with `Debug`, and the value's bytes.
type Rows = Vec<(String, Vec<u8>)>;

/// Returns every row of one table.
fn rows<K: redb::Key + 'static>(
    tx: &redb::ReadTransaction,
    table: redb::TableDefinition<K, &[u8]>,
) -> Result<Rows> {
    let table = match tx.open_table(table) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(err) => return Err(err.into()),
    };
    table
        .iter()?
        .map(|row| {
            let (key, value) = row?;
            Ok((format!("{:?}", key.value()), value.value().to_vec()))
        })
        .collect()
}

/// Returns every row of every table, to compare two states of the database exactly.
fn dump(database: &Path) -> Result<BTreeMap<&'static str, Rows>> {
    let db = redb::Database::open(database)?;
    let tx = db.begin_read()?;
    Ok(BTreeMap::from([
        ("meta", rows(&tx, META)?),
        ("projects", rows(&tx, PROJECTS)?),
        ("clients", rows(&tx, CLIENTS)?),
        ("members", rows(&tx, MEMBERS)?),
        ("manifests", rows(&tx, MANIFESTS)?),
        ("contents", rows(&tx, CONTENTS)?),
        ("memberships", rows(&tx, MEMBERSHIPS)?),
        ("inbox", rows(&tx, INBOX)?),
        ("archive", rows(&tx, ARCHIVE)?),
        ("history", rows(&tx, HISTORY)?),
        ("log_entries", rows(&tx, LOG_ENTRIES)?),
        ("audit", rows(&tx, AUDIT)?),
    ]))
}

/// Unread and read messages of one recipient, in delivery order, whatever their age.
fn messages_of(
    database: &Path,
    project: &str,
    agent: &str,
) -> Result<(Vec<MessageRecord>, Vec<MessageRecord>)> {
    let store = Store::open(database)?;
    let (unread, read) = store.read(|tx| {
        let unread = tx.inbox(project, agent, 0)?;
        let read = tx.read_messages(project, agent, 0)?;
        anyhow::Ok((unread.into_iter().map(|(_, m)| m).collect(), read))
    })?;
    Ok((unread, read))
}

fn payload_file(folder: &Path, project: &str, resource: &str) -> Result<String> {
    let path = folder.join(format!(
        "projects/{project}/resources/{resource}/payload/data"
    ));
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

#[tokio::test]
async fn importing_the_example_folder_brings_every_entity() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let folder = example_folder(&sandbox)?;

    let output = run_import(&sandbox, &folder, &[]).await?;

    let report = stdout(&output);
    ensure!(
        output.status.success(),
        "import failed: {report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("project web-app: imported 2 members, 2 unread and 7 archived messages, 4 resources, 20 audit records"), "{report}");
    assert!(report.contains("project docs-site: imported 2 members, 1 unread and 1 archived messages, 1 resources, 7 audit records"), "{report}");
    assert!(
        report.contains("clients: imported 4, 0 already present"),
        "{report}"
    );
    assert!(report.contains("files skipped: 0, ignored: 0"), "{report}");

    // Messages are checked in the file, whatever their age: the example's are past their
    // time-to-live a day after it was written, as they would be for the original.
    let database = sandbox.database_file();
    let (unread, read) = messages_of(&database, "web-app", "backend")?;
    let ids = |messages: &[MessageRecord]| {
        messages
            .iter()
            .map(|m| m.message_id[..8].to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&unread), ["8c891f38"]);
    assert_eq!(ids(&read), ["1f58934a", "88de28d6"]);
    let (unread, read) = messages_of(&database, "web-app", "frontend")?;
    assert_eq!(ids(&unread), ["f20624fa"]);
    assert_eq!(ids(&read), ["e6b91157", "db4e9f28"]);
    let question = &read[0];
    assert_eq!(question.from_agent, "backend");
    assert_eq!(question.to_agent.as_deref(), Some("frontend"));
    assert!(question.reply_expected);
    assert!(!question.broadcast);
    assert_eq!(question.priority.as_deref(), Some("high"));
    assert_eq!(question.trace_id.as_deref(), Some("trace-0001"));
    assert_eq!(
        question.ttl_secs, 86_400,
        "the time-to-live of system/config.json"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&question.payload_json)?,
        json!({"type": "question", "text": "Is 750 ms enough for the login call?"})
    );
    assert_eq!(
        brainstorm::time::format_ms(question.created_at_ms),
        "2026-12-04T15:27:25.296Z"
    );
    let broadcast = &unread[0];
    assert!(broadcast.broadcast);
    assert!(broadcast.to_agent.is_none());
    // The agent that left keeps its archive, with both broadcasts and its direct message.
    let (unread, read) = messages_of(&database, "web-app", "qa")?;
    assert!(unread.is_empty());
    assert_eq!(ids(&read), ["88de28d6", "edc946f6", "f20624fa"]);
    let (unread, read) = messages_of(&database, "docs-site", "docs")?;
    assert_eq!(
        (ids(&unread), ids(&read)),
        (vec!["a05a1e5d".to_owned()], vec![])
    );

    let server = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    let agent = server.session();

    // Client ids are derived from the working directory as the original derived them, so an
    // agent in the same folder finds its memberships.
    let status = agent.status("/home/agent/work/frontend").await?;
    assert_eq!(status["client_id"], "a7e311f1-9ccc-48e8-52c6-6a193b382c44");
    let mut joined: Vec<(String, String)> = status["projects"]
        .as_array()
        .context("projects")?
        .iter()
        .map(|p| {
            (
                p["project_id"].as_str().unwrap_or_default().to_owned(),
                p["agent_name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    joined.sort();
    assert_eq!(
        joined,
        [
            ("docs-site".to_owned(), "reviewer".to_owned()),
            ("web-app".to_owned(), "frontend".to_owned())
        ]
    );
    let info = agent
        .ok("get_project_info", json!({"project_id": "web-app"}))
        .await?;
    let project = &info["project"];
    assert_eq!(project["name"], "Web App Refresh");
    assert_eq!(project["description"], "Small UI and API refresh");
    assert_eq!(
        project["context"],
        json!({"goal": "ship the v2 login page", "sprint": 3, "docs_url": "https://example.invalid/web-app"})
    );
    assert_eq!(project["created_by"], "frontend");
    assert_eq!(project["created_at"], "2026-12-04T15:27:24.270Z");
    assert_eq!(info["coordinator"], "backend", "the handover is kept");
    let members = info["members"].as_array().context("members")?;
    let frontend = members
        .iter()
        .find(|m| m["agent_name"] == "frontend")
        .context("frontend")?;
    assert_eq!(frontend["agent_id"], "04183064-3db8-4266-9c9d-fa72082e8945");
    assert_eq!(
        frontend["client_id"],
        "a7e311f1-9ccc-48e8-52c6-6a193b382c44"
    );
    assert_eq!(frontend["capabilities"], json!(["typescript", "css"]));
    assert_eq!(frontend["labels"], json!({"team": "web"}));
    assert_eq!(frontend["joined_at"], "2026-12-04T15:27:24.273Z");
    assert_eq!(members.len(), 2, "qa left: {members:?}");

    let docs = agent
        .ok("get_project_info", json!({"project_id": "docs-site"}))
        .await?;
    assert_eq!(docs["project"]["archived"], true);
    assert_eq!(docs["project"]["archived_by"], "docs");
    assert_eq!(
        docs["project"]["archive_reason"],
        "Site launched; kept for reference"
    );
    let reviewer = docs["members"]
        .as_array()
        .context("members")?
        .iter()
        .find(|m| m["agent_name"] == "reviewer")
        .context("reviewer")?
        .clone();
    assert_eq!(reviewer["online"], false);

    // Etags are kept, and inline content is the exact bytes the original stored.
    let expected = [
        ("web-app", "readme", "0c71e7410fd3b300", "frontend"),
        ("web-app", "api-config", "1c3da06eb81751e9", "frontend"),
        ("web-app", "deploy-notes", "dfdfad5f6d21fd8d", "frontend"),
        ("docs-site", "glossary", "8238402406c72cb7", "reviewer"),
    ];
    for (project_id, resource_id, etag, reader) in expected {
        let read = agent
            .ok(
                "get_resource",
                json!({"project_id": project_id, "resource_id": resource_id, "agent_name": reader}),
            )
            .await?;
        assert_eq!(etag_of(&read)?, etag, "{resource_id}");
        assert_eq!(
            content_of(&read)?,
            payload_file(&folder, project_id, resource_id)?,
            "{resource_id}"
        );
    }
    let api = agent
        .ok(
            "get_resource",
            json!({"project_id": "web-app", "resource_id": "api-config", "agent_name": "frontend"}),
        )
        .await?;
    assert_eq!(api["manifest"]["created_at"], "2026-12-04T15:27:24.731Z");
    assert_eq!(api["manifest"]["updated_at"], "2026-12-04T15:27:24.949Z");
    assert_eq!(api["manifest"]["mime_type"], "application/json");
    // The restricted resource keeps its permissions.
    assert_eq!(
        api["manifest"]["permissions"],
        json!({"read": ["*"], "write": ["backend", "frontend"]})
    );
    let notes = agent.ok("get_resource", json!({"project_id": "web-app", "resource_id": "release-notes", "agent_name": "frontend"})).await?;
    assert_eq!(
        content_of(&notes)?,
        std::fs::read_to_string(fixture().join("source-files/notes.txt"))?
    );
    assert_eq!(etag_of(&notes)?, "2d5e6488dd09785a");
    let home_notes = sandbox.home().join(".bsfixture/notes.txt");
    assert_eq!(notes["manifest"]["source_path"], json!(home_notes.to_str()));

    // A write with the etag the original handed out succeeds: agents keep working.
    let update = json!({"project_id": "web-app", "resource_id": "readme", "name": "Readme", "agent_name": "frontend",
                        "content": "# Web App\n", "etag": "0c71e7410fd3b300"});
    agent.ok("store_resource", update).await?;

    // The creator's automatic join is a membership too, although memberships.json lacks it.
    let docs_status = agent.status("/home/agent/work/docs").await?;
    assert_eq!(docs_status["projects"][0]["agent_name"], "docs");
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_second_import_changes_nothing() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let folder = example_folder(&sandbox)?;
    let first = run_import(&sandbox, &folder, &[]).await?;
    ensure!(
        first.status.success(),
        "first import failed: {}",
        stdout(&first)
    );
    let before = dump(&sandbox.database_file())?;

    let second = run_import(&sandbox, &folder, &[]).await?;

    let report = stdout(&second);
    assert!(second.status.success(), "{report}");
    assert!(
        report.contains("project web-app: already present, left unchanged"),
        "{report}"
    );
    assert!(
        report.contains("project docs-site: already present, left unchanged"),
        "{report}"
    );
    assert!(
        report.contains("clients: imported 0, 4 already present"),
        "{report}"
    );
    assert_eq!(
        dump(&sandbox.database_file())?,
        before,
        "the second import wrote something"
    );
    Ok(())
}

#[tokio::test]
async fn a_dry_run_reports_without_writing() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let folder = example_folder(&sandbox)?;
    let output = run_import(&sandbox, &folder, &["--dry-run"]).await?;
    let report = stdout(&output);
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains("project web-app: would import 2 members"),
        "{report}"
    );
    assert!(
        !sandbox.database_file().exists(),
        "a dry run without a database created one"
    );

    let imported = run_import(&sandbox, &folder, &[]).await?;
    assert!(imported.status.success(), "{}", stdout(&imported));
    let before = dump(&sandbox.database_file())?;
    let again = stdout(&run_import(&sandbox, &folder, &["--dry-run"]).await?);
    assert!(
        again.contains("project web-app: already present"),
        "{again}"
    );
    assert_eq!(dump(&sandbox.database_file())?, before, "a dry run wrote");
    Ok(())
}

/// Damages a copy of the example folder in each way the original's files can be damaged or
/// tampered with; returns the paths that must be reported as skipped.
fn damage(folder: &Path) -> Result<Vec<&'static str>> {
    let write = |path: &str, text: &str| std::fs::write(folder.join(path), text);
    let web = folder.join("projects/web-app");
    // A member file cut short by a crash.
    let backend = std::fs::read_to_string(web.join("members/backend.json"))?;
    let cut = backend
        .find("\"capabilities\": [")
        .context("capabilities")?
        + 17;
    write("projects/web-app/members/backend.json", &backend[..cut])?;
    // A manifest whose payload is missing, and a payload without a manifest.
    std::fs::remove_file(web.join("resources/readme/payload/data"))?;
    std::fs::remove_file(web.join("resources/deploy-notes/manifest.json"))?;
    // A direct message to backend in frontend's inbox, and a message outside any inbox.
    let to_backend = "2026-12-04T15-27-25-691Z-8c891f38-1c52-46f9-8db9-05986a3db24c.json";
    std::fs::copy(
        web.join("messages/backend").join(to_backend),
        web.join("messages/frontend").join(to_backend),
    )?;
    std::fs::copy(
        web.join("messages/backend").join(to_backend),
        web.join("messages").join(to_backend),
    )?;
    // A member file whose name and content disagree.
    std::fs::copy(
        web.join("members/frontend.json"),
        web.join("members/designer.json"),
    )?;
    // A project folder with a dot, and a project of an unknown schema version.
    copy_tree(
        &folder.join("projects/docs-site"),
        &folder.join("projects/docs.site"),
    )?;
    let docs = std::fs::read_to_string(folder.join("projects/docs-site/metadata.json"))?;
    write(
        "projects/docs-site/metadata.json",
        &docs.replace("\"1.0\"", "\"2.0\""),
    )?;
    // Leftovers of the original's normal work, which are not data.
    write("projects/web-app/members/frontend.json.0b7c.tmp", "{")?;
    std::fs::create_dir_all(folder.join("locks"))?;
    write("locks/audit-log.lock", "{}")?;
    // An audit line cut short.
    let mut log = std::fs::read_to_string(folder.join("system/audit.log"))?;
    log.push_str("{\"timestamp\":\"2026-12-04T15:30:00.000Z\",\"act\n");
    write("system/audit.log", &log)?;
    Ok(vec![
        "projects/web-app/members/backend.json",
        "projects/web-app/resources/readme",
        "projects/web-app/resources/deploy-notes",
        "projects/web-app/messages/frontend/2026-12-04T15-27-25-691Z-8c891f38",
        "projects/web-app/messages/2026-12-04T15-27-25-691Z-8c891f38",
        "projects/web-app/members/designer.json",
        "projects/docs.site",
        "projects/docs-site/metadata.json",
        "system/audit.log:28",
    ])
}

#[tokio::test]
async fn damaged_files_are_skipped_and_reported_and_the_rest_imports() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let folder = example_folder(&sandbox)?;
    let damaged = damage(&folder)?;

    let output = run_import(&sandbox, &folder, &[]).await?;

    let report = stdout(&output);
    assert!(
        !output.status.success(),
        "skipped files must fail the command: {report}"
    );
    let skipped: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("skipped "))
        .collect();
    for path in &damaged {
        assert!(
            skipped
                .iter()
                .any(|line| line.starts_with(&format!("skipped {path}"))),
            "{path} is not reported as skipped:\n{report}"
        );
    }
    assert_eq!(skipped.len(), damaged.len(), "{report}");
    assert!(report.contains("schema_version is \"2.0\""), "{report}");
    assert!(
        report.contains("ignored projects/web-app/members/frontend.json.0b7c.tmp: temporary file"),
        "{report}"
    );
    assert!(
        report.contains("ignored locks: transient lock files"),
        "{report}"
    );
    // What is intact still imports: web-app without the damaged files, no docs-site.
    assert!(report.contains("project web-app: imported 1 members, 1 unread and 8 archived messages, 2 resources, 20 audit records"), "{report}");
    assert!(
        report.contains("project docs-site: not imported"),
        "{report}"
    );

    let database = sandbox.database_file();
    let before = dump(&database)?;
    let again = run_import(&sandbox, &folder, &[]).await?;
    let second = stdout(&again);
    let skipped_again: Vec<&str> = second
        .lines()
        .filter(|line| line.starts_with("skipped "))
        .collect();
    assert_eq!(
        skipped_again, skipped,
        "a second run reports the same files"
    );
    assert_eq!(dump(&database)?, before, "a second run changes nothing");
    Ok(())
}

#[tokio::test]
async fn import_refuses_while_a_server_owns_the_folder() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let folder = example_folder(&sandbox)?;
    let server = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    let pid = server.pid()?;

    let output = run_import(&sandbox, &folder, &[]).await?;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("process {pid} has the database open")),
        "{stderr}"
    );
    server.shutdown().await?;
    Ok(())
}
