//! Tidy checks: the rules of ARCHITECTURE.md and STYLE.md that a test can see.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
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

fn files_of(crate_dir: &str, sub: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let dir = workspace().join("crates").join(crate_dir).join(sub);
    if dir.exists() {
        rust_files(&dir, &mut found);
    }
    found
}

#[test]
fn every_module_says_why_it_exists() {
    let mut missing = Vec::new();
    for krate in ["cairn-core", "cairn-store", "cairn"] {
        for file in files_of(krate, "src")
            .into_iter()
            .chain(files_of(krate, "tests"))
        {
            let text = std::fs::read_to_string(&file).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(file.display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files without a //! module comment: {missing:#?}"
    );
}

#[test]
fn the_core_depends_on_nothing_that_does_io() {
    let manifest =
        std::fs::read_to_string(workspace().join("crates/cairn-core/Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&manifest).unwrap();
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
    let dependencies = manifest["dependencies"].as_table().unwrap();
    for name in dependencies.keys() {
        assert!(
            allowed.contains(&name.as_str()),
            "cairn-core may not depend on {name}: the core does no I/O"
        );
    }
}

#[test]
fn the_core_never_reads_the_clock_or_touches_files_or_sockets() {
    let forbidden = [
        "SystemTime::now",
        "Instant::now",
        "std::fs",
        "std::net",
        "std::process",
        "thread_rng",
        "getrandom",
    ];
    for file in files_of("cairn-core", "src") {
        // Test modules may read the shared test vectors from disk.
        if file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} uses {word}: the core takes time and randomness from its callers",
                file.display()
            );
        }
    }
}

#[test]
fn no_sql_outside_the_store() {
    for file in files_of("cairn", "src")
        .into_iter()
        .chain(files_of("cairn-core", "src"))
    {
        // The benchmark measures raw SQLite as a ceiling, by design.
        if file.ends_with("bench.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for word in ["SELECT ", "INSERT INTO", "UPDATE ", "CREATE TABLE"] {
            assert!(
                !text.contains(word),
                "{} contains SQL ({word}); SQL lives in cairn-store",
                file.display()
            );
        }
    }
}
