//! Merkle tree tests: RFC 6962 known answers, the transparency-dev vectors
//! (read in place from `../shared/testdata`), and generated proofs checked
//! against a naive implementation for every small size.
#![allow(
    clippy::disallowed_methods,
    reason = "these tests read the shared RFC 6962 vectors in ../shared/testdata"
)]

use super::*;
use base64::Engine;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The RFC 6962 test leaves.
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

fn rfc_tree(n: usize) -> MemoryTree {
    let mut tree = MemoryTree::default();
    for leaf in &LEAVES[..n] {
        tree.push(leaf_hash(&hex::decode(leaf).unwrap()));
    }
    tree
}

/// MTH straight from the RFC's definition.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

#[test]
fn append_nodes_builds_the_same_levels_as_the_memory_tree() {
    let mut tree = MemoryTree::default();
    let mut stored: std::collections::BTreeMap<(u32, u64), Hash> = Default::default();
    for n in 0..40u64 {
        let leaf = leaf_hash(&n.to_be_bytes());
        tree.push(leaf);
        for (level, index, hash) in
            append_nodes(n, leaf, |level, index| stored.get(&(level, index)).copied()).unwrap()
        {
            stored.insert((level, index), hash);
        }
    }
    for ((level, index), hash) in &stored {
        assert_eq!(tree.subtree(*level, *index), Some(*hash));
    }
    assert_eq!(
        append_nodes(1, leaf_hash(b"x"), |_, _| None),
        None,
        "a missing sibling is reported"
    );
}

#[test]
fn rfc6962_known_roots() {
    assert_eq!(
        root(&rfc_tree(8), 8).unwrap().to_hex(),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
    let prefixes = [
        (1, "6e340b9c"),
        (2, "fac54203"),
        (3, "aeb6bcfe"),
        (4, "d37ee418"),
        (5, "4e3bbb1f"),
        (6, "76e67dad"),
        (7, "ddb89be4"),
    ];
    for (n, prefix) in prefixes {
        assert!(
            root(&rfc_tree(n), n as u64)
                .unwrap()
                .to_hex()
                .starts_with(prefix),
            "root of {n} leaves"
        );
    }
    assert_eq!(
        empty_root().to_hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn generated_proofs_verify_for_every_small_tree() {
    let leaves: Vec<Hash> = (0..70u32).map(|n| leaf_hash(&n.to_be_bytes())).collect();
    let mut tree = MemoryTree::default();
    for (size, leaf) in leaves.iter().enumerate() {
        tree.push(*leaf);
        let size = size as u64 + 1;
        let expected_root = naive_root(&leaves[..size as usize]);
        assert_eq!(root(&tree, size), Some(expected_root));
        for index in 0..size {
            let proof = inclusion_proof(&tree, index, size).unwrap();
            verify_inclusion(index, size, &leaves[index as usize], &proof, &expected_root).unwrap();
            // Any other leaf, or a proof with a changed hash, fails.
            let other = leaves[((index + 1) % size) as usize];
            if size > 1 {
                assert!(verify_inclusion(index, size, &other, &proof, &expected_root).is_err());
            }
        }
        for old in 1..=size {
            let old_root = naive_root(&leaves[..old as usize]);
            let proof = consistency_proof(&tree, old, size).unwrap();
            verify_consistency(old, size, &old_root, &expected_root, &proof).unwrap();
            if old < size {
                let wrong = leaf_hash(b"rewritten history");
                assert!(verify_consistency(old, size, &wrong, &expected_root, &proof).is_err());
            }
        }
    }
}

fn testdata() -> PathBuf {
    let dir = manifest_dir().join("../../../shared/testdata/transparency-dev-merkle/testdata");
    assert!(
        dir.exists(),
        "the transparency-dev test vectors are missing: expected {} (../shared/testdata beside the repository)",
        dir.display()
    );
    dir
}

fn json_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "json") {
            found.push(path);
        }
    }
}

/// Decodes a base64 hash; `None` when it is not 32 bytes (such a case must be an error).
fn hash(value: &Value) -> Option<Hash> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_str()?)
        .ok()?;
    Hash::from_slice(&bytes)
}

fn proof(value: &Value) -> Option<Vec<Hash>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items.iter().map(hash).collect(),
        _ => None,
    }
}

#[test]
fn transparency_dev_inclusion_vectors() {
    let mut files = Vec::new();
    json_files(&testdata().join("inclusion"), &mut files);
    assert!(files.len() > 50);
    for file in files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let want_error = case["wantErr"].as_bool().unwrap();
        let outcome = (|| {
            let leaf = hash(&case["leafHash"])?;
            let root_hash = hash(&case["root"])?;
            let proof = proof(&case["proof"])?;
            Some(verify_inclusion(
                case["leafIdx"].as_u64()?,
                case["treeSize"].as_u64()?,
                &leaf,
                &proof,
                &root_hash,
            ))
        })();
        let failed = !matches!(outcome, Some(Ok(())));
        assert_eq!(failed, want_error, "{}: {outcome:?}", file.display());
    }
}

#[test]
fn transparency_dev_consistency_vectors() {
    let mut files = Vec::new();
    json_files(&testdata().join("consistency"), &mut files);
    assert!(files.len() > 50);
    for file in files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let want_error = case["wantErr"].as_bool().unwrap();
        let outcome = (|| {
            // Equal sizes compare the roots as given, without hashing: the
            // vectors use roots that are not 32 bytes there.
            let raw = |key: &str| {
                base64::engine::general_purpose::STANDARD
                    .decode(case[key].as_str()?)
                    .ok()
            };
            if case["size1"] == case["size2"]
                && proof(&case["proof"]).is_some_and(|p| p.is_empty())
                && raw("root1")?.len() != 32
            {
                let equal = raw("root1") == raw("root2") && case["size1"].as_u64()? > 0;
                return Some(if equal {
                    Ok(())
                } else {
                    Err(ProofError::Mismatch)
                });
            }
            let (old_root, new_root) = (hash(&case["root1"])?, hash(&case["root2"])?);
            let proof = proof(&case["proof"])?;
            Some(verify_consistency(
                case["size1"].as_u64()?,
                case["size2"].as_u64()?,
                &old_root,
                &new_root,
                &proof,
            ))
        })();
        let failed = !matches!(outcome, Some(Ok(())));
        assert_eq!(failed, want_error, "{}: {outcome:?}", file.display());
    }
}

fn leaf_n(n: u64) -> Hash {
    leaf_hash(&n.to_be_bytes())
}

#[test]
fn compact_ranges_tile_the_range_with_aligned_subtrees() {
    assert_eq!(compact_range(0, 13), vec![(3, 0), (2, 2), (0, 12)]);
    assert_eq!(compact_range(3, 13), vec![(0, 3), (2, 1), (2, 2), (0, 12)]);
    assert_eq!(compact_range(5, 5), vec![]);
    for begin in 0..40u64 {
        for end in begin..40 {
            let mut at = begin;
            for (level, index) in compact_range(begin, end) {
                assert_eq!(index << level, at, "[{begin}, {end})");
                at += 1 << level;
            }
            assert_eq!(at, end);
        }
    }
}

#[test]
fn range_proofs_verify_every_range_and_refuse_changes() {
    let mut tree = MemoryTree::default();
    for n in 0..37 {
        tree.push(leaf_n(n));
    }
    for size in 1..=37u64 {
        let root = root(&tree, size).unwrap();
        for begin in 0..size {
            for end in begin + 1..=size {
                let leaves: Vec<Hash> = (begin..end).map(leaf_n).collect();
                let proof = range_proof(&tree, begin, end, size).unwrap();
                assert_eq!(
                    verify_range(begin, &leaves, size, &proof, &root),
                    Ok(()),
                    "[{begin}, {end}) of {size}"
                );
                // A changed leaf, a shifted range, a wrong root.
                let mut changed = leaves.clone();
                changed[0] = leaf_n(1000);
                assert!(verify_range(begin, &changed, size, &proof, &root).is_err());
                if begin > 0 {
                    assert!(verify_range(begin - 1, &leaves, size, &proof, &root).is_err());
                }
                assert!(verify_range(begin, &leaves, size, &proof, &leaf_n(7)).is_err());
            }
        }
    }
    let proof = range_proof(&tree, 3, 9, 37).unwrap();
    let short = RangeProof {
        left: proof.left[1..].to_vec(),
        right: proof.right.clone(),
    };
    let leaves: Vec<Hash> = (3..9).map(leaf_n).collect();
    assert!(matches!(
        verify_range(3, &leaves, 37, &short, &root(&tree, 37).unwrap()),
        Err(ProofError::Length { .. })
    ));
    assert_eq!(
        verify_range(30, &leaves, 33, &proof, &root(&tree, 33).unwrap()),
        Err(ProofError::Range)
    );
    assert!(range_proof(&tree, 5, 5, 37).is_none());
}

/// The crate's directory, as cargo says it when it runs the test: the value
/// compiled in may name another checkout that shared the target directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
