//! Group commit keeps each stream's pushes in seq order: a push whose
//! predecessor is still on the way waits for it (once per stream), and the
//! queue's writer thread answers every push.

mod common;

use cairn_core::chain::StreamHead;
use cairn_core::clock::ManualClock;
use cairn_core::identity::NodeIdentity;
use cairn_hub::group::{PushQueue, Waiting, in_stream_order};
use cairn_hub::memory::MemoryBackend;
use cairn_hub::signer::LogSigner;
use cairn_hub::{Hub, PushError, PushRequest};
use std::sync::Arc;

fn hub() -> Hub<MemoryBackend> {
    let backend = MemoryBackend::new();
    backend.enroll("a", common::identity("a").public_key());
    Hub::new(
        backend,
        LogSigner::new(NodeIdentity::from_seed("hub", [9; 32]), "test.hub".into()),
        Arc::new(ManualClock::at(1_700_000_000_000)),
    )
}

fn request(head: &mut StreamHead, count: u64) -> PushRequest {
    common::decoded("a", head, count as usize)
}

fn waiting(head: &mut StreamHead, count: u64) -> Waiting {
    Waiting::new(request(head, count), tokio::sync::oneshot::channel().0)
}

#[test]
fn pushes_wait_for_their_predecessors_but_only_one_per_stream() {
    let hub = hub();
    let mut head = StreamHead::EMPTY;
    let (first, second, third) = (
        waiting(&mut head, 2),
        waiting(&mut head, 2),
        waiting(&mut head, 2),
    );
    let seqs = |pushes: &[Waiting]| -> Vec<(u64, u64)> {
        pushes.iter().filter_map(Waiting::seqs).collect()
    };
    // Arriving as third, second, first: applied as first, second, third.
    let (ready, parked) = in_stream_order(&hub, vec![third, second, first]);
    assert_eq!(seqs(&ready), [(1, 2), (3, 4), (5, 6)]);
    assert!(parked.is_empty());
    // Without their predecessor, one waits; the next is refused at once.
    let (second, third) = (waiting(&mut head, 2), waiting(&mut head, 2));
    let (ready, parked) = in_stream_order(&hub, vec![third, second]);
    assert_eq!(seqs(&parked), [(7, 8)]);
    assert_eq!(seqs(&ready), [(9, 10)]);
}

#[test]
fn the_queue_applies_pushes_sent_out_of_order_in_order() {
    let hub = Arc::new(hub());
    let queue = PushQueue::start(hub.clone()).unwrap();
    let mut head = StreamHead::EMPTY;
    let (first, second) = (request(&mut head, 3), request(&mut head, 4));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Both in the queue at once, the later push first.
    let (later, earlier) =
        runtime.block_on(async { tokio::join!(queue.push(second), queue.push(first)) });
    assert_eq!(earlier.unwrap().watermark, 3);
    assert_eq!(later.unwrap().watermark, 7);
    // A push past a gap that never fills is refused whole, nothing stored.
    let mut skipped = head;
    let _ = request(&mut skipped, 2);
    let gap = request(&mut skipped, 1);
    let refused = runtime.block_on(queue.push(gap)).unwrap_err();
    assert!(
        matches!(refused, PushError::Gap { expected: 8, .. }),
        "{refused:?}"
    );
    assert_eq!(hub.backend().state().log.len(), 7);
}

#[test]
fn ops_the_hub_built_on_a_head_that_moved_are_refused_not_an_equivocation() {
    let hub = hub();
    let (mut ours, mut theirs) = (StreamHead::EMPTY, StreamHead::EMPTY);
    // Two hub processes built a client's next op on the same head; the
    // other one's push committed first.
    let mut first = request(&mut theirs, 1);
    first.built_on = Some(StreamHead::EMPTY);
    let mut second = common::push("a", &mut ours, 1, "other");
    second.built_on = Some(StreamHead::EMPTY);
    assert!(hub.push(first).is_ok());
    let refused = hub.push(second).unwrap_err();
    assert!(
        matches!(
            refused,
            PushError::HeadMoved {
                built_on: 0,
                head: 1,
                ..
            }
        ),
        "{refused}"
    );
    let state = hub.backend().state();
    assert_eq!(state.log.len(), 1, "nothing stored");
    assert!(state.quarantine.is_empty(), "no equivocation");
    assert!(state.alerts.is_empty());
    assert!(state.streams.iter().all(|(_, _, row)| !row.held));
    // Built again on the head as it is, it goes in.
    let mut again = common::push("a", &mut theirs, 1, "other");
    again.built_on = Some(StreamHead {
        seq: 1,
        hash: state.streams[0].2.head.hash,
    });
    assert!(hub.push(again).unwrap().results[0].status == cairn_proto::OpStatus::Accepted);
}
