//! The routers called in process (`app(state).oneshot(request)`), for the
//! error paths of every endpoint: no process, no socket, every refusal's
//! status, field and rule (issue 10, item 7). The real-process tests
//! (`api.rs`, `hub.rs`) cover the same routes over HTTP.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

/// The answer to one request: status and JSON body (null when none).
async fn call(app: &axum::Router, method: Method, uri: &str, body: Option<&str>) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |body| Body::from(body.to_string())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A request and what it must get: method, path, JSON body, status, and
/// the field and rule of the first violation.
type Case<'a> = (Method, &'a str, Option<&'a str>, u16, (&'a str, &'a str));

fn rule(body: &Value) -> (String, String) {
    let violation = &body["error"]["violations"][0];
    (
        violation["field"].as_str().unwrap_or("").to_string(),
        violation["rule"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn every_hub_endpoint_refuses_bad_requests_in_process() {
    let dir = tempfile::tempdir().unwrap();
    cairn_hub_sqlite::HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = Arc::new(cairn_hub_sqlite::HubStore::open(dir.path()).unwrap());
    let state = cairn_http::hub::HubState {
        observed: Default::default(),
        hub: hub.clone(),
        pushes: cairn_http::hub::PushQueue::start(hub).unwrap(),
        tokens: Default::default(),
        bodies: cairn_http::body::Bodies::new(&cairn_http::hub::HUB_LIMITS),
        legacy: Default::default(),
    };
    let app = cairn_http::hub::app(state);
    let key = hex::encode(cairn_core::identity::NodeIdentity::from_seed("n", [1; 32]).public_key());
    let unknown_token = format!(r#"{{"node":"n","token":"t","public_key":"{key}"}}"#);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v1/push",
            Some("{}"),
            401,
            ("authorization", "required"),
        ),
        (
            Method::GET,
            "/v1/pull",
            None,
            401,
            ("authorization", "required"),
        ),
        (Method::GET, "/v1/pull?from=x", None, 400, ("from", "type")),
        (
            Method::GET,
            "/v1/pull?limit=0",
            None,
            400,
            ("limit", "range"),
        ),
        (
            Method::GET,
            "/v1/pull?colour=red",
            None,
            400,
            ("colour", "unknown_parameter"),
        ),
        (
            Method::GET,
            "/v1/snapshot?from=x",
            None,
            400,
            ("from", "type"),
        ),
        (
            Method::GET,
            "/v1/snapshot?labels=",
            None,
            400,
            ("labels", "format"),
        ),
        (
            Method::GET,
            "/v1/snapshot",
            None,
            401,
            ("authorization", "required"),
        ),
        (Method::GET, "/v1/own", None, 400, ("stream", "required")),
        (
            Method::GET,
            "/v1/own?stream=s&from=0",
            None,
            400,
            ("from", "range"),
        ),
        (
            Method::GET,
            "/v1/own?stream=s&limit=0",
            None,
            400,
            ("limit", "range"),
        ),
        (
            Method::GET,
            "/v1/own?stream=s",
            None,
            401,
            ("authorization", "required"),
        ),
        (
            Method::GET,
            "/v1/status",
            None,
            401,
            ("authorization", "required"),
        ),
        (
            Method::POST,
            "/v1/resolve",
            Some("{}"),
            401,
            ("authorization", "required"),
        ),
        (
            Method::POST,
            "/v1/enroll",
            Some("{}"),
            422,
            ("node", "required"),
        ),
        (
            Method::POST,
            "/v1/enroll",
            Some(r#"{"node":"n","token":"t","public_key":"zz"}"#),
            422,
            ("public_key", "format"),
        ),
        (
            Method::POST,
            "/v1/enroll",
            Some(r#"{"node":"n","token":"t","public_key":"00","x":1}"#),
            422,
            ("public_key", "format"),
        ),
        (
            Method::POST,
            "/v1/enroll",
            Some(unknown_token.as_str()),
            401,
            ("token", "valid"),
        ),
        (
            Method::POST,
            "/v1/enroll",
            Some(r#"{"node":"n","node":"m"}"#),
            400,
            ("body", "duplicate_key"),
        ),
        (
            Method::GET,
            "/v1/log/consistency?from=x&to=1",
            None,
            400,
            ("from", "type"),
        ),
        (
            Method::GET,
            "/v1/log/consistency?from=0&to=99",
            None,
            422,
            ("to", "range"),
        ),
        (Method::GET, "/v1/states", None, 400, ("stream", "required")),
        (
            Method::GET,
            "/v1/states?stream=s&after=x",
            None,
            400,
            ("after", "type"),
        ),
        (
            Method::GET,
            "/v1/states?stream=S%21",
            None,
            400,
            ("stream", "format"),
        ),
        (
            Method::GET,
            "/v1/states?stream=s&x=1",
            None,
            400,
            ("x", "unknown_parameter"),
        ),
        (
            Method::GET,
            "/v1/states?stream=s",
            None,
            401,
            ("authorization", "required"),
        ),
        (
            Method::GET,
            "/v1/reviews?kind=nope",
            None,
            400,
            ("kind", "enum"),
        ),
        (
            Method::GET,
            "/v1/reviews?limit=0",
            None,
            400,
            ("limit", "range"),
        ),
        (
            Method::GET,
            "/v1/reviews?open=maybe",
            None,
            400,
            ("open", "type"),
        ),
        (
            Method::GET,
            "/v1/reviews?after=x",
            None,
            400,
            ("after", "type"),
        ),
        (
            Method::GET,
            "/v1/reviews",
            None,
            401,
            ("authorization", "required"),
        ),
        (Method::GET, "/v1/reviews/x", None, 400, ("id", "type")),
        (
            Method::GET,
            "/v1/reviews/1",
            None,
            401,
            ("authorization", "required"),
        ),
        (
            Method::POST,
            "/v1/reviews/1/resolve",
            Some("{}"),
            401,
            ("authorization", "required"),
        ),
        (Method::DELETE, "/v1/push", None, 405, ("method", "route")),
        (Method::GET, "/v2/nothing", None, 404, ("path", "route")),
    ];
    for (method, uri, body, status, (field, rule_name)) in cases {
        let (got, answer) = call(&app, method.clone(), uri, body).await;
        assert_eq!(got, status, "{method} {uri}: {answer}");
        assert_eq!(
            rule(&answer),
            (field.to_string(), rule_name.to_string()),
            "{method} {uri}: {answer}"
        );
    }
    // A body with a coding the hub does not take, and a JSON body without
    // its media type, from a caller it knows nothing of: refused for the
    // caller first.
    let (status, _) = call(&app, Method::GET, "/v1/health", None).await;
    assert_eq!(status, StatusCode::OK.as_u16());
    let (status, body) = call(&app, Method::GET, "/v1/log/checkpoint", None).await;
    assert_eq!((status, body), (200, Value::Null), "a text note, not JSON");
}

/// [`call`] with a bearer token.
async fn call_as(
    app: &axum::Router,
    method: Method,
    uri: &str,
    body: &str,
    token: &str,
) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_review_queue_refuses_bad_requests_by_role_field_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    cairn_hub_sqlite::HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = Arc::new(cairn_hub_sqlite::HubStore::open(dir.path()).unwrap());
    let now_s = cairn_core::clock::Clock::now_s(hub.clock());
    let operator = hub.issue_token("olivia", "operator", 300, now_s).unwrap();
    let auditor = hub.issue_token("carol", "auditor", 300, now_s).unwrap();
    let state = cairn_http::hub::HubState {
        observed: Default::default(),
        hub: hub.clone(),
        pushes: cairn_http::hub::PushQueue::start(hub).unwrap(),
        tokens: Default::default(),
        bodies: cairn_http::body::Bodies::new(&cairn_http::hub::HUB_LIMITS),
        legacy: Default::default(),
    };
    let app = cairn_http::hub::app(state);
    let resolve = "/v1/reviews/1/resolve";
    // (path, body, token, status, (field, rule))
    type AuthCase<'a> = (&'a str, &'a str, &'a str, u16, (&'a str, &'a str));
    let cases: Vec<AuthCase> = vec![
        (resolve, "{}", &auditor, 403, ("authorization", "role")),
        (resolve, "{}", &operator, 422, ("decision", "required")),
        (
            resolve,
            r#"{"decision":"accepted"}"#,
            &operator,
            422,
            ("note", "required"),
        ),
        (
            resolve,
            r#"{"decision":"accepted","note":"n","why":"x"}"#,
            &operator,
            422,
            ("why", "unknown_field"),
        ),
        (
            resolve,
            r#"{"decision":"accepted","note":"n"}"#,
            &operator,
            404,
            ("id", "exists"),
        ),
        (
            resolve,
            r#"{"value":"x","note":"n"}"#,
            &operator,
            404,
            ("id", "exists"),
        ),
        (resolve, "[1", &operator, 400, ("body", "json")),
    ];
    for (uri, body, token, status, (field, rule_name)) in cases {
        let (got, answer) = call_as(&app, Method::POST, uri, body, token).await;
        assert_eq!(got, status, "{uri} {body}: {answer}");
        assert_eq!(
            rule(&answer),
            (field.to_string(), rule_name.to_string()),
            "{uri} {body}: {answer}"
        );
    }
    let (got, answer) = call_as(&app, Method::GET, "/v1/reviews/7", "", &auditor).await;
    assert_eq!(
        (got, rule(&answer)),
        (404, ("id".into(), "exists".into())),
        "{answer}"
    );
    let (got, answer) = call_as(&app, Method::GET, "/v1/reviews?open=true", "", &auditor).await;
    assert_eq!((got, answer), (200, serde_json::json!({"reviews": []})));
}

#[tokio::test]
async fn every_edge_endpoint_refuses_bad_requests_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let options = cairn_edge::InitOptions {
        node: "n".into(),
        packs: vec!["mro".into(), "field_service".into()],
        default_scope: [("site".to_string(), "x".to_string())].into(),
        quota_bytes: 0,
        custom_packs: Vec::new(),
    };
    cairn_edge::EdgeStore::init(dir.path(), &options).unwrap();
    let store = Arc::new(cairn_edge::EdgeStore::open(dir.path()).unwrap());
    let app = cairn_http::edge::app(cairn_http::edge::AppState {
        store,
        bodies: cairn_http::body::Bodies::new(&cairn_http::edge::EDGE_LIMITS),
        observed: Default::default(),
    });
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v1/records",
            Some("{"),
            400,
            ("body", "json"),
        ),
        (
            Method::POST,
            "/v1/records",
            Some(r#"{"a":1,"a":2}"#),
            400,
            ("body", "duplicate_key"),
        ),
        (
            Method::POST,
            "/v1/records",
            Some("{}"),
            422,
            ("collection", "required"),
        ),
        (
            Method::POST,
            "/v1/records",
            Some(r#"{"collection":"equipment","data":{"name":"x"},"key":"k","move":"yes"}"#),
            422,
            ("move", "type"),
        ),
        (
            Method::POST,
            "/v1/records/batch",
            Some("{}"),
            422,
            ("records", "required"),
        ),
        (
            Method::GET,
            "/v1/records/nope/1",
            None,
            404,
            ("collection", "unknown"),
        ),
        (
            Method::GET,
            "/v1/artifacts/vision-model",
            None,
            404,
            ("name", "unknown"),
        ),
        (
            Method::GET,
            "/v1/records/maintenance_actions/n:standard:9",
            None,
            404,
            ("id", "exists"),
        ),
        (
            Method::GET,
            "/v1/records/maintenance_actions?after=x",
            None,
            400,
            ("after", "format"),
        ),
        (
            Method::GET,
            "/v1/records/maintenance_actions?limit=0",
            None,
            400,
            ("limit", "range"),
        ),
        (
            Method::GET,
            "/v1/records/maintenance_actions?deleted=maybe",
            None,
            400,
            ("deleted", "type"),
        ),
        (Method::PUT, "/v1/records", None, 405, ("method", "route")),
        (Method::GET, "/v2/nothing", None, 404, ("path", "route")),
    ];
    for (method, uri, body, status, (field, rule_name)) in cases {
        let (got, answer) = call(&app, method.clone(), uri, body).await;
        assert_eq!(got, status, "{method} {uri}: {answer}");
        assert_eq!(
            rule(&answer),
            (field.to_string(), rule_name.to_string()),
            "{method} {uri}: {answer}"
        );
    }
    // Without its media type a JSON body is refused.
    let request = Request::post("/v1/records").body(Body::from("{}")).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 415);
}

#[tokio::test]
async fn the_pharmacy_endpoint_refuses_bad_requests_naming_field_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    cairn_hub_sqlite::HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = Arc::new(cairn_hub_sqlite::HubStore::open(dir.path()).unwrap());
    let scopes = [("pharmacy".to_string(), "main-st".to_string())].into();
    let token = hub
        .enroll_legacy(
            "till-9",
            cairn_hub_sqlite::legacy::LegacyKind::Pharmacy,
            &scopes,
            &[],
        )
        .unwrap();
    let state = cairn_http::hub::HubState {
        observed: Default::default(),
        hub: hub.clone(),
        pushes: cairn_http::hub::PushQueue::start(hub).unwrap(),
        tokens: Default::default(),
        bodies: cairn_http::body::Bodies::new(&cairn_http::hub::HUB_LIMITS),
        legacy: Arc::new(cairn_http::hub::legacy::LegacyClients::load(dir.path()).unwrap()),
    };
    let app = cairn_http::hub::app(state);
    let uri = "/api/v1/transactions/sync";
    let good = serde_json::json!({
        "ndc": "0093-7180-01", "quantity": 30, "schedule": "IV", "prescription_id": "RX-1",
        "pharmacist_npi": "1234567890", "dispensed_at_utc": "2026-11-20T08:00:00+00:00",
        "idempotency_key": "k-1",
    });
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body.to_string()
    };
    let (status, answer) = call(&app, Method::POST, uri, Some(&good.to_string())).await;
    assert_eq!(
        (status, rule(&answer)),
        (401, ("authorization".into(), "required".into()))
    );
    let (status, answer) = call_as(&app, Method::POST, uri, &good.to_string(), "not-a-token").await;
    assert_eq!(
        (status, rule(&answer)),
        (401, ("authorization".into(), "token".into()))
    );
    type Bad = (String, u16, (&'static str, &'static str));
    let cases: Vec<Bad> = vec![
        (
            with("quantity", serde_json::json!("thirty")),
            422,
            ("quantity", "type"),
        ),
        (
            {
                let mut body = good.clone();
                body.as_object_mut().unwrap().remove("ndc");
                body.to_string()
            },
            422,
            ("ndc", "required"),
        ),
        (
            with("colour", serde_json::json!("red")),
            422,
            ("colour", "unknown_field"),
        ),
        ("[1".into(), 400, ("body", "json")),
    ];
    for (body, status, (field, rule_name)) in cases {
        let (got, answer) = call_as(&app, Method::POST, uri, &body, &token).await;
        assert_eq!(
            (got, rule(&answer)),
            (status, (field.into(), rule_name.into())),
            "{body}: {answer}"
        );
    }
    // Stored once; the same key with another record is a conflict naming both hashes.
    let (got, answer) = call_as(&app, Method::POST, uri, &good.to_string(), &token).await;
    assert_eq!(
        (got, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    let (got, repeat) = call_as(&app, Method::POST, uri, &good.to_string(), &token).await;
    assert_eq!(
        (got, &repeat),
        (200, &answer),
        "a repeat is answered as before"
    );
    let (got, answer) = call_as(
        &app,
        Method::POST,
        uri,
        &with("quantity", serde_json::json!(31)),
        &token,
    )
    .await;
    assert_eq!(
        (got, rule(&answer)),
        (409, ("idempotency_key".into(), "idempotency".into())),
        "{answer}"
    );
    let (got, answer) = call(&app, Method::GET, "/api/v1/inventory/ping", None).await;
    assert_eq!((got, answer["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn the_mro_sync_endpoint_refuses_bad_requests_naming_field_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    cairn_hub_sqlite::HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = Arc::new(cairn_hub_sqlite::HubStore::open(dir.path()).unwrap());
    let scopes = [("site".to_string(), "hangar-7".to_string())].into();
    let kind = cairn_hub_sqlite::legacy::LegacyKind::MroSync;
    let token = hub.enroll_legacy("hangar-old", kind, &scopes, &[]).unwrap();
    let pharmacy = cairn_hub_sqlite::legacy::LegacyKind::Pharmacy;
    let till = hub.enroll_legacy("till-9", pharmacy, &scopes, &[]).unwrap();
    let state = cairn_http::hub::HubState {
        observed: Default::default(),
        hub: hub.clone(),
        pushes: cairn_http::hub::PushQueue::start(hub.clone()).unwrap(),
        tokens: Default::default(),
        bodies: cairn_http::body::Bodies::new(&cairn_http::hub::HUB_LIMITS),
        legacy: Arc::new(cairn_http::hub::legacy::LegacyClients::load(dir.path()).unwrap()),
    };
    let app = cairn_http::hub::app(state);
    let uri = "/api/v1/mro/sync";
    let payload = serde_json::json!({"work_order": "WO-1", "part_serial": "SN-1"});
    let hash =
        cairn_core::hash::Hash::of(cairn_http::hub::legacy_mro::python_json(&payload).as_bytes())
            .to_hex();
    let cases: Vec<(String, &str, u16, (&str, &str))> = vec![
        (
            serde_json::json!({"hash": hash}).to_string(),
            &token,
            422,
            ("payload", "required"),
        ),
        (
            serde_json::json!({"payload": payload}).to_string(),
            &token,
            422,
            ("hash", "required"),
        ),
        (
            serde_json::json!({"payload": payload, "hash": "00"}).to_string(),
            &token,
            422,
            ("hash", "integrity"),
        ),
        (
            serde_json::json!({"payload": payload, "hash": hash}).to_string(),
            &till,
            401,
            ("authorization", "token"),
        ),
    ];
    for (body, token, status, (field, rule_name)) in cases {
        let (got, answer) = call_as(&app, Method::POST, uri, &body, token).await;
        assert_eq!(
            (got, rule(&answer)),
            (status, (field.into(), rule_name.into())),
            "{body}: {answer}"
        );
    }
    // A record the rules refuse: 422 naming each rule, yet logged for review.
    let body = serde_json::json!({"payload": payload, "hash": hash, "local_seq": 1}).to_string();
    let (got, answer) = call_as(&app, Method::POST, uri, &body, &token).await;
    assert_eq!(got, 422, "{answer}");
    let (again, repeat) = call_as(&app, Method::POST, uri, &body, &token).await;
    assert_eq!(
        (again, &repeat),
        (422, &answer),
        "a repeat is answered as before"
    );
    // After a restart the hub reads the client's records back from its log:
    // the refused record is refused again, not acknowledged.
    let restarted = cairn_http::hub::app(cairn_http::hub::HubState {
        observed: Default::default(),
        hub: hub.clone(),
        pushes: cairn_http::hub::PushQueue::start(hub.clone()).unwrap(),
        tokens: Default::default(),
        bodies: cairn_http::body::Bodies::new(&cairn_http::hub::HUB_LIMITS),
        legacy: Arc::new(cairn_http::hub::legacy::LegacyClients::load(dir.path()).unwrap()),
    });
    let (after, repeat) = call_as(&restarted, Method::POST, uri, &body, &token).await;
    assert_eq!((after, rule(&repeat)), (422, rule(&answer)), "{repeat}");
}

#[tokio::test]
async fn the_mobile_endpoints_refuse_bad_requests_naming_field_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    cairn_hub_sqlite::HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = Arc::new(cairn_hub_sqlite::HubStore::open(dir.path()).unwrap());
    let mobile = cairn_hub_sqlite::legacy::LegacyKind::Mobile;
    let b1 = [("building".to_string(), "B1".to_string())].into();
    let token = hub.enroll_legacy("tablet-1", mobile, &b1, &[]).unwrap();
    let pharmacy = cairn_hub_sqlite::legacy::LegacyKind::Pharmacy;
    let till = hub.enroll_legacy("till-9", pharmacy, &b1, &[]).unwrap();
    let state = cairn_http::hub::HubState {
        observed: Default::default(),
        hub: hub.clone(),
        pushes: cairn_http::hub::PushQueue::start(hub.clone()).unwrap(),
        tokens: Default::default(),
        bodies: cairn_http::body::Bodies::new(&cairn_http::hub::HUB_LIMITS),
        legacy: Arc::new(cairn_http::hub::legacy::LegacyClients::load(dir.path()).unwrap()),
    };
    let app = cairn_http::hub::app(state);
    let batch = "/api/v1/mobile/sync/batch";
    let op = |building: &str| {
        serde_json::json!({
            "entity_type": "equipment", "entity_id": "eq-1", "operation": "create",
            "payload": {"building_id": building, "name": "AHU-1", "type": "hvac"},
            "local_time": "2026-11-30T08:00:00Z",
        })
    };
    let too_many: Vec<Value> = (0..=cairn_http::hub::legacy_mobile::MOBILE_OPS_MAX)
        .map(|_| op("B1"))
        .collect();
    let cases: Vec<(String, &str, u16, (&str, &str))> = vec![
        ("{}".into(), &token, 422, ("operations", "required")),
        (
            serde_json::json!({"operations": too_many}).to_string(),
            &token,
            422,
            ("operations", "max_items"),
        ),
        (
            serde_json::json!({"operations": [op("B1"), op("B2")]}).to_string(),
            &token,
            403,
            ("building_id", "grant"),
        ),
        (
            serde_json::json!({"operations": [op("B1")]}).to_string(),
            &till,
            401,
            ("authorization", "token"),
        ),
    ];
    for (body, token, status, (field, rule_name)) in cases {
        let (got, answer) = call_as(&app, Method::POST, batch, &body, token).await;
        assert_eq!(
            (got, rule(&answer)),
            (status, (field.into(), rule_name.into())),
            "{body}: {answer}"
        );
    }
    let logged = hub.status().unwrap().log_size;
    // Per operation: what breaks a rule is an error naming it, the rest
    // stands.
    let mut bad = op("B1");
    bad["entity_id"] = "eq-2".into();
    bad["payload"]["status"] = "exploded".into();
    let mut future = op("B1");
    future["entity_id"] = "eq-3".into();
    future["local_time"] = "2099-01-01T00:00:00Z".into();
    let body = serde_json::json!({"operations": [op("B1"), bad, future]}).to_string();
    let (got, answer) = call_as(&app, Method::POST, batch, &body, &token).await;
    assert_eq!(got, 200, "{answer}");
    assert_eq!(answer["success"], serde_json::json!(["eq-1"]));
    let errors: Vec<(&str, &str)> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| {
            (
                error["violations"][0]["field"].as_str().unwrap(),
                error["violations"][0]["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(errors, [("status", "enum"), ("local_time", "clock")]);
    assert_eq!(hub.status().unwrap().log_size, logged + 1, "one op logged");
    let updates = "/api/v1/mobile/equipment/building";
    for (uri, status_code, (field, rule_name)) in [
        (
            format!("{updates}/B2/updates?since=0"),
            403,
            ("building", "grant"),
        ),
        (
            format!("{updates}/B1/updates?since=soon"),
            400,
            ("since", "type"),
        ),
        (
            format!("{updates}/B1/updates?since=1764489600000"),
            400,
            ("since", "unit"),
        ),
    ] {
        let (got, answer) = call_as(&app, Method::GET, &uri, "", &token).await;
        assert_eq!(
            (got, rule(&answer)),
            (status_code, (field.into(), rule_name.into())),
            "{uri}: {answer}"
        );
    }
    let uri = format!("{updates}/B1/updates?since=0");
    let (got, answer) = call_as(&app, Method::GET, &uri, "", &token).await;
    assert_eq!(got, 200, "{answer}");
    assert_eq!(answer["updates"][0]["equipment"]["id"], "eq-1");
    assert_eq!(answer["updates"][0]["equipment"]["version"], 1);
}
