//! Group commit: concurrent write calls share one write transaction and one durable commit.
//!
//! Calls are queued to one committer thread. It takes every call waiting in the queue (up to
//! a maximum), runs them one after another in one write transaction, so each call reads the
//! effects of the calls before it, and commits once. No caller gets its result before the
//! commit that contains its write is durable. A lone call is committed at once: nothing waits for
//! company.
//!
//! A call that fails without writing leaves the transaction as it was. A call that fails
//! after writing cannot be undone inside the transaction (redb takes savepoints only in a
//! clean transaction), so the committer aborts the transaction and runs the batch again
//! without that call. Calls are therefore `Fn`: a call may run more than once, and only its
//! last run, in the transaction that commits, counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use redb::{Database, Durability};
use tracing::{debug, error};

use super::{StorageError, WriteTxn};

/// One queued call, with its result kept until the batch commits.
trait Job: Send {
    /// Runs the call in `tx`; returns whether it succeeded.
    fn run(&mut self, tx: &WriteTxn) -> bool;
    /// Sends the caller its result once the batch's commit has ended with `commit`.
    fn finish(self: Box<Self>, commit: Result<(), &StorageError>);
}

struct Call<T, E, F> {
    work: F,
    result: Option<Result<T, E>>,
    reply: mpsc::SyncSender<Result<T, E>>,
}

impl<T, E, F> Job for Call<T, E, F>
where
    T: Send,
    E: From<StorageError> + Send,
    F: Fn(&WriteTxn) -> Result<T, E> + Send,
{
    fn run(&mut self, tx: &WriteTxn) -> bool {
        let result = (self.work)(tx);
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn finish(self: Box<Self>, commit: Result<(), &StorageError>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(err), _) => Err(E::from(StorageError::Batch(err.to_string()))),
            (Ok(()), None) => Err(E::from(StorageError::Batch("the call never ran".into()))),
        };
        // The caller may have gone away; its result is then dropped.
        let _ = self.reply.send(answer);
    }
}

/// Settings of group commit.
#[derive(Debug, Clone, Copy)]
pub struct CommitOptions {
    /// Maximum calls in one transaction; 1 commits every call on its own.
    pub max_batch: usize,
    /// `Immediate` (durable at commit, the default) or `None` (faster, lost on a crash).
    pub durability: Durability,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            max_batch: 256,
            durability: Durability::Immediate,
        }
    }
}

/// The committer thread and the queue that feeds it.
pub struct Committer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    /// Calls sent to the thread and not yet taken into a batch.
    queued: Arc<AtomicUsize>,
}

impl Committer {
    /// Starts the committer thread on `db`.
    pub fn start(db: Arc<Database>, options: CommitOptions) -> Committer {
        let (queue, calls) = mpsc::channel::<Box<dyn Job>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&queued);
        let thread = std::thread::Builder::new()
            .name("brainstorm-commit".into())
            .spawn(move || run_committer(&db, &calls, options, &counter))
            .expect("the committer thread starts");
        Committer {
            queue: Some(queue),
            thread: Some(thread),
            queued,
        }
    }

    /// Returns the number of calls waiting for the next batch.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Runs `work` in the next batch and returns its result once the batch is durable.
    pub fn submit<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: Fn(&WriteTxn) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        let call = Box::new(Call {
            work,
            result: None,
            reply,
        });
        let queue = self
            .queue
            .as_ref()
            .ok_or(StorageError::Batch("the committer stopped".into()))?;
        self.queued.fetch_add(1, Ordering::AcqRel);
        queue
            .send(call)
            .map_err(|_| StorageError::Batch("the committer stopped".into()))?;
        answer
            .recv()
            .unwrap_or_else(|_| Err(E::from(StorageError::Batch("the committer stopped".into()))))
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the queue ends the thread after the calls already queued.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_committer(
    db: &Database,
    calls: &mpsc::Receiver<Box<dyn Job>>,
    options: CommitOptions,
    queued: &AtomicUsize,
) {
    while let Ok(first) = calls.recv() {
        queued.fetch_sub(1, Ordering::AcqRel);
        let mut batch = vec![first];
        while batch.len() < options.max_batch.max(1) {
            match calls.try_recv() {
                Ok(call) => {
                    queued.fetch_sub(1, Ordering::AcqRel);
                    batch.push(call);
                }
                Err(_) => break,
            }
        }
        run_batch(db, batch, options.durability);
    }
    if matches!(options.durability, Durability::None) {
        // Commits without sync are made durable by a later synced commit: this one.
        let flushed = begin(db, Durability::Immediate).and_then(WriteTxn::commit);
        if let Err(err) = flushed {
            error!(error = %err, "cannot sync the last commits at shutdown");
        }
    }
}

fn begin(db: &Database, durability: Durability) -> Result<WriteTxn, StorageError> {
    let mut tx = db.begin_write()?;
    tx.set_durability(durability)?;
    Ok(WriteTxn::new(tx))
}

fn run_batch(db: &Database, mut pending: Vec<Box<dyn Job>>, durability: Durability) {
    let mut failed: Vec<Box<dyn Job>> = Vec::new();
    let size = pending.len();
    'attempt: loop {
        let txn = match begin(db, durability) {
            Ok(txn) => txn,
            Err(err) => {
                error!(error = %err, calls = size, "cannot begin a write transaction");
                pending
                    .into_iter()
                    .chain(failed)
                    .for_each(|call| call.finish(Err(&err)));
                return;
            }
        };
        let mut index = 0;
        let mut any_written = false;
        while index < pending.len() {
            txn.clear_written();
            if pending[index].run(&txn) {
                any_written |= txn.written();
                index += 1;
                continue;
            }
            let call = pending.remove(index);
            failed.push(call);
            if txn.written() {
                // The failed call wrote before it failed: start over without it.
                debug!(
                    calls = pending.len(),
                    "a call failed after writing; running the batch again"
                );
                drop(txn);
                continue 'attempt;
            }
        }
        // A batch that wrote nothing (only rejected calls, say) needs no commit and no sync.
        let committed = if any_written { txn.commit() } else { Ok(()) };
        if let Err(err) = &committed {
            error!(error = %err, calls = size, "batch commit failed");
        }
        let outcome = committed.as_ref().map(|_| ());
        for call in pending.into_iter().chain(failed) {
            call.finish(outcome);
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::storage::Store;
    use crate::storage::records::ClientRecord;

    fn client(id: &str) -> ClientRecord {
        ClientRecord {
            client_id: id.into(),
            created_at_ms: 1,
            last_seen_ms: 1,
        }
    }

    /// Waits until `count` calls are queued behind the running batch.
    fn wait_for_queue(store: &Store, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.committer.queued() < count {
            assert!(Instant::now() < deadline, "calls were not queued");
            std::thread::yield_now();
        }
    }

    #[test]
    fn rejected_call_leaves_batch_intact() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open(&dir.path().join("db.redb")).expect("open"));

        // A first call keeps the committer busy, so that the next three form one batch.
        let (release, held) = mpsc::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(held));
        let (started, running) = mpsc::channel::<()>();
        let blocker = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                store.write(move |tx| {
                    let _ = started.send(());
                    let _ = held
                        .lock()
                        .expect("lock")
                        .recv_timeout(Duration::from_secs(10));
                    tx.put_client(&client("first"))
                })
            })
        };
        running
            .recv_timeout(Duration::from_secs(10))
            .expect("the first call runs");
        let runs = Arc::new(AtomicUsize::new(0));
        // The calls are queued one at a time, so that the batch runs them as x, y, z and the
        // rejected call sits in the middle.
        let mut callers = Vec::new();
        for (position, id) in ["x", "y", "z"].into_iter().enumerate() {
            let store_for_caller = Arc::clone(&store);
            let runs = Arc::clone(&runs);
            callers.push(std::thread::spawn(move || {
                store_for_caller.write(move |tx| -> Result<(), StorageError> {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tx.put_client(&client(id))?;
                    match id {
                        "y" => Err(StorageError::Batch("rejected after writing".into())),
                        _ => Ok(()),
                    }
                })
            }));
            wait_for_queue(&store, position + 1);
        }
        release.send(()).expect("release the first call");

        blocker
            .join()
            .expect("first caller")
            .expect("first call commits");
        let outcomes: Vec<_> = callers
            .into_iter()
            .map(|c| c.join().expect("caller"))
            .collect();
        let present = |id: &str| {
            store
                .read(|tx| Ok::<_, StorageError>(tx.client(id)?.is_some()))
                .expect("read")
        };

        assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
        assert!(
            outcomes[1].is_err(),
            "the rejected call reports its failure"
        );
        assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);
        assert!(present("x"));
        assert!(!present("y"), "the rejected call's write must not land");
        assert!(present("z"));
        // x, then y (rejected after writing, so the batch starts over), then x again and z.
        assert_eq!(
            runs.load(Ordering::SeqCst),
            4,
            "the batch ran again without the failed call"
        );
    }

    #[test]
    fn concurrent_writes_each_land_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open(&dir.path().join("db.redb")).expect("open"));
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let id = format!("client-{i}");
                    store.write(move |tx| tx.put_client(&client(&id)))
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer").expect("write commits");
        }
        for i in 0..64 {
            let id = format!("client-{i}");
            let found = store
                .read(|tx| Ok::<_, StorageError>(tx.client(&id)?.is_some()))
                .expect("read");
            assert!(found, "{id} is missing");
        }
    }

    #[test]
    fn one_cas_per_etag_wins_within_a_batch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open(&dir.path().join("db.redb")).expect("open"));
        store
            .write(|tx| {
                tx.put_client(&ClientRecord {
                    last_seen_ms: 0,
                    ..client("counter")
                })
            })
            .expect("seed");

        let (release, held) = mpsc::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(held));
        let (started, running) = mpsc::channel::<()>();
        let blocker = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                store.write(move |tx| {
                    let _ = started.send(());
                    let _ = held
                        .lock()
                        .expect("lock")
                        .recv_timeout(Duration::from_secs(10));
                    tx.put_client(&client("first"))
                })
            })
        };
        running
            .recv_timeout(Duration::from_secs(10))
            .expect("the first call runs");
        // Eight compare-and-swaps that all read version 0 queue into one batch. last_seen_ms
        // plays the role of an etag.
        let writers: Vec<_> = (1..=8)
            .map(|writer| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    store.write(move |tx| -> Result<bool, StorageError> {
                        let current = tx.client("counter")?.expect("seeded");
                        if current.last_seen_ms != 0 {
                            return Ok(false);
                        }
                        tx.put_client(&ClientRecord {
                            last_seen_ms: writer,
                            ..current
                        })?;
                        Ok(true)
                    })
                })
            })
            .collect();
        wait_for_queue(&store, 8);
        release.send(()).expect("release the first call");

        blocker
            .join()
            .expect("first caller")
            .expect("first call commits");
        let wins = writers
            .into_iter()
            .map(|w| w.join().expect("writer").expect("write commits"))
            .filter(|won| *won)
            .count();
        assert_eq!(wins, 1, "exactly one swap from version 0 may win");
    }
}
