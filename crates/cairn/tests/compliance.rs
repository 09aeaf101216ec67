//! Compliance end to end through a real hub process (issue 11): a hangar's
//! record naming a technician the registry does not know is logged, judged
//! REJECTED, and the edge shows it after its next sync, with every chain
//! still valid; its correction then passes. Staff work the review queue
//! over HTTP by role; every decision is an audit act. A pack version that
//! would reject history is refused at activation, a looser one activates,
//! both recorded. No sensitive value reaches the logs or the audit trail.

mod common;

use common::{Edge, cairn, enrolled_node, json_out, ok};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

fn sync(dir: &Path, hub: &Edge) -> Value {
    ok(&cairn(dir, &["--json", "sync", "--hub", &hub.url]))
}

fn record(work_order: &str, technician: &str) -> Value {
    json!({
        "work_order": work_order,
        "aircraft_registration": "N123AB",
        "part_serial": format!("SN-{work_order}"),
        "technician": technician,
        "performed_on": "2026-11-20",
        "certificate_expiry": "2027-11-20",
        "action": "inspection",
    })
}

fn add(dir: &Path, collection: &str, data: &Value) -> String {
    ok(&cairn(
        dir,
        &["--json", "record", "add", collection, &data.to_string()],
    ))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn get(dir: &Path, id: &str) -> Value {
    ok(&cairn(
        dir,
        &["--json", "record", "get", "maintenance_actions", id],
    ))
}

/// Syncs until the hub has judged `id` (its state is no longer pending or
/// validated), at most 20 s; returns the record.
fn judged(dir: &Path, hub: &Edge, id: &str) -> Value {
    let started = Instant::now();
    loop {
        sync(dir, hub);
        let got = get(dir, id);
        let state = got["hub"]["state"].as_str().unwrap_or_default().to_string();
        if state == "persisted" || state == "rejected" {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{id} not judged: {got}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A new hub whose registry knows TECH-IA-4412, an inspector authorized
/// for inspections and repairs until 2030.
fn hub_with_technician(hub_dir: &Path) {
    ok(&cairn(
        hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let technician = json!({
        "name": "Dana Okafor",
        "certificate": "IA",
        "certificate_number": "IA-3309121",
        "certificate_expiry": "2030-01-31",
        "authorized_actions": ["inspection", "repair"],
    });
    ok(&cairn(
        hub_dir,
        &[
            "--json",
            "hub",
            "registry",
            "put",
            "authorized_technicians",
            "TECH-IA-4412",
            "--fields",
            &technician.to_string(),
            "--by",
            "quality-manager",
        ],
    ));
}

fn staff_token(hub_dir: &Path, who: &str, role: &str) -> String {
    json_out(&cairn(
        hub_dir,
        &["--json", "hub", "token", "--subject", who, "--role", role],
    ))["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_record_keeps_chains_valid_shows_on_the_edge_and_its_correction_passes() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    hub_with_technician(&hub_dir);
    let hangar = enrolled_node(work.path(), &hub_dir, "hangar-7", "site=hangar-7");
    let hub = Edge::start_hub(&hub_dir);

    let good = add(
        &hangar,
        "maintenance_actions",
        &record("WO-1", "TECH-IA-4412"),
    );
    let unknown = add(
        &hangar,
        "maintenance_actions",
        &record("WO-2", "TECH-XX-0001"),
    );
    let got = judged(&hangar, &hub, &unknown);
    assert_eq!(got["hub"]["state"], "rejected", "{got}");
    let reason = got["hub"]["reason"].as_str().unwrap();
    assert!(reason.contains("rule: reference"), "{reason}");
    assert!(
        got["hub"]["pack"].as_str().unwrap().starts_with("mro "),
        "{got}"
    );
    let kept = judged(&hangar, &hub, &good);
    assert_eq!(kept["hub"]["state"], "persisted");
    // Validated at the edge and judged at the hub by the same version.
    assert_eq!(kept["validated_under"], "mro 1.1.0", "{kept}");
    assert_eq!(
        kept["hub"]["pack"],
        json!(null),
        "persisted: no verdict row"
    );
    // Retention (FAA, 2 years): the hub keeps it until two years after the
    // day it was written, and says so.
    let written =
        cairn_core::dates::format_date_days((kept["hlc_ms"].as_u64().unwrap() / 86_400_000) as i64);
    let year: u32 = written[..4].parse().unwrap();
    assert_eq!(
        kept["retain_until"].as_str().unwrap(),
        format!("{}{}", year + 2, &written[4..]),
        "{kept}"
    );
    // The text the technician reads.
    let shown = cairn(&hangar, &["record", "get", "maintenance_actions", &unknown]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("REJECTED by rule pack mro"), "{shown}");
    let status = ok(&cairn(&hangar, &["--json", "status"]));
    assert_eq!(status["states"]["rejected"], 1, "{status}");
    assert!(
        status["alerts"][0]
            .as_str()
            .unwrap()
            .starts_with("rejected:"),
        "{status}"
    );
    // Rejected, yet logged: every chain still verifies, at both ends.
    ok(&cairn(&hangar, &["--json", "verify"]));
    ok(&cairn(&hub_dir, &["--json", "hub", "verify"]));

    // The correction names the registered technician, and passes.
    let corrected = ok(&cairn(
        &hangar,
        &[
            "--json",
            "record",
            "correct",
            "maintenance_actions",
            &unknown,
            &record("WO-2", "TECH-IA-4412").to_string(),
            "--reason",
            "wrong technician id",
        ],
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        judged(&hangar, &hub, &corrected)["hub"]["state"],
        "persisted"
    );

    // The review queue over HTTP: an auditor reads, an operator resolves.
    let client = cairn_http::tls::builder().build().unwrap();
    let auditor = staff_token(&hub_dir, "carol", "auditor");
    let operator = staff_token(&hub_dir, "olivia", "operator");
    let url = &hub.url;
    let listed: Value = client
        .get(format!("{url}/v1/reviews?open=true&kind=rejection"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = listed["reviews"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["rule"], "reference");
    let id = items[0]["id"].as_u64().unwrap();
    let detail: Value = client
        .get(format!("{url}/v1/reviews/{id}"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        detail["logged"]["payload"]["technician"], "TECH-XX-0001",
        "{detail}"
    );
    assert!(detail["logged"]["retain_until"].is_string(), "{detail}");
    let resolve = |token: &str, body: Value| {
        client
            .post(format!("{url}/v1/reviews/{id}/resolve"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let decision = json!({"decision": "corrected", "note": "corrected by hangar-7 with the registered technician"});
    let refused = resolve(&auditor, decision.clone()).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403, "an auditor only reads");
    let bad = resolve(&operator, json!({"decision": "maybe", "note": "x"}))
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["violations"][0]["field"], "decision", "{bad}");
    let done = resolve(&operator, decision.clone()).await.unwrap();
    assert_eq!(done.status().as_u16(), 200);
    let again = resolve(&operator, decision).await.unwrap();
    assert_eq!(again.status().as_u16(), 409, "closed once");
    let missing = client
        .get(format!("{url}/v1/reviews/999"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let audit = ok(&cairn(
        &hub_dir,
        &["--json", "hub", "audit", "--action", "review"],
    ));
    let act = &audit["ops"][0]["record"];
    assert_eq!(
        (
            act["action"].as_str(),
            act["by"].as_str(),
            act["decision"].as_str()
        ),
        (Some("review.resolve"), Some("olivia"), Some("corrected")),
        "{audit}"
    );
    let cli = ok(&cairn(&hub_dir, &["--json", "review", "list", "--open"]));
    assert!(
        cli["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["id"] != id),
        "{cli}"
    );
}

#[test]
fn a_stricter_pack_is_refused_a_looser_one_activates_and_both_are_audited() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    hub_with_technician(&hub_dir);
    let hangar = enrolled_node(work.path(), &hub_dir, "hangar-7", "site=hangar-7");
    for n in 0..20 {
        let mut data = record(&format!("WO-{n}"), "TECH-IA-4412");
        data["hours"] = json!(if n < 4 { 12.5 } else { 1.5 });
        add(&hangar, "maintenance_actions", &data);
    }
    {
        let hub = Edge::start_hub(&hub_dir);
        sync(&hangar, &hub);
    }
    let builtin = include_str!("../../cairn-core/packs/mro.toml");
    // Stricter: at most 8 hours per action; 4 of 20 records exceed it.
    let stricter = builtin
        .replace("version = \"1.1.0\"", "version = \"1.2.0\"")
        .replace(
            "hours = { type = \"number\", min = 0, max = 10000 }",
            "hours = { type = \"number\", min = 0, max = 8 }",
        );
    // Looser: a longer description allowed.
    let looser = builtin
        .replace("version = \"1.1.0\"", "version = \"1.1.1\"")
        .replace("max_length = 4000", "max_length = 8000");
    assert_ne!(stricter, builtin);
    assert_ne!(looser, builtin);
    let (strict_file, loose_file) = (
        work.path().join("strict.toml"),
        work.path().join("loose.toml"),
    );
    std::fs::write(&strict_file, stricter).unwrap();
    std::fs::write(&loose_file, looser).unwrap();
    let strict = strict_file.to_str().unwrap();
    let dry = ok(&cairn(&hub_dir, &["--json", "pack", "dry-run", strict]));
    // The 20 actions and the registry entry: records of the pack's collections.
    assert_eq!(dry["records"], 21, "{dry}");
    assert_eq!(dry["newly_rejected"], 4, "{dry}");
    assert_eq!(dry["by_rule"]["max"]["count"], 4, "{dry}");
    assert_eq!(dry["exceeds_tolerance"], true, "{dry}");
    let refused = cairn(
        &hub_dir,
        &["--json", "pack", "activate", strict, "--by", "qm"],
    );
    assert_eq!(refused.status.code(), Some(3), "refused");
    let refusal = json_out(&refused);
    assert_eq!(
        refusal["error"]["violations"][0]["rule"], "drift_tolerance",
        "{refusal}"
    );
    let loose = ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "pack",
            "activate",
            loose_file.to_str().unwrap(),
            "--by",
            "qm",
        ],
    ));
    assert_eq!(loose["activated"], true, "{loose}");
    let status = ok(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert_eq!(status["packs"]["mro"], "1.1.1", "{status}");
    let audit = ok(&cairn(
        &hub_dir,
        &["--json", "hub", "audit", "--action", "pack"],
    ));
    let acts: Vec<(&str, &str)> = audit["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            (
                op["record"]["action"].as_str().unwrap(),
                op["record"]["version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(acts, [("pack.refuse", "1.2.0"), ("pack.activate", "1.1.1")]);
    // An admin may force the stricter one; that is recorded as such.
    ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "pack",
            "activate",
            strict,
            "--force",
            "--by",
            "admin-ann",
        ],
    ));
    let audit = ok(&cairn(
        &hub_dir,
        &["--json", "hub", "audit", "--by", "admin-ann"],
    ));
    assert_eq!(audit["ops"][0]["record"]["action"], "pack.force", "{audit}");

    // The active version reaches the edge through the log, and the edge
    // judges its own writes by it from then on: no re-sync from scratch.
    let hub = Edge::start_hub(&hub_dir);
    let pulled = sync(&hangar, &hub);
    assert_eq!(
        pulled["pulled"]["applied"], 2,
        "two pack versions: {pulled}"
    );
    let packs = ok(&cairn(&hangar, &["--json", "pack", "list"]));
    let mro = packs["packs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pack| pack["name"] == "mro")
        .unwrap();
    assert_eq!(mro["version"], "1.2.0", "{packs}");
    let mut long_hours = record("WO-99", "TECH-IA-4412");
    long_hours["hours"] = json!(12.5);
    let refused = cairn(
        &hangar,
        &[
            "--json",
            "record",
            "add",
            "maintenance_actions",
            &long_hours.to_string(),
        ],
    );
    assert_eq!(
        refused.status.code(),
        Some(3),
        "refused by the new version at the edge"
    );
    assert_eq!(json_out(&refused)["error"]["violations"][0]["rule"], "max");
    // Its records written before keep their ids and their receipts.
    let status = ok(&cairn(&hangar, &["--json", "status"]));
    assert_eq!(status["pending_total"], 0, "{status}");
    // A record written now was validated under the version the hub sent.
    let now = add(
        &hangar,
        "maintenance_actions",
        &record("WO-100", "TECH-IA-4412"),
    );
    let got = ok(&cairn(
        &hangar,
        &["--json", "record", "get", "maintenance_actions", &now],
    ));
    assert_eq!(got["validated_under"], "mro 1.2.0", "{got}");
}

/// Starts `cairn --data DIR args...` with its JSON logs (all levels) in
/// `log`; returns the process and the URL it prints.
fn start_logged(dir: &Path, args: &[&str], log: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(common::bin())
        .arg("--data")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    (child, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sensitive_value_reaches_a_log_or_the_audit_trail() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let till = enrolled_node(work.path(), &hub_dir, "till-1", "pharmacy=main-st");
    let (hub_log, edge_log) = (work.path().join("hub.log"), work.path().join("edge.log"));
    let (mut hub, hub_url) = start_logged(
        &hub_dir,
        &["hub", "serve", "--listen", "127.0.0.1:0"],
        &hub_log,
    );
    let (mut edge, edge_url) = start_logged(
        &till,
        &[
            "edge",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--hub",
            &hub_url,
            "--sync-interval-ms",
            "100",
        ],
        &edge_log,
    );
    // Every value that identifies a patient or a prescription, written in
    // good records, a refused one and a duplicate the hub rejects.
    let secrets = [
        "RX-SECRET-4711",
        "PT-SECRET-0042",
        "RXSECRET9999",
        "PT-SECRET-0043",
    ];
    let dispense = |rx: &str, patient: &str, key: &str| {
        json!({"collection": "dispensing", "data": {
            "ndc": "00093-7180-01", "quantity": 30, "dea_schedule": "IV",
            "prescription_id": rx, "pharmacist_npi": "1111111111",
            "dispensed_at": "2026-11-20T08:00:00Z", "patient_ref": patient,
            "idempotency_key": key,
        }})
    };
    let client = cairn_http::tls::builder().build().unwrap();
    let post = |body: Value| {
        client
            .post(format!("{edge_url}/v1/records"))
            .json(&body)
            .send()
    };
    let good = post(dispense(secrets[0], secrets[1], "till-1-0001"))
        .await
        .unwrap();
    assert_eq!(good.status().as_u16(), 201);
    let refused = post(dispense(secrets[2], secrets[3], "till-1-0002"))
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let refusal = refused.text().await.unwrap();
    assert!(!refusal.contains(secrets[2]), "{refusal}");
    // The same request again on this till: refused here, as a duplicate.
    let again = post(dispense(secrets[0], secrets[3], "till-1-0001"))
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 422);
    let refusal = again.text().await.unwrap();
    assert!(
        refusal.contains("idempotency") && !refusal.contains(secrets[3]),
        "{refusal}"
    );
    // A second till that cannot see it sends it anyway: the hub rejects it.
    let till_2 = enrolled_node(work.path(), &hub_dir, "till-2", "pharmacy=main-st");
    let duplicate = dispense(secrets[0], secrets[3], "till-1-0001")["data"].to_string();
    let started = Instant::now();
    loop {
        // Once till-1's dispense is logged, the duplicate reaches the hub.
        let status: Value = client
            .get(format!("{edge_url}/v1/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["pending_total"] == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hub_for_cli = hub_url.clone();
    tokio::task::block_in_place(|| {
        ok(&cairn(
            &till_2,
            &["--json", "record", "add", "dispensing", &duplicate],
        ));
        let started = Instant::now();
        loop {
            ok(&cairn(&till_2, &["--json", "sync", "--hub", &hub_for_cli]));
            let status = ok(&cairn(&till_2, &["--json", "status"]));
            if status["states"]["rejected"] == 1 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let trail = ok(&cairn(&hub_dir, &["--json", "hub", "audit", "--trail"]));
    let reviews = ok(&cairn(&hub_dir, &["--json", "review", "list"]));
    let id = reviews["reviews"][0]["id"].as_u64().unwrap().to_string();
    let shown = ok(&cairn(&hub_dir, &["--json", "review", "show", &id]));
    assert_eq!(
        shown["logged"]["payload"]["prescription_id"], "[redacted]",
        "{shown}"
    );
    let _ = hub.kill();
    let _ = edge.kill();
    let _ = (hub.wait(), edge.wait());
    let logs = [
        ("hub log", std::fs::read_to_string(&hub_log).unwrap()),
        ("edge log", std::fs::read_to_string(&edge_log).unwrap()),
        ("audit trail", trail.to_string()),
        ("review queue", reviews.to_string()),
        ("review item", shown.to_string()),
    ];
    for (name, text) in &logs {
        for secret in secrets {
            assert!(!text.contains(secret), "{name} holds {secret}");
        }
    }
    // The logs are structured, and the compliance boundary is named.
    let hub_text = &logs[0].1;
    assert!(
        hub_text.contains("\"compliance_boundary\":\"integrity\""),
        "{hub_text}"
    );
    assert!(
        hub_text.contains("\"compliance_boundary\":\"rule_pack\""),
        "{hub_text}"
    );
    assert!(logs[1].1.contains("\"compliance_boundary\":\"request\""));
    let kinds: std::collections::BTreeSet<&str> = trail["trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["act", "push", "transition"].into(), "{trail}");
}

#[test]
fn an_edge_refuses_the_duplicates_it_can_already_see() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let hangar = enrolled_node(work.path(), &hub_dir, "hangar-7", "site=hangar-7");
    let other = enrolled_node(work.path(), &hub_dir, "hangar-7b", "site=hangar-7");
    let first = add(
        &hangar,
        "maintenance_actions",
        &record("WO-1", "TECH-IA-4412"),
    );
    // The same work order, part and technician again (other words): one
    // request sent twice, refused here, naming the record it repeats.
    let mut again = record("WO-1", "TECH-IA-4412");
    again["description"] = json!("sent twice");
    let refused = cairn(
        &hangar,
        &[
            "--json",
            "record",
            "add",
            "maintenance_actions",
            &again.to_string(),
        ],
    );
    assert_eq!(refused.status.code(), Some(3));
    let violation = &json_out(&refused)["error"]["violations"][0];
    assert_eq!(violation["rule"], "idempotency", "{violation}");
    assert_eq!(violation["field"], "work_order,part_serial,technician");
    assert!(
        violation["message"].as_str().unwrap().contains(&first),
        "{violation}"
    );
    // Another work order passes.
    add(
        &hangar,
        "maintenance_actions",
        &record("WO-2", "TECH-IA-4412"),
    );
    // A node that pulled the record refuses the same duplicate too.
    let hub = Edge::start_hub(&hub_dir);
    sync(&hangar, &hub);
    sync(&other, &hub);
    let refused = cairn(
        &other,
        &[
            "--json",
            "record",
            "add",
            "maintenance_actions",
            &again.to_string(),
        ],
    );
    assert_eq!(
        refused.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert_eq!(
        json_out(&refused)["error"]["violations"][0]["rule"],
        "idempotency"
    );
}

#[test]
fn compliance_commands_refuse_bad_input_naming_field_and_rule() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    hub_with_technician(&hub_dir);
    let refused = |args: &[&str], code: i32| -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = cairn(&hub_dir, &all);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        json_out(&output)
    };
    let first = |answer: &Value| {
        let violation = &answer["error"]["violations"][0];
        (
            violation["field"].as_str().unwrap_or("").to_string(),
            violation["rule"].as_str().unwrap_or("").to_string(),
        )
    };
    let put = |fields: &str| {
        vec![
            "hub",
            "registry",
            "put",
            "authorized_technicians",
            "TECH-IA-1",
            "--fields",
            fields,
            "--by",
            "qm",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let args = put("{not json");
    let answer = refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), 3);
    assert_eq!(first(&answer), ("fields".into(), "json".into()));
    let args = put(r#"{"name":"X"}"#);
    let answer = refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), 3);
    assert_eq!(first(&answer).0, "data", "{answer}");
    let answer = refused(
        &[
            "hub",
            "registry",
            "put",
            "maintenance_actions",
            "K",
            "--fields",
            "{}",
            "--by",
            "qm",
        ],
        3,
    );
    assert_eq!(first(&answer), ("collection".into(), "value".into()));
    let answer = refused(
        &[
            "review",
            "resolve",
            "42",
            "--decision",
            "accepted",
            "--note",
            "n",
            "--by",
            "qm",
        ],
        6,
    );
    assert_eq!(answer["error"]["code"], "not_found");
    let answer = refused(
        &[
            "review", "resolve", "42", "--value", "{x", "--note", "n", "--by", "qm",
        ],
        3,
    );
    assert_eq!(first(&answer), ("value".into(), "json".into()));
    let answer = refused(&["hub", "audit", "--trail", "--kind", "nope"], 3);
    assert_eq!(first(&answer), ("kind".into(), "enum".into()));
    let missing = work.path().join("missing.toml");
    let answer = refused(&["pack", "dry-run", missing.to_str().unwrap()], 3);
    assert_eq!(first(&answer), ("pack_file".into(), "pack".into()));
}
