//! Mutations of valid encodings, for the decoder tests of every crate
//! (push bodies, pull pages, bundles, acknowledgement files). Random bytes
//! almost never pass a format's first check; a mutation of a real encoding
//! reaches every field. (The core's own decoder tests use a richer set,
//! with length-field edits and splices: `mutation_tests`.)

/// `bytes` with one mutation: a bit flipped (`kind % 4 == 0`), a cut (1),
/// `extra` put in (2), or bytes taken out (3), at `at % len`.
pub fn mutated(bytes: &[u8], at: usize, kind: u8, extra: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return out;
    }
    let at = at % out.len();
    match kind % 4 {
        0 => out[at] ^= 1 << (extra.first().copied().unwrap_or(0) % 8),
        1 => out.truncate(at),
        2 => {
            out.splice(at..at, extra.iter().copied());
        }
        _ => {
            out.drain(at..(at + extra.len().max(1)).min(bytes.len()));
        }
    }
    out
}
