//! Storage cost against database size: fills a fresh database with N resources and N
//! messages, then times single operations on it. Prints one table row per size.
//!
//! Run with `cargo bench --bench scale`. `BRAINSTORM_SCALE_SIZES` (comma-separated, for
//! example `1000,100000`) replaces the default sizes, and the database lives in a temporary
//! folder under `BRAINSTORM_BENCH_DIR` when set, else the system's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brainstorm::storage::records::{ManifestRecord, MessageRecord, ResourceKind};
use brainstorm::storage::{StorageError, Store};

/// Database sizes measured by default: resources, and as many messages.
const DEFAULT_SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];

/// Records inserted per write transaction while filling.
const FILL_BATCH: u64 = 50_000;

/// Timed repetitions of each operation at each size.
const SAMPLES: usize = 3_000;

/// Agents whose inboxes hold the filler messages.
const FILL_RECIPIENTS: u64 = 1_000;

const PROJECT: &str = "bench";

/// Agent whose inbox the timed push and take use. Its inbox contains none of the filler
/// messages.
const RECEIVER: &str = "receiver";

fn main() {
    let sizes = match std::env::var("BRAINSTORM_SCALE_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|size| {
                size.trim().parse().unwrap_or_else(|err| {
                    panic!("BRAINSTORM_SCALE_SIZES contains {size:?}, not a count: {err}")
                })
            })
            .collect(),
        Err(_) => DEFAULT_SIZES.to_vec(),
    };
    println!(
        "{:>10} {:>8} {:>8} {:>10} {:>10} {:>12} {:>12} {:>14} {:>14}",
        "size",
        "fill s",
        "file MB",
        "cas p50",
        "cas p99",
        "read p50",
        "read p99",
        "msg p50",
        "msg p99"
    );
    for size in sizes {
        measure_size(size);
    }
    println!(
        "\nsize: resources in the database, and as many messages in {FILL_RECIPIENTS} inboxes.\n\
         Times in µs, over {SAMPLES} operations each. cas: etag compare-and-swap write on one \
         resource, durably committed. read: one manifest read by id, ids drawn at random. \
         msg: push one message, then take it (read the inbox and archive it): two durable \
         commits."
    );
}

/// Fills a fresh database with `size` resources and messages, times the operations, and
/// prints the row.
fn measure_size(size: u64) {
    let dir = bench_dir();
    let path = dir.join("scale.redb");
    let store = Store::open(&path).expect("open the database");

    let fill_started = Instant::now();
    fill(&store, size);
    let fill_seconds = fill_started.elapsed().as_secs_f64();
    let file_mb = file_size(&path) as f64 / 1e6;

    let cas = time_cas(&store, size);
    let reads = time_manifest_reads(&store, size);
    let messages = time_push_and_take(&store);

    println!(
        "{size:>10} {fill_seconds:>8.1} {file_mb:>8.1} {:>10.1} {:>10.1} {:>12.2} {:>12.2} {:>14.1} {:>14.1}",
        percentile_us(&cas, 50.0),
        percentile_us(&cas, 99.0),
        percentile_us(&reads, 50.0),
        percentile_us(&reads, 99.0),
        percentile_us(&messages, 50.0),
        percentile_us(&messages, 99.0),
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Inserts `size` resources and `size` messages in transactions of `FILL_BATCH` records.
fn fill(store: &Store, size: u64) {
    let now_ms = now_ms();
    let mut start = 0;
    while start < size {
        let end = (start + FILL_BATCH).min(size);
        store
            .write(move |tx| {
                for index in start..end {
                    let id = resource_id(index);
                    tx.put_resource(&manifest(&id, "e1"), b"00000001")?;
                    let recipient = format!("agent-{}", index % FILL_RECIPIENTS);
                    tx.push_message(&recipient, &message(index, &recipient, now_ms))?;
                }
                Ok::<_, StorageError>(())
            })
            .expect("fill the database");
        start = end;
    }
}

/// Times `SAMPLES` etag compare-and-swap writes on the resource in the middle of the id range.
fn time_cas(store: &Store, size: u64) -> Vec<Duration> {
    let id = resource_id(size / 2);
    let mut etag = "e1".to_owned();
    let mut samples = Vec::with_capacity(SAMPLES);
    for write in 0..SAMPLES {
        let next = format!("e{}", write + 2);
        let started = Instant::now();
        let swapped = {
            let (id, expected, next) = (id.clone(), etag.clone(), next.clone());
            store
                .write(move |tx| {
                    let current = tx.manifest(PROJECT, &id)?;
                    if current.is_none_or(|manifest| manifest.etag != expected) {
                        return Ok::<_, StorageError>(false);
                    }
                    tx.put_resource(&manifest(&id, &next), b"00000002")?;
                    Ok(true)
                })
                .expect("etag compare-and-swap")
        };
        samples.push(started.elapsed());
        assert!(
            swapped,
            "the write with etag {etag} on {id} found another etag"
        );
        etag = next;
    }
    samples
}

/// Times `SAMPLES` manifest reads of resources chosen at random.
fn time_manifest_reads(store: &Store, size: u64) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let id = resource_id(rand::random_range(0..size));
        let started = Instant::now();
        let found = store
            .read(|tx| tx.manifest(PROJECT, &id))
            .expect("read a manifest");
        samples.push(started.elapsed());
        assert!(found.is_some(), "manifest {id} is missing");
    }
    samples
}

/// Times `SAMPLES` rounds of pushing one message to `RECEIVER` and taking it: reading the
/// inbox and archiving what it held, as `receive_messages` does.
fn time_push_and_take(store: &Store) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for round in 0..SAMPLES as u64 {
        let now_ms = now_ms();
        let sent = message(u64::MAX - round, RECEIVER, now_ms);
        let started = Instant::now();
        store
            .write(move |tx| tx.push_message(RECEIVER, &sent))
            .expect("push a message");
        let taken = store
            .write(move |tx| {
                let unread = tx.inbox(PROJECT, RECEIVER, now_ms)?;
                let seqs: Vec<u64> = unread.iter().map(|(seq, _)| *seq).collect();
                tx.archive_messages(PROJECT, RECEIVER, &seqs)?;
                Ok::<_, StorageError>(seqs.len())
            })
            .expect("take the message");
        samples.push(started.elapsed());
        assert_eq!(taken, 1, "round {round} took {taken} messages, expected 1");
    }
    samples
}

/// Returns the nearest-rank `percent` percentile of `samples` in microseconds.
fn percentile_us(samples: &[Duration], percent: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e6
}

fn resource_id(index: u64) -> String {
    format!("r{index:08}")
}

fn manifest(resource_id: &str, etag: &str) -> ManifestRecord {
    ManifestRecord {
        resource_id: resource_id.into(),
        project_id: PROJECT.into(),
        name: "Scale".into(),
        description: None,
        created_at_ms: 0,
        updated_at_ms: 0,
        etag: etag.into(),
        mime_type: None,
        size_bytes: 8,
        source_path: None,
        read: vec!["*".into()],
        write: vec!["*".into()],
        metadata_json: None,
        creator: "writer".into(),
        content_hash: String::new(),
        version: 1,
        kind: ResourceKind::Document,
    }
}

fn message(index: u64, recipient: &str, now_ms: i64) -> MessageRecord {
    MessageRecord {
        message_id: format!("m{index}"),
        project_id: PROJECT.into(),
        from_agent: "sender".into(),
        to_agent: Some(recipient.into()),
        broadcast: false,
        reply_expected: false,
        payload_json: r#"{"type":"note","text":"hello"}"#.into(),
        created_at_ms: now_ms,
        ttl_secs: 86_400,
        priority: None,
        trace_id: None,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

/// Creates a new folder for one database.
fn bench_dir() -> PathBuf {
    let base =
        std::env::var_os("BRAINSTORM_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!(
        "brainstorm-scale-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("create the benchmark folder");
    dir
}
