//! The core's purity, checked where its own tests run (`cargo test -p
//! cairn-core`): its dependencies of every kind against an allowlist (read
//! from `cargo metadata`, not from the manifest's text), and its sources
//! for the words that do I/O, read the clock or draw OS randomness. Clippy
//! (`crates/cairn-core/clippy.toml`) catches the same through any alias.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the checks read the core's sources and run cargo metadata; the core itself may not"
)]

use std::path::{Path, PathBuf};

fn core_dir() -> PathBuf {
    manifest_dir()
}

/// The core's declared dependencies: (name, kind).
fn dependencies() -> Vec<(String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(core_dir())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let core = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == "cairn-core")
        .expect("cairn-core in the workspace");
    core["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dependency| {
            (
                dependency["name"].as_str().unwrap().to_string(),
                dependency["kind"].as_str().unwrap_or("normal").to_string(),
            )
        })
        .collect()
}

#[test]
fn the_core_depends_on_nothing_that_does_io() {
    // Normal and build dependencies: pure computation only.
    let allowed = [
        "base64",
        "ed25519-dalek",
        "hex",
        "regex",
        "serde",
        "serde_json",
        "ryu-js",
        "sha2",
        "thiserror",
        "toml",
    ];
    // Test-only: property tests and the reference canonicalizer.
    let allowed_dev = ["proptest", "serde_json", "serde_json_canonicalizer"];
    let dependencies = dependencies();
    assert!(!dependencies.is_empty());
    for (name, kind) in dependencies {
        let list: &[&str] = if kind == "dev" {
            &allowed_dev
        } else {
            &allowed
        };
        assert!(
            list.contains(&name.as_str()),
            "cairn-core may not depend on {name} ({kind}): the core does no I/O"
        );
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The words of I/O, clocks and OS randomness, whatever the import: a
/// path segment (`fs::`, `net::`), a grouped import (`std::{fs`), or a name.
const FORBIDDEN: [&str; 21] = [
    "std::fs",
    "std::net",
    "std::process",
    "std::thread",
    "std::env",
    "fs::",
    "net::",
    "process::",
    "thread::",
    "std::{",
    "SystemTime",
    "Instant",
    "UNIX_EPOCH",
    "OsRng",
    "thread_rng",
    "getrandom",
    "env::var",
    "File::",
    "TcpStream",
    "tokio",
    "rusqlite",
];

/// The words of `text` that break the rule, outside comments.
fn forbidden_words(text: &str) -> Vec<&'static str> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    FORBIDDEN
        .iter()
        .copied()
        .filter(|word| code.contains(word))
        .collect()
}

#[test]
fn the_core_never_reads_the_clock_or_touches_files_or_sockets() {
    let mut files = Vec::new();
    rust_files(&core_dir().join("src"), &mut files);
    let mut found = Vec::new();
    for file in files {
        // Test modules may read the shared test vectors from disk.
        if file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for word in forbidden_words(&text) {
            found.push(format!("{}: {word}", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "the core takes time, I/O and randomness from its callers: {found:#?}"
    );
}

#[test]
fn the_scan_sees_through_the_ways_an_import_hides() {
    for hidden in [
        "use std::{fs, net};",
        "let t = std::time::UNIX_EPOCH.elapsed();",
        "std::thread::spawn(|| ());",
        "let rng = OsRng;",
        "use std::fs as files;",
    ] {
        assert!(!forbidden_words(hidden).is_empty(), "{hidden}");
    }
    assert!(forbidden_words("// std::fs in a comment is fine").is_empty());
}

/// The crate's directory, as cargo says it when it runs the test: the value
/// compiled in may name another checkout that shared the target directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
