//! Rule pack parsing and validation, one case per rule.

use super::*;
use serde_json::json;

fn mro() -> RulePack {
    RulePack::builtin("mro").unwrap()
}

fn good_action() -> Value {
    json!({
        "work_order": "wo-2024-091",
        "aircraft_registration": "n123ab",
        "part_serial": "SN-99887766",
        "technician": "TECH-IA-4412",
        "performed_on": "2026-11-20",
        "certificate_expiry": "2027-11-20",
        "action": "inspection",
    })
}

fn rules(validated: &Validated) -> Vec<(String, String)> {
    validated
        .violations
        .iter()
        .map(|violation| (violation.field.clone(), violation.rule.clone()))
        .collect()
}

#[test]
fn builtin_packs_parse() {
    for (name, _) in BUILTIN_PACKS {
        let pack = RulePack::builtin(name).unwrap();
        assert_eq!(pack.name, name);
        assert!(!pack.collections.is_empty());
    }
}

#[test]
fn a_good_record_passes_and_is_normalized() {
    let pack = mro();
    let collection = &pack.collections["maintenance_actions"];
    let validated = collection.validate(Action::Append, &good_action(), true);
    assert!(
        validated.violations.is_empty(),
        "{:?}",
        validated.violations
    );
    assert_eq!(validated.payload["work_order"], json!("WO-2024-091"));
    assert_eq!(validated.payload["aircraft_registration"], json!("N123AB"));
    assert_eq!(collection.route(&validated.payload), "standard");
}

#[test]
fn every_violation_is_reported_with_field_and_rule() {
    let pack = mro();
    let collection = &pack.collections["maintenance_actions"];
    let mut record = good_action();
    record["work_order"] = json!("123");
    record["hours"] = json!(-1);
    record["action"] = json!("painting");
    record["certificate_expiry"] = json!("2020-01-01");
    record["extra"] = json!(true);
    record.as_object_mut().unwrap().remove("technician");
    record["performed_on"] = json!(20261120);
    let validated = collection.validate(Action::Append, &record, true);
    assert_eq!(
        rules(&validated),
        [
            ("action", "enum"),
            ("extra", "unknown_field"),
            ("hours", "min"),
            ("performed_on", "type"),
            ("technician", "required"),
            ("work_order", "format"),
        ]
        .map(|(f, r)| (f.to_string(), r.to_string()))
    );
}

#[test]
fn certificate_expiry_must_be_after_the_event() {
    let pack = mro();
    let collection = &pack.collections["maintenance_actions"];
    let mut record = good_action();
    record["certificate_expiry"] = json!("2026-11-19");
    let validated = collection.validate(Action::Append, &record, true);
    assert_eq!(
        rules(&validated),
        [("certificate_expiry".to_string(), "after".to_string())]
    );
}

#[test]
fn wrong_action_and_non_object_data_are_refused() {
    let pack = mro();
    let collection = &pack.collections["maintenance_actions"];
    assert_eq!(
        rules(&collection.validate(Action::Put, &good_action(), true)),
        [("action".to_string(), "kind".to_string())]
    );
    assert_eq!(
        rules(&collection.validate(Action::Append, &json!([1]), true)),
        [("data".to_string(), "type".to_string())]
    );
}

#[test]
fn entity_updates_need_required_fields_only_on_create() {
    let pack = mro();
    let parts = &pack.collections["parts"];
    let update = json!({"status": "installed", "installed_on": "n123ab"});
    assert!(
        parts
            .validate(Action::Put, &update, false)
            .violations
            .is_empty()
    );
    let created = parts.validate(Action::Put, &update, true);
    assert_eq!(
        rules(&created),
        [("part_number", "required"), ("serial", "required")]
            .map(|(f, r)| (f.to_string(), r.to_string()))
    );
    assert_eq!(
        rules(&parts.validate(Action::Delete, &json!({"status": "x"}), false)),
        [("data".to_string(), "delete".to_string())]
    );
}

#[test]
fn prefer_groups_are_written_whole() {
    let pack = RulePack::builtin("field_service").unwrap();
    let equipment = &pack.collections["equipment"];
    let partial = json!({"location_x": 1.5, "location_confidence": 0.9});
    let found = rules(&equipment.validate(Action::Put, &partial, false));
    assert_eq!(
        found,
        [("location_y", "group"), ("location_z", "group")]
            .map(|(f, r)| (f.to_string(), r.to_string()))
    );
}

#[test]
fn pharmacy_normalizes_ndc_routes_schedule_two_and_hides_sensitive_values() {
    let pack = RulePack::builtin("pharmacy").unwrap();
    let dispensing = &pack.collections["dispensing"];
    let record = json!({
        "ndc": "1234-5678-90",
        "quantity": 30,
        "dea_schedule": "II",
        "prescription_id": "rx-7781",
        "pharmacist_npi": "1234567893",
        "dispensed_at": "2026-11-22T10:15:00Z",
    });
    let validated = dispensing.validate(Action::Append, &record, true);
    assert!(
        validated.violations.is_empty(),
        "{:?}",
        validated.violations
    );
    assert_eq!(validated.payload["ndc"], json!("01234-5678-90"));
    assert_eq!(dispensing.route(&validated.payload), "critical");
    let mut bad = record.clone();
    bad["prescription_id"] = json!("SECRET-PATIENT-42");
    let validated = dispensing.validate(Action::Append, &bad, true);
    assert_eq!(validated.violations.len(), 1);
    assert!(
        !validated.violations[0].message.contains("SECRET"),
        "{}",
        validated.violations[0].message
    );
}

#[test]
fn ndc_forms() {
    let ndc = |text| normalize(Some(Normalizer::Ndc11), text);
    assert_eq!(ndc("1234-5678-90").as_deref(), Some("01234-5678-90"));
    assert_eq!(ndc("12345-678-90").as_deref(), Some("12345-0678-90"));
    assert_eq!(ndc("12345-6789-0").as_deref(), Some("12345-6789-00"));
    assert_eq!(ndc("12345678901").as_deref(), Some("12345-6789-01"));
    assert_eq!(ndc("1234567890"), None);
    assert_eq!(ndc("12a45-6789-01"), None);
}

#[test]
fn dates_and_datetimes() {
    assert_eq!(parse_date_days("1970-01-01"), Some(0));
    assert_eq!(parse_date_days("2000-03-01"), Some(11_017));
    assert_eq!(parse_date_days("2023-02-29"), None);
    assert_eq!(parse_date_days("2024-02-29"), Some(19_782));
    assert_eq!(parse_datetime_ms("1970-01-01T00:00:01.5Z"), Some(1_500));
    assert_eq!(parse_datetime_ms("1970-01-01T01:00:00+01:00"), Some(0));
    assert_eq!(parse_datetime_ms("1970-01-01 00:00:00Z"), None);
    assert_eq!(parse_datetime_ms("1970-01-01T00:00:00"), None);
}

#[test]
fn bad_packs_name_the_place() {
    let error = RulePack::from_toml("name = \"x\"\nversion = \"1\"\ntitle = \"t\"\n[collections.c]\nkind = \"entity\"\nstream = \"s\"\n[collections.c.fields]\nq = { type = \"string\", merge = \"counter\" }\n").unwrap_err();
    assert_eq!(error.path, "collections.c.fields.q");
    let error = RulePack::from_toml("name = \"x\"\nversion = \"1\"\ntitle = \"t\"\n[collections.c]\nkind = \"ledger\"\nstream = \"s\"\n[collections.c.fields]\nq = { type = \"string\", format = \"(\" }\n").unwrap_err();
    assert!(error.message.contains("format"), "{error}");
    let error = RulePack::from_toml("nonsense = [").unwrap_err();
    assert_eq!(error.pack, "(unnamed)");
    let error = RulePack::from_toml("name = \"x\"\nversion = \"1\"\ntitle = \"t\"\nsurprise = 1\n[collections.c]\nkind = \"ledger\"\nstream = \"s\"\nfields = {}\n").unwrap_err();
    assert!(error.message.contains("surprise"), "{error}");
}
