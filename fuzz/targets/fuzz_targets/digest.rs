//! Digest parsing: no panic; only canonical text is accepted; streaming equals one-shot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_core::digest::{Digest, Verification};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(digest) = Digest::parse(text) {
            assert_eq!(digest.to_string(), text);
        }
    }
    let whole = Digest::sha256(data);
    let mut verifier = whole.verifier();
    for chunk in data.chunks(7) {
        verifier.update(chunk);
    }
    assert_eq!(verifier.finish(), Verification::Match);
});
