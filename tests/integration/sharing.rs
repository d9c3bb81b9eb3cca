//! One data folder shared by several processes: `brainstorm stdio` processes that forward to
//! the process that owns the database, owner election when the owner starts, exits or is
//! killed, and forwarding to a running `brainstorm serve`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::sync::{Barrier, watch};
use tokio::time::timeout;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, ServerProcess, Session, StdioServer, ToolOutcome,
    create_counter, derived_client_id, directory_of, member_names, owner_pid, owner_record,
    read_counter, run_counter_race, store_counter_args, text_field, wait_for_owner_pid, write_file,
};

/// Increments per process in the stdio races. Eight processes doing 25 each retry on
/// ETAG_MISMATCH hundreds of times, and a debug build still finishes in seconds.
const INCREMENTS_PER_PROCESS: usize = 25;

/// Time limit for a whole counter race, including owner elections after a kill.
const RACE_LIMIT: Duration = Duration::from_secs(180);

/// Time limit for the race to acknowledge enough increments before the owner is killed.
const KILL_LIMIT: Duration = Duration::from_secs(60);

/// Time limit for `owner.json` to name the expected process.
const OWNER_LIMIT: Duration = Duration::from_secs(30);

/// Starts `count` stdio processes on the sandbox's data folder at once and connects a client
/// to each. Returns them in start order.
async fn start_stdio_processes(sandbox: &Sandbox, count: usize) -> Result<Vec<StdioServer>> {
    let options = ServerOptions::default();
    let mut spawned = Vec::with_capacity(count);
    for _ in 0..count {
        spawned.push(StdioServer::spawn(sandbox, &options)?);
    }
    let mut servers = Vec::with_capacity(count);
    for process in spawned {
        servers.push(process.connect().await?);
    }
    Ok(servers)
}

/// Returns the stderr of every process, labelled with its start index and pid, for failure
/// messages. A process that has been waited for has no pid any more.
fn process_logs(processes: &[ServerProcess]) -> String {
    let mut text = String::new();
    for (index, process) in processes.iter().enumerate() {
        let pid = process
            .pid()
            .map_or_else(|_| "ended".to_owned(), |pid| pid.to_string());
        text.push_str(&format!(
            "--- stderr of process {index} (pid {pid}) ---\n{}",
            process.log()
        ));
    }
    text
}

/// Gives each process's client its own identity (`directory_of(names[i])`), creates
/// `project_id` with `names[0]` as creator and a counter everyone may write, and joins the
/// others.
async fn set_up_race(servers: &[StdioServer], names: &[String], project_id: &str) -> Result<()> {
    for (server, name) in servers.iter().zip(names) {
        server.session().status(&directory_of(name)).await?;
    }
    let creator = servers[0].session();
    creator
        .ok(
            "create_project",
            json!({ "project_id": project_id, "name": "Race", "created_by": names[0] }),
        )
        .await?;
    create_counter(creator, project_id, &names[0]).await?;
    for (server, name) in servers.iter().zip(names).skip(1) {
        server
            .session()
            .ok(
                "join_project",
                json!({ "project_id": project_id, "agent_name": name }),
            )
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_processes_race_without_lost_increments() -> Result<()> {
    const PROCESSES: usize = 8;
    let sandbox = Sandbox::new()?;
    let servers = start_stdio_processes(&sandbox, PROCESSES).await?;
    let names: Vec<String> = (0..PROCESSES).map(|i| format!("stdio-{i}")).collect();
    set_up_race(&servers, &names, "race").await?;

    let mut processes: Vec<ServerProcess> = Vec::with_capacity(PROCESSES);
    let mut racers = Vec::with_capacity(PROCESSES);
    for (server, name) in servers.into_iter().zip(&names) {
        let (session, process) = server.into_parts();
        racers.push((session, name.clone()));
        processes.push(process);
    }
    let pids = processes
        .iter()
        .map(ServerProcess::pid)
        .collect::<Result<Vec<u32>>>()?;
    let (tallies, sessions) = run_counter_race(racers, "race", INCREMENTS_PER_PROCESS, RACE_LIMIT)
        .await
        .map_err(|error| error.context(process_logs(&processes)))?;

    let stored: usize = tallies.iter().map(|tally| tally.etags.len()).sum();
    let mismatches: usize = tallies.iter().map(|tally| tally.mismatches).sum();
    assert_eq!(stored, PROCESSES * INCREMENTS_PER_PROCESS);
    assert!(
        mismatches >= 1,
        "no write hit ETAG_MISMATCH, so the processes never raced"
    );
    let (value, _) = read_counter(&sessions[1], "race", &names[1]).await?;
    assert_eq!(value, (PROCESSES * INCREMENTS_PER_PROCESS) as u64);

    let owner = owner_pid(&sandbox)?.context("owner.json is missing after the race")?;
    let owners = pids.iter().filter(|pid| **pid == owner).count();
    assert_eq!(
        owners, 1,
        "owner.json names pid {owner}, which is none of the racing processes {pids:?}"
    );
    Ok(())
}

/// What one client saw in a race during which the owner is killed.
#[derive(Debug, Default)]
struct SurvivalTally {
    /// `store_resource` calls that succeeded.
    acknowledged: usize,
    /// `store_resource` calls that returned CALL_INTERRUPTED, so they may or may not have
    /// been applied.
    interrupted_stores: usize,
    /// Calls of any tool that returned CALL_INTERRUPTED.
    interrupted_calls: usize,
    /// Calls that returned OWNER_UNAVAILABLE.
    unavailable_calls: usize,
    /// Whether the client's own process died during a `store_resource` call, which may or
    /// may not have been applied.
    lost_store: bool,
    /// The transport error that ended the client when its own process died.
    process_gone: Option<String>,
}

/// Returns whether a failed call ran out of time, as opposed to losing its connection.
fn timed_out(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.is::<tokio::time::error::Elapsed>())
}

/// Increments the counter like [`crate::common::increment_counter`], but treats the failures
/// a change of owner causes as outcomes: CALL_INTERRUPTED and OWNER_UNAVAILABLE make it read
/// again and retry, and a lost connection (its own process was killed) ends the run. A call
/// that times out is an error. Every acknowledged increment is added to
/// `acknowledged_total`. Returns the session too, so that it stays open until the caller
/// drops it.
async fn increment_through_owner_change(
    session: Session,
    agent: String,
    start: Arc<Barrier>,
    acknowledged_total: Arc<watch::Sender<usize>>,
) -> Result<(SurvivalTally, Session)> {
    let mut tally = SurvivalTally::default();
    start.wait().await;
    for _ in 0..INCREMENTS_PER_PROCESS {
        loop {
            let read = session
                .call(
                    "get_resource",
                    json!({ "project_id": "race", "resource_id": "counter", "agent_name": agent }),
                )
                .await;
            let read = match read {
                Err(error) if timed_out(&error) => {
                    bail!("{agent}: {error:#} (tally so far: {tally:?})")
                }
                Err(error) => {
                    tally.process_gone = Some(format!("{error:#}"));
                    return Ok((tally, session));
                }
                Ok(ToolOutcome::Success(read)) => read,
                Ok(failure) if failure.code() == Some("CALL_INTERRUPTED") => {
                    tally.interrupted_calls += 1;
                    continue;
                }
                Ok(failure) if failure.code() == Some("OWNER_UNAVAILABLE") => {
                    tally.unavailable_calls += 1;
                    continue;
                }
                Ok(failure) => bail!("{agent}: get_resource failed: {failure:?}"),
            };
            let content = text_field(&read, "content")?;
            let value: u64 = content
                .trim()
                .parse()
                .with_context(|| format!("counter content {content:?} is not a number"))?;
            let etag = text_field(&read, "etag")?;
            let stored = session
                .call(
                    "store_resource",
                    store_counter_args("race", &agent, value + 1, etag),
                )
                .await;
            match stored {
                Err(error) if timed_out(&error) => {
                    bail!("{agent}: {error:#} (tally so far: {tally:?})")
                }
                Err(error) => {
                    tally.lost_store = true;
                    tally.process_gone = Some(format!("{error:#}"));
                    return Ok((tally, session));
                }
                Ok(ToolOutcome::Success(_)) => {
                    tally.acknowledged += 1;
                    acknowledged_total.send_modify(|total| *total += 1);
                    break;
                }
                Ok(failure) if failure.code() == Some("ETAG_MISMATCH") => {}
                Ok(failure) if failure.code() == Some("CALL_INTERRUPTED") => {
                    tally.interrupted_stores += 1;
                    tally.interrupted_calls += 1;
                }
                Ok(failure) if failure.code() == Some("OWNER_UNAVAILABLE") => {
                    tally.unavailable_calls += 1;
                }
                Ok(failure) => bail!("{agent}: store_resource failed: {failure:?}"),
            }
        }
    }
    Ok((tally, session))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_owner_loses_no_acknowledged_increments() -> Result<()> {
    const PROCESSES: usize = 4;
    /// Acknowledged increments, of all clients together, before the owner is killed.
    const KILL_AFTER: usize = 10;
    let sandbox = Sandbox::new()?;
    let servers = start_stdio_processes(&sandbox, PROCESSES).await?;
    let names: Vec<String> = (0..PROCESSES).map(|i| format!("survivor-{i}")).collect();
    set_up_race(&servers, &names, "race").await?;

    let mut processes: Vec<ServerProcess> = Vec::with_capacity(PROCESSES);
    let mut sessions = Vec::with_capacity(PROCESSES);
    for server in servers {
        let (session, process) = server.into_parts();
        sessions.push(session);
        processes.push(process);
    }
    let pids = processes
        .iter()
        .map(ServerProcess::pid)
        .collect::<Result<Vec<u32>>>()?;
    let owner = owner_pid(&sandbox)?.context("owner.json is missing before the race")?;
    let owner_index = pids
        .iter()
        .position(|pid| *pid == owner)
        .with_context(|| format!("owner.json names pid {owner}, not one of {pids:?}"))?;

    let start = Arc::new(Barrier::new(PROCESSES));
    let (acknowledged_tx, mut acknowledged_rx) = watch::channel(0usize);
    let acknowledged_tx = Arc::new(acknowledged_tx);
    let tasks: Vec<_> = sessions
        .into_iter()
        .zip(names.iter().cloned())
        .map(|(session, name)| {
            tokio::spawn(increment_through_owner_change(
                session,
                name,
                Arc::clone(&start),
                Arc::clone(&acknowledged_tx),
            ))
        })
        .collect();

    timeout(
        KILL_LIMIT,
        acknowledged_rx.wait_for(|total| *total >= KILL_AFTER),
    )
    .await
    .with_context(|| {
        format!("the race acknowledged fewer than {KILL_AFTER} increments within {KILL_LIMIT:?}")
    })?
    .context("the channel of acknowledged increments closed")?;
    processes[owner_index].kill().await?;

    // Sessions stay open until every client has finished, so that a client that is done
    // early does not end its process and force another change of owner.
    let collect_tallies = async {
        let mut tallies = Vec::new();
        let mut finished_sessions = Vec::new();
        for task in tasks {
            let (tally, session) = task.await.context("a racing client panicked")??;
            tallies.push(tally);
            finished_sessions.push(session);
        }
        Ok::<_, anyhow::Error>((tallies, finished_sessions))
    };
    let finished = timeout(RACE_LIMIT, collect_tallies)
        .await
        .with_context(|| format!("the race did not finish within {RACE_LIMIT:?}"))
        .and_then(|tallies| tallies);
    let (tallies, sessions) = finished.map_err(|error| error.context(process_logs(&processes)))?;

    let killed = &tallies[owner_index];
    assert!(
        killed.process_gone.is_some(),
        "the killed owner's client never failed: {killed:?}"
    );
    for (index, tally) in tallies.iter().enumerate() {
        if index == owner_index {
            continue;
        }
        assert_eq!(
            tally.process_gone, None,
            "surviving client {index} lost its process: {tally:?}"
        );
        assert_eq!(
            tally.acknowledged, INCREMENTS_PER_PROCESS,
            "surviving client {index} did not finish: {tally:?}"
        );
    }

    let acknowledged: usize = tallies.iter().map(|tally| tally.acknowledged).sum();
    let unknown: usize = tallies
        .iter()
        .map(|tally| tally.interrupted_stores + usize::from(tally.lost_store))
        .sum();
    let reader_index = (owner_index + 1) % PROCESSES;
    let (value, _) = read_counter(&sessions[reader_index], "race", &names[reader_index]).await?;
    let value = usize::try_from(value)?;
    assert!(
        value >= acknowledged,
        "final value {value} is below the {acknowledged} acknowledged increments: {tallies:?}"
    );
    assert!(
        value <= acknowledged + unknown,
        "final value {value} exceeds {acknowledged} acknowledged plus {unknown} unknown \
         increments: {tallies:?}"
    );

    let survivors: Vec<u32> = pids
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != owner_index)
        .map(|(_, pid)| *pid)
        .collect();
    let new_owner = owner_pid(&sandbox)?.context("owner.json is missing after the race")?;
    assert!(
        survivors.contains(&new_owner),
        "owner.json names pid {new_owner}, not one of the surviving processes {survivors:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_starts_elect_one_owner() -> Result<()> {
    // A few rounds, each on a fresh folder, to give the race more chances to go wrong.
    for round in 0..3 {
        let sandbox = Sandbox::new()?;
        let options = ServerOptions::default();
        let first = StdioServer::spawn(&sandbox, &options)?;
        let second = StdioServer::spawn(&sandbox, &options)?;
        let pids = [first.pid()?, second.pid()?];
        let (first, second) = tokio::join!(first.connect(), second.connect());
        let (first, second) = (first?, second?);

        first.session().status(&directory_of("first")).await?;
        second.session().status(&directory_of("second")).await?;
        first
            .session()
            .ok(
                "create_project",
                json!({ "project_id": "shared", "name": "Shared", "created_by": "first" }),
            )
            .await?;
        let info = second
            .session()
            .ok("get_project_info", json!({ "project_id": "shared" }))
            .await?;
        assert_eq!(member_names(&info)?, ["first"], "round {round}");

        let owner = owner_pid(&sandbox)?.context("owner.json is missing")?;
        assert!(
            pids.contains(&owner),
            "round {round}: owner.json names pid {owner}, not one of {pids:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn stale_owner_file_is_replaced() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // A port that was free a moment ago and now has no listener.
    let closed_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let stale_url = format!("http://127.0.0.1:{closed_port}/mcp");
    write_file(
        &sandbox.data_dir().join("owner.json"),
        json!({ "pid": 999_999, "url": stale_url, "version": "0.0.0" })
            .to_string()
            .as_bytes(),
    )?;

    let server =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    server
        .session()
        .ok(
            "create_project",
            json!({ "project_id": "fresh", "name": "Fresh", "created_by": "alice" }),
        )
        .await?;

    let record = owner_record(&sandbox)?.context("owner.json is missing")?;
    assert_eq!(record["pid"], json!(server.pid()?));
    assert_ne!(record["url"], json!(stale_url));
    Ok(())
}

#[tokio::test]
async fn killed_owner_file_is_replaced() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default();
    let first = StdioServer::start_as(&sandbox, &options, &directory_of("alice")).await?;
    first
        .session()
        .ok(
            "create_project",
            json!({ "project_id": "kept", "name": "Kept", "created_by": "alice" }),
        )
        .await?;
    let first_pid = first.pid()?;
    let (_first_session, mut first_process) = first.into_parts();
    first_process.kill().await?;
    assert_eq!(
        owner_pid(&sandbox)?,
        Some(first_pid),
        "a killed owner cannot remove owner.json, so it should still name that owner"
    );

    let second = StdioServer::start_as(&sandbox, &options, &directory_of("bob")).await?;
    let info = second
        .session()
        .ok("get_project_info", json!({ "project_id": "kept" }))
        .await?;
    assert_eq!(member_names(&info)?, ["alice"]);
    assert_eq!(owner_pid(&sandbox)?, Some(second.pid()?));
    Ok(())
}

#[tokio::test]
async fn forwarded_client_keeps_its_client_id() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let owner_directory = directory_of("owner");
    let owner =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &owner_directory).await?;
    let forwarder_options = ServerOptions::default().with_env("BRAINSTORM_CLIENT_ID", "agent-x");
    let forwarder = StdioServer::start(&sandbox, &forwarder_options).await?;
    assert_eq!(
        owner_pid(&sandbox)?,
        Some(owner.pid()?),
        "the first process should own the folder, so that the second one forwards"
    );

    let forwarded = forwarder
        .session()
        .status(&directory_of("forwarder"))
        .await?;
    assert_eq!(text_field(&forwarded, "client_id")?, "agent-x");

    let own = owner.session().status(&owner_directory).await?;
    assert_eq!(
        text_field(&own, "client_id")?,
        derived_client_id(&owner_directory)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_takes_over_when_owner_exits() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default();
    let owner = StdioServer::start_as(&sandbox, &options, &directory_of("alice")).await?;
    owner
        .session()
        .ok(
            "create_project",
            json!({ "project_id": "relay", "name": "Relay", "created_by": "alice" }),
        )
        .await?;
    let forwarder = StdioServer::start_as(&sandbox, &options, &directory_of("bob")).await?;
    forwarder
        .session()
        .ok(
            "join_project",
            json!({ "project_id": "relay", "agent_name": "bob" }),
        )
        .await?;
    let owner_pid_before = owner.pid()?;
    assert_eq!(owner_pid(&sandbox)?, Some(owner_pid_before));

    let forwarder_log = || format!("forwarder log:\n{}", forwarder.log());
    let exit = owner.shutdown().await?;
    assert!(exit.success(), "the owner exited with {exit}");

    // No status call since the owner left: the forwarder's session must carry over.
    let session = forwarder.session();
    let rejoined = session
        .ok(
            "join_project",
            json!({ "project_id": "relay", "agent_name": "bob" }),
        )
        .await
        .with_context(forwarder_log)?;
    assert_eq!(rejoined["role"], json!("contributor"));
    session
        .fails(
            "join_project",
            json!({ "project_id": "relay", "agent_name": "robert" }),
            "CLIENT_ALREADY_MEMBER",
        )
        .await?;
    let info = session
        .ok("get_project_info", json!({ "project_id": "relay" }))
        .await?;
    assert_eq!(member_names(&info)?, ["alice", "bob"]);

    let new_owner =
        wait_for_owner_pid(&sandbox, OWNER_LIMIT, |pid| pid != owner_pid_before).await?;
    assert_eq!(new_owner, forwarder.pid()?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_forwards_to_running_serve() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let serve_pid = server.pid()?;
    wait_for_owner_pid(&sandbox, OWNER_LIMIT, |pid| pid == serve_pid).await?;

    let stdio =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    let from_stdio = stdio.session();
    from_stdio
        .ok(
            "create_project",
            json!({ "project_id": "bridge", "name": "Bridge", "created_by": "alice" }),
        )
        .await?;
    from_stdio
        .ok(
            "store_resource",
            json!({
                "project_id": "bridge",
                "resource_id": "from-stdio",
                "name": "From stdio",
                "agent_name": "alice",
                "content": "written over stdio",
            }),
        )
        .await?;

    let from_http = server.agent(&directory_of("bob")).await?;
    from_http
        .ok(
            "join_project",
            json!({ "project_id": "bridge", "agent_name": "bob" }),
        )
        .await?;
    let read_over_http = from_http
        .ok(
            "get_resource",
            json!({ "project_id": "bridge", "resource_id": "from-stdio", "agent_name": "bob" }),
        )
        .await?;
    assert_eq!(read_over_http["content"], json!("written over stdio"));
    from_http
        .ok(
            "store_resource",
            json!({
                "project_id": "bridge",
                "resource_id": "from-http",
                "name": "From HTTP",
                "agent_name": "bob",
                "content": "written over HTTP",
            }),
        )
        .await?;

    let read_over_stdio = from_stdio
        .ok(
            "get_resource",
            json!({ "project_id": "bridge", "resource_id": "from-http", "agent_name": "alice" }),
        )
        .await?;
    assert_eq!(read_over_stdio["content"], json!("written over HTTP"));
    let info = from_stdio
        .ok("get_project_info", json!({ "project_id": "bridge" }))
        .await?;
    assert_eq!(member_names(&info)?, ["alice", "bob"]);
    assert_eq!(
        owner_pid(&sandbox)?,
        Some(serve_pid),
        "the stdio process should forward, leaving serve the owner"
    );
    Ok(())
}
