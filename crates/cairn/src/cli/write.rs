//! Record writes from the command line. A store has one writer: while
//! `cairn edge serve` runs on a data directory, its writer owns the
//! streams, so the command line sends its writes through that server's API
//! (same checks, same answers) instead of writing beside it, which once
//! broke the server's next write. Otherwise it writes to the store itself,
//! holding the serve lock so that a server cannot start meanwhile.

use super::{Failure, SERVE_LOCK, exit, open, print_receipt};
use anyhow::Context;
use cairn_core::pack::Violation;
use cairn_edge::input;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Where a running `edge serve` says where it listens.
const SERVE_FILE: &str = "serve.json";

/// Who may write to a data directory now.
pub(super) enum Writer {
    /// Nobody serves it: this process holds the lock while it writes.
    Local(std::fs::File),
    /// `cairn edge serve` runs on it, at this URL.
    Server(String),
}

/// Takes the serve lock of `dir` (held until the file is dropped), or
/// `None` when `cairn edge serve` holds it.
pub(super) fn try_serve_lock(dir: &Path) -> Result<Option<std::fs::File>, Failure> {
    let path = dir.join(SERVE_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(error)) => Err(Failure::fault(anyhow::anyhow!(
            "cannot lock {}: {error}",
            path.display()
        ))),
    }
}

/// Tells who writes to `dir`: this process (the serve lock taken), or the
/// running server.
pub(super) fn writer(dir: &Path) -> Result<Writer, Failure> {
    if let Some(lock) = try_serve_lock(dir)? {
        return Ok(Writer::Local(lock));
    }
    let url = std::fs::read_to_string(dir.join(SERVE_FILE))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|value| value["url"].as_str().map(str::to_string));
    match url {
        Some(url) => Ok(Writer::Server(url)),
        None => Err(Failure::invalid(
            None,
            &[Violation::new(
                "data",
                "not_serving",
                format!(
                    "`cairn edge serve` is starting on {}; write through its API or try again",
                    dir.display()
                ),
            )],
        )),
    }
}

/// Records where `edge serve` listens, for the command line's writes.
pub(super) fn announce(dir: &Path, url: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(SERVE_FILE);
    std::fs::write(
        &path,
        json!({"url": url, "pid": std::process::id()}).to_string(),
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Writes one record given in the API's JSON form (`input::write_request`).
pub(super) fn write(cli: &super::Cli, body: Value) -> Result<(), Failure> {
    match writer(&cli.data)? {
        Writer::Local(_lock) => {
            let store = open(cli)?;
            let request = input::write_request(&store.catalog(), &body, 0)
                .map_err(|(_, violations)| Failure::refused_write(None, &violations))?;
            let receipt = store.write(request)?;
            print_receipt(cli, &receipt);
            Ok(())
        }
        Writer::Server(url) => through_server(cli, &url, &body),
    }
}

/// Sends the write to the running server and reports its answer as if it
/// had been written here.
fn through_server(cli: &super::Cli, url: &str, body: &Value) -> Result<(), Failure> {
    let runtime = super::one_shot_runtime()?;
    let (status, answer) = runtime.block_on(async {
        let response = cairn_http::tls::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()?
            .post(format!("{url}/v1/records"))
            .json(body)
            .send()
            .await
            .with_context(|| format!("`cairn edge serve` at {url} does not answer"))?;
        let status = response.status();
        let answer: Value = response.json().await.context("its answer is not JSON")?;
        anyhow::Ok((status, answer))
    })?;
    if status.is_success() {
        let receipt: cairn_edge::WriteReceipt =
            serde_json::from_value(answer).context("the server's receipt is not a receipt")?;
        print_receipt(cli, &receipt);
        return Ok(());
    }
    let error = &answer["error"];
    let message = error["message"].as_str().unwrap_or("").to_string();
    let code = match status.as_u16() {
        507 => exit::STORAGE_FULL,
        404 => exit::NOT_FOUND,
        400..=499 => exit::INVALID,
        _ => exit::FAULT,
    };
    Err(Failure {
        code,
        json: json!({"error": error}),
        text: format!("error: refused by `cairn edge serve` at {url}: {message}"),
    })
}
