//! A hub written by the previous schema (3: no rule packs, no compliance
//! state) opens under schema 4: the tables are added, the built-in packs
//! activated, its log untouched, and its history judged from leaf 0.

use cairn_hub_sqlite::HubStore;

#[test]
fn a_schema_3_hub_is_migrated_when_opened_and_its_history_judged() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let before = {
        let hub = HubStore::open(dir.path()).unwrap();
        let node = cairn_core::identity::NodeIdentity::from_seed("a", [1; 32]);
        hub.enroll("a", node.public_key(), &Default::default())
            .unwrap();
        hub.status().unwrap()
    };
    // Back to schema 3, as a hub of the previous release left it.
    let conn = rusqlite::Connection::open(dir.path().join("hub.db")).unwrap();
    conn.execute_batch(
        "DROP TABLE packs; DROP TABLE verdicts; DROP TABLE claims; DROP TABLE registry;
         DROP TABLE awaited; DROP TABLE reviews; DROP TABLE push_attempts;
         DROP TABLE entities; DROP TABLE entity_ops;
         DELETE FROM meta WHERE key = 'judged_through';
         UPDATE meta SET value = '3' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let hub = HubStore::open(dir.path()).unwrap();
    let after = hub.status().unwrap();
    assert_eq!((after.log_size, after.root), (before.log_size, before.root));
    assert_eq!(after.packs.len(), 3, "{:?}", after.packs);
    assert_eq!(
        after.states.get("validated"),
        Some(&1),
        "{:?}",
        after.states
    );
    let pass = hub.hub().judge_all().unwrap();
    assert_eq!((pass.judged, pass.rejected), (1, 0));
    let conn = rusqlite::Connection::open(dir.path().join("hub.db")).unwrap();
    let version: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, "4");
    // A schema this build does not know is refused, naming both.
    conn.execute(
        "UPDATE meta SET value = '9' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(hub);
    let refused = HubStore::open(dir.path()).err().unwrap().to_string();
    assert!(
        refused.contains("hub schema 9") && refused.contains("reads 4"),
        "{refused}"
    );
}
