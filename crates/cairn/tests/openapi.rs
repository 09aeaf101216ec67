//! The API contracts (issue 13): each process serves an OpenAPI 3.1
//! document generated from its handlers at `/openapi.json`, and
//! schemathesis (PyPI; `.ci/run` installs it), generating requests from the
//! document alone, finds no 5xx and no answer that breaks its schema, on
//! the hub (as an operator, so staff routes are reached) and on an edge.

mod common;

use common::{Edge, cairn, enrolled_node, json_out, ok};
use serde_json::Value;

fn schemathesis(url: &str, token: Option<&str>) {
    let mut command = std::process::Command::new("schemathesis");
    command
        .args(["run", &format!("{url}/openapi.json"), "--url", url])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "40", "--phases", "examples,coverage,fuzzing", "--request-timeout", "10", "--workers", "2"]);
    if let Some(token) = token {
        command.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let output = command
        .output()
        .expect("schemathesis runs (PyPI; .ci/run installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures against {url}:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = text
        .lines()
        .filter(|line| line.contains("generated"))
        .collect::<Vec<_>>()
        .join(" ");
    println!("{url}: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_openapi_documents_hold_against_schemathesis() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let site = enrolled_node(work.path(), &hub_dir, "site-1", "site=hangar-7");
    let hub = tokio::task::block_in_place(|| Edge::start_hub(&hub_dir));
    let edge = tokio::task::block_in_place(|| {
        Edge::start_with(
            &site,
            &["edge", "serve", "--listen", "127.0.0.1:0", "--offline"],
        )
    });
    let client = cairn_http::tls::client(&hub.url, None, None).unwrap();
    for url in [&hub.url, &edge.url] {
        let response = client
            .get(format!("{url}/openapi.json"))
            .send()
            .await
            .unwrap();
        let document: Value = response.json().await.unwrap();
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|version| version.starts_with("3.1")),
            "{document}"
        );
        assert!(document["paths"]["/healthz"].is_object());
    }
    let operator = json_out(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "token",
            "--subject",
            "olivia",
            "--role",
            "operator",
        ],
    ))["token"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::task::block_in_place(|| {
        schemathesis(&hub.url, Some(&operator));
        schemathesis(&edge.url, None);
    });
}
