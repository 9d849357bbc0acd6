//! Manifest parsing: arbitrary bytes, with and without a Content-Type, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_core::manifest::Manifest;
use pyrsia_core::media_type::MediaType;

fuzz_target!(|data: &[u8]| {
    let _ = Manifest::parse(data, None);
    for media_type in MediaType::PULLABLE {
        if let Ok(m) = Manifest::parse(data, Some(media_type.as_str())) {
            assert_eq!(m.media_type(), media_type);
            if m.is_index() {
                assert!(m.config().is_none() && m.layers().is_empty());
            }
        }
    }
});
