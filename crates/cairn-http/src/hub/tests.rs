//! The hub router's pure helpers: answers compressed when asked and worth
//! it, and the hub's time read from `Server-Timing` alone.

use super::*;

#[test]
fn answers_are_compressed_when_asked_and_worth_it() {
    let mut asks = HeaderMap::new();
    asks.insert(
        axum::http::header::ACCEPT_ENCODING,
        "gzip, zstd;q=0.9".parse().unwrap(),
    );
    let coding = |headers: &HeaderMap, value: &Value| {
        json_answer(headers, value)
            .headers()
            .get(axum::http::header::CONTENT_ENCODING)
            .map(|value| value.to_str().unwrap().to_string())
    };
    let large = json!({"results": vec!["accepted"; 1_000]});
    assert_eq!(coding(&asks, &large).as_deref(), Some("zstd"));
    assert_eq!(coding(&asks, &json!({"results": ["accepted"]})), None);
    assert_eq!(coding(&HeaderMap::new(), &large), None, "not asked");
}

#[test]
fn the_hub_time_is_read_from_server_timing_and_nothing_else() {
    let read = |value: Option<&str>| {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(SERVER_TIMING, value.parse().unwrap());
        }
        hub_time_ms(&headers)
    };
    assert_eq!(read(Some("hub;dur=42")), Some(42));
    assert_eq!(read(Some("db;dur=3, hub;desc=\"x\";dur=7.9")), Some(7));
    assert_eq!(read(None), None);
    assert_eq!(read(Some("db;dur=3")), None, "another metric");
    assert_eq!(read(Some("hub")), None, "no duration");
    assert_eq!(read(Some("hub;dur=soon")), None, "not a number");
    assert_eq!(read(Some("hubris;dur=5")), None, "only the exact name");
}
