//! Storage-layer benchmarks: etag compare-and-swap writes with and without group commit,
//! message send and receive, and record encoding.
//!
//! Run with `cargo bench --bench storage`. The database lives in a temporary folder under
//! `BRAINSTORM_BENCH_DIR` when set (to measure another disk), else the system's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brainstorm::storage::records::{ManifestRecord, MessageRecord, ResourceKind};
use brainstorm::storage::{CommitOptions, StorageError, Store, decode, encode};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn bench_dir() -> PathBuf {
    let base =
        std::env::var_os("BRAINSTORM_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!(
        "brainstorm-bench-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("bench folder");
    dir
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

fn manifest(resource_id: &str, etag: &str) -> ManifestRecord {
    ManifestRecord {
        resource_id: resource_id.into(),
        project_id: "bench".into(),
        name: "Bench".into(),
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

/// One etag compare-and-swap: read the manifest, compare its etag, write the next version.
fn cas(
    store: &Store,
    resource_id: String,
    expected: String,
    next: String,
) -> Result<bool, StorageError> {
    store.write(move |tx| {
        let current = tx.manifest("bench", &resource_id)?;
        if current.as_ref().is_some_and(|m| m.etag != expected) {
            return Ok(false);
        }
        tx.put_resource(&manifest(&resource_id, &next), b"00000001")?;
        Ok(true)
    })
}

/// Runs `total` CAS writes spread over `writers` threads, each on its own resource, and
/// returns the elapsed time.
fn run_writers(store: &Arc<Store>, writers: usize, total: u64) -> Duration {
    let per_writer = (total / writers as u64).max(1);
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let store = Arc::clone(store);
            std::thread::spawn(move || {
                let resource = format!("r{w}");
                let mut etag = "e0".to_owned();
                for i in 0..per_writer {
                    let next = format!("e{}", i + 1);
                    let swapped =
                        cas(&store, resource.clone(), etag.clone(), next.clone()).expect("cas");
                    if swapped {
                        etag = next;
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer");
    }
    // Scale to the requested count when it did not divide evenly.
    started
        .elapsed()
        .mul_f64(total as f64 / (per_writer * writers as u64) as f64)
}

fn cas_writes(c: &mut Criterion) {
    let mut group = c.benchmark_group("cas_write");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (label, max_batch) in [("unbatched", 1), ("batched", 256)] {
        for writers in [1usize, 8, 64] {
            let dir = bench_dir();
            let options = CommitOptions {
                max_batch,
                ..CommitOptions::default()
            };
            let store = Arc::new(Store::open_with(&dir.join("bench.redb"), options).expect("open"));
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(BenchmarkId::new(label, writers), &writers, |b, &writers| {
                b.iter_custom(|iters| run_writers(&store, writers, iters.max(writers as u64)));
            });
            drop(store);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    group.finish();
}

fn message(seq: u64) -> MessageRecord {
    MessageRecord {
        message_id: format!("m{seq}"),
        project_id: "bench".into(),
        from_agent: "sender".into(),
        to_agent: Some("receiver".into()),
        broadcast: false,
        reply_expected: false,
        payload_json: r#"{"type":"note","text":"hello"}"#.into(),
        created_at_ms: 0,
        ttl_secs: 86_400,
        priority: None,
        trace_id: None,
    }
}

fn messages(c: &mut Criterion) {
    let dir = bench_dir();
    let store = Store::open(&dir.join("bench.redb")).expect("open");
    let mut group = c.benchmark_group("message");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("send_then_receive", |b| {
        let mut seq = 0;
        b.iter(|| {
            seq += 1;
            let sent = message(seq);
            store
                .write(move |tx| tx.push_message("receiver", &sent))
                .expect("send");
            store
                .write(|tx| {
                    let unread = tx.inbox("bench", "receiver", 0)?;
                    let seqs: Vec<u64> = unread.iter().map(|(seq, _)| *seq).collect();
                    tx.archive_messages("bench", "receiver", &seqs)?;
                    Ok::<_, StorageError>(seqs.len())
                })
                .expect("receive")
        });
    });
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn encoding(c: &mut Criterion) {
    let record = manifest("resource", "0123456789abcdef");
    let bytes = encode(&record).expect("encode");
    let mut group = c.benchmark_group("record");
    group.bench_function("encode_manifest", |b| {
        b.iter(|| encode(&record).expect("encode"))
    });
    group.bench_function("decode_manifest", |b| {
        b.iter(|| decode::<ManifestRecord>("manifests", &bytes).expect("decode"))
    });
    group.finish();
}

criterion_group!(benches, cas_writes, messages, encoding);
criterion_main!(benches);
