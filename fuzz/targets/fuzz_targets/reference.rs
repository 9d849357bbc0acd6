//! Repository names, tags, references, hosts and image references: no panic, and what parses
//! formats back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_core::reference::{Host, ImageRef, Name, Reference, Tag};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = Name::parse(text) {
        assert_eq!(name.as_str(), text);
        assert!(!text.contains("..") && !text.starts_with('/') && !text.contains("//"));
    }
    if let Ok(tag) = Tag::parse(text) {
        assert_eq!(tag.as_str(), text);
    }
    if let Ok(reference) = Reference::parse(text) {
        assert_eq!(reference.to_string(), text);
    }
    if let Ok(host) = Host::parse(text) {
        assert_eq!(Host::parse(host.as_str()), Ok(host.clone()));
    }
    if let Ok(image) = ImageRef::parse(text) {
        // The normalised form parses to the same reference.
        let normal = image.to_string();
        let again = ImageRef::parse(&normal).expect("normalised reference must parse");
        assert_eq!(again.to_string(), normal);
    }
});
