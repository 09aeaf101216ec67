//! Test helper: mutations of valid encodings, for the decoder tests of
//! this crate (push bodies, pull pages, acknowledgement files). Random
//! bytes almost never pass a format's first check; a mutation of a real
//! encoding reaches every field.

/// Mutations of a valid encoding (a bit flipped, a cut, bytes put in,
/// bytes taken out), as `cairn_core`'s decoder tests make them.
pub(crate) fn mutated(
    bytes: &[u8],
    at: proptest::sample::Index,
    kind: u8,
    extra: &[u8],
) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return out;
    }
    let at = at.index(out.len());
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
