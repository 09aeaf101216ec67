//! Group commit for pushes, with each stream's pushes in seq order.
//!
//! Concurrent pushes (a thousand nodes coming back at once) wait in a
//! bounded queue, and one writer thread applies whatever has gathered as
//! one group ([`Writer::push_group`]: one transaction, one fsync, one
//! signed checkpoint). A lone push goes through at once, as a group of one.
//! A push that starts past the head its stream will have (its predecessor
//! is still on the way: a node keeps two pushes of a stream in flight)
//! waits up to [`PARK_MS`] and is then refused whole (`PushError::Gap`).

use crate::backend::{HubBackend, LogTx};
use crate::{Hub, PushError, PushRequest, StorageError};
use cairn_proto::PushResponse;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most ops the writer applies in one transaction.
pub const GROUP_OPS_MAX: usize = 16_384;
/// Most pushes waiting for the writer.
pub const PUSH_QUEUE_MAX: usize = 4_096;
/// How long a push that starts past its stream's head waits for the pushes
/// before it, ms.
pub const PARK_MS: u64 = 2_000;
/// Most ops of pushes waiting for their predecessors at once.
pub const PARKED_OPS_MAX: usize = 4 * crate::PUSH_OPS_MAX;

// A full push always fits in one group.
const _: () = assert!(GROUP_OPS_MAX >= crate::PUSH_OPS_MAX);

/// What the writer thread applies groups to.
pub trait Writer: Send + Sync + 'static {
    /// Verifies and persists a group (see [`Hub::push_group`]).
    fn push_group(&self, requests: Vec<PushRequest>) -> Vec<Result<PushResponse, PushError>>;
    /// The stream's head seq and whether it is held, as last committed.
    fn stream_head(&self, node: &str, stream: &str) -> Result<Option<(u64, bool)>, StorageError>;
}

impl<B: HubBackend + 'static> Writer for Hub<B> {
    fn push_group(&self, requests: Vec<PushRequest>) -> Vec<Result<PushResponse, PushError>> {
        Hub::push_group(self, requests)
    }

    fn stream_head(&self, node: &str, stream: &str) -> Result<Option<(u64, bool)>, StorageError> {
        let row = self.backend().read()?.stream(node, stream)?;
        Ok(row.map(|row| (row.head.seq, row.held)))
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<PushResponse, PushError>>;

/// A push on its way to the writer.
pub struct Waiting {
    request: PushRequest,
    reply: Reply,
    since: Instant,
}

impl Waiting {
    /// `request`, answered through `reply`, waiting from now.
    pub fn new(request: PushRequest, reply: Reply) -> Waiting {
        Waiting {
            request,
            reply,
            since: Instant::now(),
        }
    }

    /// The seqs of the first and last ops, when they decoded.
    pub fn seqs(&self) -> Option<(u64, u64)> {
        let decoded = self.request.decoded.as_ref()?;
        match (decoded.first(), decoded.last()) {
            (Some(Ok(first)), Some(Ok(last))) => Some((first.seq, last.seq)),
            _ => None,
        }
    }

    fn stream(&self) -> (String, String) {
        (self.request.node.clone(), self.request.stream.clone())
    }
}

/// Splits a gathered group into the pushes to apply now, each stream's in
/// seq order, and those that start past the head their stream will have
/// (their predecessor has not arrived yet) and may still wait.
pub fn in_stream_order(
    writer: &dyn Writer,
    mut group: Vec<Waiting>,
) -> (Vec<Waiting>, Vec<Waiting>) {
    group.sort_by_cached_key(|push| (push.stream(), push.seqs().map(|(first, _)| first)));
    let (mut ready, mut waiting) = (Vec::with_capacity(group.len()), Vec::new());
    let mut heads: HashMap<(String, String), u64> = HashMap::new();
    // What may wait is bounded, so that a node cannot park pushes without
    // end: one per stream (a node keeps two in flight) and PARKED_OPS_MAX
    // ops in all. Beyond that, a push past the head is refused at once.
    let mut parked_streams = HashSet::new();
    let mut parked_ops = 0;
    for push in group {
        let key = push.stream();
        let head = match heads.get(&key) {
            Some(&head) => Some(head),
            // A store fault here is the pipeline's to report: apply as is.
            None => match writer.stream_head(&key.0, &key.1) {
                Ok(Some((_, true))) | Err(_) => None,
                Ok(Some((seq, false))) => Some(seq),
                Ok(None) => Some(0),
            },
        };
        match (head, push.seqs()) {
            (Some(head), Some((first, _)))
                if first > head + 1
                    && push.since.elapsed() < Duration::from_millis(PARK_MS)
                    && parked_ops + push.request.ops.len() <= PARKED_OPS_MAX
                    && !parked_streams.contains(&key) =>
            {
                parked_ops += push.request.ops.len();
                parked_streams.insert(key);
                waiting.push(push);
            }
            (Some(head), Some((_, last))) => {
                heads.insert(key, head.max(last));
                ready.push(push);
            }
            _ => ready.push(push),
        }
    }
    (ready, waiting)
}

/// The queue in front of the writer thread.
#[derive(Clone)]
pub struct PushQueue {
    sender: tokio::sync::mpsc::Sender<(PushRequest, Reply)>,
    activity: Arc<Activity>,
}

impl PushQueue {
    /// Starts the writer thread; it ends when every queue handle is gone.
    pub fn start(writer: Arc<dyn Writer>) -> std::io::Result<PushQueue> {
        let (sender, receiver) = tokio::sync::mpsc::channel(PUSH_QUEUE_MAX);
        std::thread::Builder::new()
            .name("cairn-hub-writer".into())
            .spawn(move || write_groups(writer.as_ref(), receiver))?;
        Ok(PushQueue {
            sender,
            activity: Arc::default(),
        })
    }

    /// How busy the queue is (the compliance judge yields to pushes).
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// Queues a push and waits for its answer.
    pub async fn push(&self, request: PushRequest) -> Result<PushResponse, PushError> {
        let _busy = self.activity.begin();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let closed = || {
            PushError::Store(StorageError::Internal(
                "the hub's writer has stopped".into(),
            ))
        };
        self.sender
            .send((request, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Pushes in flight and when the last one ended: what the compliance judge
/// reads to give the pushes the machine first.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicU64,
    /// When the last push ended, ms since `epoch`, plus one (0: never).
    last_end_ms: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

/// A push in flight; it ends when dropped.
pub struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0
            .last_end_ms
            .store(self.0.now_ms() + 1, Ordering::Relaxed);
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    /// A push starts.
    pub fn begin(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self)
    }

    /// Whether a push is in flight or ended less than `quiet_ms` ago.
    pub fn busy(&self, quiet_ms: u64) -> bool {
        let last = self.last_end_ms.load(Ordering::Relaxed);
        self.in_flight.load(Ordering::Relaxed) > 0
            || (last > 0 && self.now_ms() + 1 - last < quiet_ms)
    }
}

/// The writer thread: gathers what waits, up to [`GROUP_OPS_MAX`] ops, and
/// applies it as one group.
fn write_groups(
    writer: &dyn Writer,
    mut receiver: tokio::sync::mpsc::Receiver<(PushRequest, Reply)>,
) {
    let mut parked: Vec<Waiting> = Vec::new();
    loop {
        // Block for work only when nothing is parked; parked pushes are
        // looked at again every millisecond.
        let first = if parked.is_empty() {
            match receiver.blocking_recv() {
                Some(first) => Some(first),
                None => break,
            }
        } else {
            receiver.try_recv().ok()
        };
        let mut group: Vec<Waiting> = std::mem::take(&mut parked);
        let mut ops: usize = group.iter().map(|waiting| waiting.request.ops.len()).sum();
        if let Some((request, reply)) = first {
            ops += request.ops.len();
            group.push(Waiting::new(request, reply));
        }
        while ops < GROUP_OPS_MAX {
            match receiver.try_recv() {
                Ok((request, reply)) => {
                    ops += request.ops.len();
                    group.push(Waiting::new(request, reply));
                }
                Err(_) => break,
            }
        }
        let (ready, waiting) = in_stream_order(writer, group);
        parked = waiting;
        if ready.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let (requests, replies): (Vec<_>, Vec<_>) = ready
            .into_iter()
            .map(|waiting| (waiting.request, waiting.reply))
            .unzip();
        for (reply, answer) in replies.into_iter().zip(writer.push_group(requests)) {
            let _ = reply.send(answer);
        }
    }
}
