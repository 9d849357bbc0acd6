//! Checkpoint notes and log entries from hostile bytes: parsing never panics, a parsed note
//! formats back to the same text, a decoded entry re-encodes to the same bytes, and the light
//! client refuses anything that is not signed by the genesis members.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_core::identity::SecretKey;
use pyrsia_core::light::{Connectivity, LightClient, Policy};
use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_core::tlog::entry::{Entry, Genesis, KeyList};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (text, entry) = data.split_at(split);
    if let Ok(text) = core::str::from_utf8(text) {
        if let Ok(note) = SignedCheckpoint::parse(text) {
            assert_eq!(
                note.to_string(),
                text,
                "a parsed note formats back to its text"
            );
            let key = SecretKey::from_seed([1; 32]).public().to_bytes();
            let genesis = Entry::Genesis(Genesis {
                origin: "fuzz",
                faults: 0,
                members: KeyList(&key),
                created: 0,
            })
            .encode();
            let client = LightClient::new(&genesis, Policy::default()).expect("valid genesis");
            // Nobody holding seed [1; 32]'s signature for fuzzer text is possible.
            assert!(
                client
                    .check_checkpoint(&note, &[], u64::MAX / 2, Connectivity::Offline)
                    .is_err()
            );
        }
    }
    if let Ok(decoded) = Entry::decode(entry) {
        assert_eq!(decoded.encode(), entry, "entries have one encoding");
    }
});
