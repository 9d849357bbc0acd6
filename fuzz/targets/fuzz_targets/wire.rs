//! Wire decoding: frames, stream splitting and signed envelopes from arbitrary bytes. Errors
//! only, never a panic or an allocation driven by a hostile length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_core::identity::Purpose;
use pyrsia_core::wire::frame::{decode, split};
use pyrsia_core::wire::{Envelope, FRAME_LEN_MAX};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum Sample<'a> {
    Ping(u64),
    Have {
        count: u32,
        name: &'a str,
        bytes: &'a [u8],
    },
    Votes(Vec<(u64, bool)>),
}

fuzz_target!(|data: &[u8]| {
    let _ = decode::<Sample>(data, FRAME_LEN_MAX);
    if let Ok(envelope) = decode::<Envelope>(data, FRAME_LEN_MAX) {
        let _ = envelope.open::<Sample>(Purpose::PeerMessage);
    }
    let mut rest = data;
    while let Ok(Some(frame)) = split(rest, 1024) {
        assert!(frame.payload.len() <= 1024);
        rest = frame.rest;
    }
});
