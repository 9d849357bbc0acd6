//! The registry router, content negotiation and Range handling on arbitrary requests.
//! Input: first byte picks the method; the rest is `path \n query \n accept-line*`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_core::reference::Name;
use pyrsia_core::registry::{AcceptSet, Method, Route, range, route};

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or("");
    let query = lines.next().unwrap_or("");
    let method = Method::parse(METHODS[m as usize % METHODS.len()]);
    match route(method, path, query) {
        Ok(
            Route::Manifest { name, .. } | Route::Blob { name, .. } | Route::TagsList { name, .. },
        ) => {
            // Whatever the router accepts is a valid, traversal-free name.
            assert!(Name::parse(name.as_str()).is_ok());
            assert!(
                !name
                    .as_str()
                    .split('/')
                    .any(|c| c == ".." || c == "." || c.is_empty())
            );
        }
        Ok(_) => {}
        Err(e) => {
            assert!(matches!(e.status(), 400 | 404 | 405));
            assert!(e.json().to_string().starts_with("{\"errors\":["));
        }
    }
    let accept = AcceptSet::from_headers(lines.clone());
    assert!(accept.iter().count() <= 4);
    let size = u64::from(m) * 1000;
    if let range::RangeOutcome::Partial(r) = range::evaluate(lines.next(), size) {
        assert!(r.first <= r.last && r.last < size);
    }
});
