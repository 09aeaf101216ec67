//! Merge laws, checked on random causal histories.
//!
//! A small simulation drives several replicas that write to one entity and
//! exchange ops at random, so every generated op carries the `base` its
//! author really had. The properties are then checked on the resulting op set.

use super::*;
use proptest::prelude::*;

fn schema() -> MergeSchema {
    let prefer = |group: &str| FieldRule::Prefer {
        group: group.into(),
        by: "confidence".into(),
    };
    MergeSchema {
        kind: MergeKind::Entity,
        fields: [
            ("status".to_string(), FieldRule::Lww),
            ("quantity".to_string(), FieldRule::Counter),
            ("tags".to_string(), FieldRule::Set),
            ("peak".to_string(), FieldRule::Max),
            ("low".to_string(), FieldRule::Min),
            ("x".to_string(), prefer("location")),
            ("confidence".to_string(), prefer("location")),
        ]
        .into(),
    }
}

fn config_schema() -> MergeSchema {
    MergeSchema {
        kind: MergeKind::Config,
        fields: BTreeMap::new(),
    }
}

/// One replica of the simulation: its node, its ops and its state.
#[derive(Clone)]
struct Replica {
    node: String,
    seq: u64,
    clock: crate::hlc::HybridClock,
    ops: Vec<MergeOp>,
    state: Option<EntityState>,
    /// How many times the incremental path had to fall back.
    fallbacks: u32,
}

impl Replica {
    fn new(index: usize) -> Replica {
        Replica {
            node: format!("n{index}"),
            seq: 0,
            clock: crate::hlc::HybridClock::new(Hlc::default(), u64::MAX),
            ops: Vec::new(),
            state: None,
            fallbacks: 0,
        }
    }

    /// Applies an op the way a store does: fast path, else recompute.
    fn receive(&mut self, schema: &MergeSchema, op: &MergeOp, now_ms: u64) {
        if self.ops.iter().any(|known| known.dot == op.dot) {
            return;
        }
        let _ = self.clock.receive(op.hlc, now_ms);
        self.ops.push(op.clone());
        self.state = match apply(schema, self.state.as_ref(), op) {
            Some(state) => Some(state),
            None => {
                self.fallbacks += 1;
                materialize(schema, &self.ops)
            }
        };
    }

    fn write(&mut self, schema: &MergeSchema, change: &Change, now_ms: u64) -> MergeOp {
        self.seq += 1;
        let base = self
            .state
            .as_ref()
            .map(|state| state.vv.clone())
            .unwrap_or_default();
        let present: Vec<Value> = self
            .state
            .as_ref()
            .and_then(|state| state.fields.get("tags"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let op = MergeOp {
            dot: Dot {
                stream_key: format!("{}:s", self.node),
                seq: self.seq,
            },
            hlc: self.clock.send(now_ms),
            node: self.node.clone(),
            base,
            delete: matches!(change, Change::Delete),
            changes: change.to_changes(schema.kind, &present),
        };
        self.receive(schema, &op, now_ms);
        op
    }
}

/// A random edit.
#[derive(Clone, Debug)]
enum Change {
    Delete,
    Put {
        status: Option<u8>,
        quantity: Option<i8>,
        add: Vec<u8>,
        remove_present: Vec<prop::sample::Index>,
        peak: Option<u8>,
        low: Option<u8>,
        location: Option<(u8, u8)>,
    },
}

impl Change {
    fn to_changes(&self, kind: MergeKind, present: &[Value]) -> Map<String, Value> {
        let Change::Put {
            status,
            quantity,
            add,
            remove_present,
            peak,
            low,
            location,
        } = self
        else {
            return Map::new();
        };
        let mut changes = Map::new();
        if kind == MergeKind::Config {
            changes.insert("doc".into(), json!(status.unwrap_or(0)));
            return changes;
        }
        if let Some(status) = status {
            changes.insert("status".into(), json!(format!("s{status}")));
        }
        if let Some(quantity) = quantity {
            changes.insert("quantity".into(), json!(quantity));
        }
        let removes: BTreeSet<String> = if present.is_empty() {
            BTreeSet::new()
        } else {
            remove_present
                .iter()
                .map(|index| {
                    present[index.index(present.len())]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect()
        };
        let adds: BTreeSet<String> = add
            .iter()
            .map(|tag| format!("t{tag}"))
            .filter(|tag| !removes.contains(tag))
            .collect();
        if !adds.is_empty() || !removes.is_empty() {
            changes.insert("tags".into(), json!({"add": adds, "remove": removes}));
        }
        if let Some(peak) = peak {
            changes.insert("peak".into(), json!(peak));
        }
        if let Some(low) = low {
            changes.insert("low".into(), json!(low));
        }
        if let Some((x, confidence)) = location {
            changes.insert("x".into(), json!(x));
            changes.insert("confidence".into(), json!(confidence));
        }
        changes
    }
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        1 => Just(Change::Delete),
        6 => (
            prop::option::of(0u8..3),
            prop::option::of(-3i8..4),
            prop::collection::vec(0u8..4, 0..3),
            prop::collection::vec(any::<prop::sample::Index>(), 0..2),
            prop::option::of(0u8..50),
            prop::option::of(0u8..50),
            prop::option::of((0u8..10, 0u8..3)),
        )
            .prop_map(|(status, quantity, add, remove_present, peak, low, location)| Change::Put {
                status,
                quantity,
                add,
                remove_present,
                peak,
                low,
                location,
            }),
    ]
}

/// A step of the simulation: a write at a replica, or a one-way sync.
#[derive(Clone, Debug)]
enum Step {
    Write(prop::sample::Index, Change),
    Sync(prop::sample::Index, prop::sample::Index),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            3 => (any::<prop::sample::Index>(), change()).prop_map(|(at, change)| Step::Write(at, change)),
            2 => (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(from, to)| Step::Sync(from, to)),
        ],
        1..40,
    )
}

/// Runs the simulation and returns the replicas.
fn simulate(schema: &MergeSchema, replicas: usize, steps: &[Step]) -> (Vec<Replica>, Vec<MergeOp>) {
    let mut nodes: Vec<Replica> = (0..replicas).map(Replica::new).collect();
    let mut all = Vec::new();
    for (tick, step) in steps.iter().enumerate() {
        // Time advances slowly, so HLC counters and ties get exercised.
        let now_ms = 1_000 + tick as u64 / 3;
        match step {
            Step::Write(at, change) => {
                let op = nodes[at.index(replicas)].write(schema, change, now_ms);
                all.push(op);
            }
            Step::Sync(from, to) => {
                let (from, to) = (from.index(replicas), to.index(replicas));
                let ops = nodes[from].ops.clone();
                for op in &ops {
                    nodes[to].receive(schema, op, now_ms);
                }
            }
        }
    }
    (nodes, all)
}

fn bytes_of(state: &Option<EntityState>) -> Option<Vec<u8>> {
    state.as_ref().map(EntityState::to_canonical_bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any permutation and duplication of the same ops gives the same bytes.
    #[test]
    fn order_and_duplicates_do_not_matter(
        steps in steps(),
        replicas in 1usize..4,
        shuffle_seed in any::<u64>(),
        duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        config in any::<bool>(),
    ) {
        let schema = if config { config_schema() } else { schema() };
        let (_, all) = simulate(&schema, replicas, &steps);
        let expected = bytes_of(&materialize(&schema, &all));
        let mut shuffled = all.clone();
        if !all.is_empty() {
            for index in &duplicates {
                shuffled.push(all[index.index(all.len())].clone());
            }
        }
        // A seeded Fisher-Yates shuffle keeps the case reproducible.
        let mut rng = shuffle_seed;
        for i in (1..shuffled.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (rng >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(bytes_of(&materialize(&schema, &shuffled)), expected.clone());
        // Applying one op at a time, in that order, with fallback, gives the same bytes.
        let mut replica = Replica::new(9);
        for op in &shuffled {
            replica.receive(&schema, op, 10_000);
        }
        prop_assert_eq!(bytes_of(&replica.state), expected);
    }

    /// Every replica's incremental state equals the state of its op set.
    #[test]
    fn incremental_equals_full(steps in steps(), replicas in 1usize..4, config in any::<bool>()) {
        let schema = if config { config_schema() } else { schema() };
        let (nodes, _) = simulate(&schema, replicas, &steps);
        for node in &nodes {
            prop_assert_eq!(bytes_of(&node.state), bytes_of(&materialize(&schema, &node.ops)));
        }
    }

    /// Replicas that exchanged everything hold identical bytes.
    #[test]
    fn full_exchange_converges(steps in steps(), replicas in 2usize..4) {
        let schema = schema();
        let (mut nodes, all) = simulate(&schema, replicas, &steps);
        for node in &mut nodes {
            for op in &all {
                node.receive(&schema, op, 10_000);
            }
        }
        let first = bytes_of(&nodes[0].state);
        for node in &nodes[1..] {
            prop_assert_eq!(bytes_of(&node.state), first.clone());
        }
    }

    /// With one writer, or writers that always sync before writing, nothing is concurrent.
    #[test]
    fn sequential_edits_never_conflict(changes in prop::collection::vec(change(), 1..30), writers in 1usize..4) {
        let schema = schema();
        let mut nodes: Vec<Replica> = (0..writers).map(Replica::new).collect();
        let mut all: Vec<MergeOp> = Vec::new();
        for (tick, change) in changes.iter().enumerate() {
            let writer = tick % writers;
            for op in all.clone() {
                nodes[writer].receive(&schema, &op, tick as u64);
            }
            all.push(nodes[writer].write(&schema, change, tick as u64));
        }
        let state = materialize(&schema, &all).unwrap();
        prop_assert!(state.conflicts.is_empty(), "{:?}", state.conflicts);
        for node in &nodes {
            prop_assert_eq!(node.fallbacks, 0);
        }
    }

    /// Two concurrent lww edits with different values always leave a conflict record.
    #[test]
    fn concurrent_lww_edits_conflict(
        prefix in prop::collection::vec(change(), 0..5),
        first in 0u8..3,
        second in 0u8..3,
        later_clock in any::<bool>(),
    ) {
        prop_assume!(first != second);
        let schema = schema();
        let mut a = Replica::new(0);
        for (tick, change) in prefix.iter().enumerate() {
            a.write(&schema, change, tick as u64);
        }
        let mut b = a.clone();
        b.node = "n1".into();
        b.seq = 0;
        let edit = |status: u8| Change::Put {
            status: Some(status),
            quantity: None,
            add: vec![],
            remove_present: vec![],
            peak: None,
            low: None,
            location: None,
        };
        let now = if later_clock { 500 } else { 100 };
        let op_a = a.write(&schema, &edit(first), 100);
        let op_b = b.write(&schema, &edit(second), now);
        a.receive(&schema, &op_b, 1_000);
        b.receive(&schema, &op_a, 1_000);
        let state = a.state.clone().unwrap();
        let conflict = state.conflicts.get("status").expect("a conflict record");
        prop_assert_eq!(conflict.len(), 2);
        prop_assert_eq!(bytes_of(&a.state), bytes_of(&b.state));
        // The winner is the one with the greater (hlc, node).
        let winner = if op_b.order_key() > op_a.order_key() { second } else { first };
        prop_assert_eq!(&state.fields["status"], &json!(format!("s{winner}")));
    }
}

#[test]
fn two_offline_tills_both_count() {
    let schema = schema();
    let mut hub = Replica::new(0);
    let create = hub.write(&schema, &put_quantity(100), 1);
    let mut till_a = Replica::new(1);
    let mut till_b = Replica::new(2);
    till_a.receive(&schema, &create, 2);
    till_b.receive(&schema, &create, 2);
    let sale_a = till_a.write(&schema, &put_quantity(-3), 3);
    let sale_b = till_b.write(&schema, &put_quantity(-2), 3);
    for op in [&sale_a, &sale_b] {
        hub.receive(&schema, op, 4);
    }
    let state = hub.state.unwrap();
    assert_eq!(state.fields["quantity"], json!(95));
    assert!(state.conflicts.is_empty());
}

#[test]
fn an_update_concurrent_with_a_delete_is_a_conflict_and_the_update_survives() {
    let schema = schema();
    let mut a = Replica::new(0);
    let create = a.write(&schema, &put_quantity(5), 1);
    let mut b = Replica::new(1);
    b.receive(&schema, &create, 1);
    let delete = a.write(&schema, &Change::Delete, 2);
    let update = b.write(&schema, &put_quantity(1), 2);
    let state = materialize(&schema, &[create, delete, update]).unwrap();
    assert!(!state.deleted);
    assert!(state.conflicts.contains_key(TOMBSTONE_CONFLICT));
    // The update survives with the record its author edited: the create
    // it saw, and its own change (issue 9, item 22).
    assert_eq!(state.fields["quantity"], json!(6));
}

#[test]
fn issue_9_22_an_update_concurrent_with_a_delete_keeps_the_fields_it_was_built_on() {
    let schema = schema();
    let mut a = Replica::new(0);
    let mut create = put_quantity(5);
    if let Change::Put { status, .. } = &mut create {
        *status = Some(1);
    }
    let create = a.write(&schema, &create, 1);
    let mut b = Replica::new(1);
    b.receive(&schema, &create, 1);
    let delete = a.write(&schema, &Change::Delete, 2);
    let update = b.write(&schema, &put_quantity(1), 2);
    for order in [
        vec![create.clone(), delete.clone(), update.clone()],
        vec![update.clone(), delete.clone(), create.clone()],
    ] {
        let state = materialize(&schema, &order).unwrap();
        assert!(!state.deleted);
        assert_eq!(
            state.fields["status"],
            json!("s1"),
            "the create's field stays"
        );
        let both: Vec<Value> = state.conflicts[TOMBSTONE_CONFLICT]
            .iter()
            .map(|candidate| candidate.value.clone())
            .collect();
        assert_eq!(both, [json!("delete"), json!("put")]);
    }
    // A delete the updater saw still removes what it saw: create, delete,
    // then (sequentially) a new put of only the quantity.
    let mut c = Replica::new(2);
    for op in [&create, &delete] {
        c.receive(&schema, op, 3);
    }
    let put = c.write(&schema, &put_quantity(2), 3);
    let state = materialize(&schema, &[create, delete, put]).unwrap();
    assert!(!state.fields.contains_key("status"), "{:?}", state.fields);
    assert_eq!(state.fields["quantity"], json!(2));
}

#[test]
fn a_sequential_delete_removes_the_entity() {
    let schema = schema();
    let mut a = Replica::new(0);
    let create = a.write(&schema, &put_quantity(5), 1);
    let delete = a.write(&schema, &Change::Delete, 2);
    let state = materialize(&schema, &[create, delete]).unwrap();
    assert!(state.deleted);
    assert!(state.fields.is_empty());
    assert!(state.conflicts.is_empty());
}

#[test]
fn prefer_takes_the_group_from_the_higher_confidence_side() {
    let schema = schema();
    let mut a = Replica::new(0);
    let mut b = Replica::new(1);
    let location = |x: u8, confidence: u8| Change::Put {
        status: None,
        quantity: None,
        add: vec![],
        remove_present: vec![],
        peak: None,
        low: None,
        location: Some((x, confidence)),
    };
    let high = a.write(&schema, &location(7, 2), 1);
    let low = b.write(&schema, &location(3, 1), 9);
    let state = materialize(&schema, &[high, low]).unwrap();
    assert_eq!(state.fields["x"], json!(7));
    assert_eq!(state.fields["confidence"], json!(2));
}

#[test]
fn state_json_round_trips() {
    let schema = schema();
    let mut a = Replica::new(0);
    let mut b = Replica::new(1);
    let one = a.write(&schema, &put_quantity(1), 1);
    let mut edit = put_quantity(0);
    if let Change::Put { status, .. } = &mut edit {
        *status = Some(1);
    }
    let two = b.write(&schema, &edit, 1);
    let mut edit = put_quantity(0);
    if let Change::Put { status, .. } = &mut edit {
        *status = Some(2);
    }
    let three = a.write(&schema, &edit, 1);
    let state = materialize(&schema, &[one, two, three]).unwrap();
    assert!(!state.conflicts.is_empty());
    assert_eq!(EntityState::from_json(&state.to_json()), Some(state));
}

fn put_quantity(quantity: i8) -> Change {
    Change::Put {
        status: None,
        quantity: Some(quantity),
        add: vec![],
        remove_present: vec![],
        peak: None,
        low: None,
        location: None,
    }
}
