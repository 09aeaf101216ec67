//! The edge HTTP API, served by a real `cairn edge serve` process on
//! 127.0.0.1: writes, reads, and every error path with its status, field and
//! rule, with nothing stored by any refused request.

mod common;

use common::{Edge, action, init_node};
use serde_json::{Value, json};

struct Api {
    client: reqwest::Client,
    url: String,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            path,
            Some(body.to_string().into_bytes()),
            Some("application/json"),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None, None).await
    }
}

/// Expected status, expected (field, rule), and what the server answered.
type Case = (u16, (&'static str, &'static str), (u16, Value));

fn first_violation(body: &Value) -> (String, String) {
    let violation = &body["error"]["violations"][0];
    (
        violation["field"].as_str().unwrap_or_default().to_string(),
        violation["rule"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn writes_reads_and_batches_over_http() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path(), "pharmacy-1");
    let edge = Edge::start(dir.path());
    let api = Api {
        client: cairn_http::tls::builder().build().unwrap(),
        url: edge.url.clone(),
    };
    let (status, health) = api.get("/v1/health").await;
    assert_eq!((status, health["node"].clone()), (200, json!("pharmacy-1")));
    let (status, receipt) = api
        .post(
            "/v1/records",
            &json!({"collection": "maintenance_actions", "data": action("WO-1")}),
        )
        .await;
    assert_eq!(status, 201, "{receipt}");
    let id = receipt["id"].as_str().unwrap().to_string();
    let (status, record) = api
        .get(&format!("/v1/records/maintenance_actions/{id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(record["data"]["work_order"], "WO-1");
    let records: Vec<Value> = (0..10)
        .map(|n| {
            json!({"collection": "inventory", "key": "00002-1433-80", "data": if n == 0 {
                json!({"ndc": "00002-1433-80", "quantity": 100})
            } else {
                json!({"quantity": -1})
            }})
        })
        .collect();
    let (status, batch) = api
        .post("/v1/records/batch", &json!({"records": records}))
        .await;
    assert_eq!(status, 201, "{batch}");
    assert_eq!(batch["receipts"].as_array().unwrap().len(), 10);
    let (_, stock) = api.get("/v1/records/inventory/00002-1433-80").await;
    assert_eq!(stock["fields"]["quantity"], 91);
    let (status, list) = api
        .get("/v1/records/maintenance_actions?scope=site=hangar-7&limit=5")
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["records"].as_array().unwrap().len(), 1);
    let (_, status_body) = api.get("/v1/status").await;
    assert_eq!(status_body["pending_total"], 11);
    let (status, collections) = api.get("/v1/collections").await;
    assert_eq!(status, 200);
    assert!(collections["collections"].as_array().unwrap().len() >= 9);
    // Every field says what it accepts (issue 11, item 4).
    let actions = collections["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|collection| collection["name"] == "maintenance_actions")
        .unwrap();
    assert_eq!(actions["fields"]["work_order"]["type"], "string");
    assert_eq!(
        actions["fields"]["work_order"]["format"],
        "^WO-[A-Z0-9-]{1,40}$"
    );
    assert_eq!(actions["fields"]["action"]["enum"][0], "inspection");
    edge.kill();
}

#[tokio::test]
async fn every_api_error_path_is_a_precise_4xx_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path(), "hangar-7");
    let edge = Edge::start(dir.path());
    let api = Api {
        client: cairn_http::tls::builder().build().unwrap(),
        url: edge.url.clone(),
    };
    let json_type = Some("application/json");
    let post_raw = |body: Vec<u8>, content_type: Option<&'static str>| {
        let api = &api;
        async move {
            api.send(
                reqwest::Method::POST,
                "/v1/records",
                Some(body),
                content_type,
            )
            .await
        }
    };
    let cases: Vec<Case> = vec![
        (400, ("body", "json"), post_raw(b"{\"collection\": ".to_vec(), json_type).await),
        (400, ("body", "utf8"), post_raw(b"{\"collection\": \"\xff\"}".to_vec(), json_type).await),
        (413, ("body", "max_bytes"), post_raw(vec![b' '; 9 * 1024 * 1024], json_type).await),
        (415, ("content-type", "media_type"), post_raw(b"{}".to_vec(), Some("text/plain")).await),
        (422, ("collection", "required"), api.post("/v1/records", &json!({"data": {}})).await),
        (422, ("collection", "unknown"), api.post("/v1/records", &json!({"collection": "nope", "data": {}})).await),
        (422, ("collection", "type"), api.post("/v1/records", &json!({"collection": 7, "data": {}})).await),
        (422, ("surprise", "unknown_field"), api.post("/v1/records", &json!({"collection": "maintenance_actions", "data": action("WO-1"), "surprise": 1})).await),
        (422, ("data", "required"), api.post("/v1/records", &json!({"collection": "maintenance_actions"})).await),
        (422, ("data", "type"), api.post("/v1/records", &json!({"collection": "maintenance_actions", "data": [1, 2]})).await),
        (422, ("action", "enum"), api.post("/v1/records", &json!({"collection": "maintenance_actions", "action": "upsert", "data": action("WO-1")})).await),
        (422, ("action", "kind"), api.post("/v1/records", &json!({"collection": "maintenance_actions", "action": "put", "data": action("WO-1")})).await),
        (422, ("technician", "required"), {
            let mut record = action("WO-1");
            record.as_object_mut().unwrap().remove("technician");
            api.post("/v1/records", &json!({"collection": "maintenance_actions", "data": record})).await
        }),
        (422, ("hours", "type"), {
            let mut record = action("WO-1");
            record["hours"] = json!(true);
            api.post("/v1/records", &json!({"collection": "maintenance_actions", "data": record})).await
        }),
        (422, ("description", "max_length"), {
            let mut record = action("WO-1");
            record["description"] = json!("y".repeat(100_000));
            api.post("/v1/records", &json!({"collection": "maintenance_actions", "data": record})).await
        }),
        (422, ("scope", "type"), api.post("/v1/records", &json!({"collection": "maintenance_actions", "data": action("WO-1"), "scope": "site"})).await),
        (422, ("key", "required"), api.post("/v1/records", &json!({"collection": "equipment", "data": {"name": "x"}})).await),
        (422, ("records", "required"), api.post("/v1/records/batch", &json!({})).await),
        (422, ("records", "max_records"), api.post("/v1/records/batch", &json!({"records": vec![json!({}); 1001]})).await),
        (422, ("records", "min_records"), api.post("/v1/records/batch", &json!({"records": []})).await),
        (404, ("collection", "unknown"), api.get("/v1/records/nope/1").await),
        (404, ("id", "exists"), api.get("/v1/records/maintenance_actions/hangar-7:standard:42").await),
        (400, ("limit", "range"), api.get("/v1/records/maintenance_actions?limit=0").await),
        (400, ("colour", "unknown_parameter"), api.get("/v1/records/maintenance_actions?colour=red").await),
        (404, ("path", "route"), api.get("/v2/anything").await),
        // Issue 9, item 15.
        (415, ("content-type", "media_type"), post_raw(b"{}".to_vec(), None).await),
        (400, ("body", "duplicate_key"), post_raw(br#"{"collection": "a", "collection": "b"}"#.to_vec(), json_type).await),
        (400, ("after", "format"), api.get("/v1/records/maintenance_actions?after=x").await),
        (400, ("after", "format"), api.get("/v1/records/maintenance_actions?after=0").await),
        (400, ("after", "format"), api.get("/v1/records/maintenance_actions?after=-1").await),
        (405, ("method", "route"), api.send(reqwest::Method::DELETE, "/v1/records", None, None).await),
    ];
    for (expected_status, (field, rule), (status, body)) in &cases {
        assert_eq!(*status, *expected_status, "{field}/{rule}: {body}");
        assert_eq!(
            first_violation(body),
            (field.to_string(), rule.to_string()),
            "{body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(rule),
            "message names the rule: {body}"
        );
    }
    // A batch with one bad record: the index is reported and nothing is stored.
    let mut bad = action("WO-3");
    bad["action"] = json!("painting");
    let (status, body) = api
        .post(
            "/v1/records/batch",
            &json!({"records": [{"collection": "maintenance_actions", "data": action("WO-2")}, {"collection": "maintenance_actions", "data": bad}]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["violations"][0]["index"], 1);
    assert_eq!(
        first_violation(&body),
        ("action".to_string(), "enum".to_string())
    );
    let (_, status_body) = api.get("/v1/status").await;
    assert_eq!(status_body["pending_total"], 0, "nothing was stored");
    edge.kill();
}
