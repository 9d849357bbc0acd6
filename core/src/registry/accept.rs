//! Content negotiation over every `Accept` header line a client sends (skopeo and podman send
//! six separate lines; docker sends one comma-separated line).

use crate::media_type::MediaType;

/// The manifest media types a client accepts, gathered across all its `Accept` lines.
///
/// Feed each header line to [`AcceptSet::add_header`]; then ask [`AcceptSet::accepts`] before
/// serving a cached manifest, and forward [`AcceptSet::iter`] to the upstream on a miss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptSet {
    accepted: u8,
    excluded: u8,
    wildcard: bool,
}

impl AcceptSet {
    /// An empty set: as if the client sent no `Accept` header.
    pub const fn new() -> Self {
        AcceptSet {
            accepted: 0,
            excluded: 0,
            wildcard: false,
        }
    }

    /// Builds the set from every `Accept` header line of a request.
    pub fn from_headers<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = AcceptSet::new();
        for line in lines {
            set.add_header(line);
        }
        set
    }

    /// Adds one `Accept` header line: comma-separated media ranges with optional parameters.
    /// `q=0` excludes a type; `*/*` and `application/*` accept every pullable type; unknown
    /// types are ignored.
    pub fn add_header(&mut self, line: &str) {
        for range in line.split(',') {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| is_zero_quality(p.trim()));
            if essence == "*/*" || essence.eq_ignore_ascii_case("application/*") {
                self.wildcard |= !refused;
                continue;
            }
            if let Some(media_type) = MediaType::parse(essence) {
                if refused {
                    self.excluded |= media_type.bit();
                } else {
                    self.accepted |= media_type.bit();
                }
            }
        }
    }

    /// Whether the client named no pullable type at all (no header, or only unknown types).
    /// Such clients are served whatever the registry has, as distribution does.
    pub const fn is_unspecified(&self) -> bool {
        self.accepted == 0 && !self.wildcard
    }

    /// Whether a manifest of `media_type` may be served to this client.
    pub const fn accepts(&self, media_type: MediaType) -> bool {
        let bit = media_type.bit();
        if self.excluded & bit != 0 {
            return false;
        }
        if matches!(media_type, MediaType::DockerSchema1) {
            return self.accepted & bit != 0;
        }
        self.accepted & bit != 0 || self.wildcard || self.accepted == 0
    }

    /// The pullable media types to put in the upstream request's `Accept`, in preference order.
    pub fn iter(&self) -> impl Iterator<Item = MediaType> + '_ {
        MediaType::PULLABLE
            .into_iter()
            .filter(move |m| self.accepts(*m))
    }
}

fn is_zero_quality(parameter: &str) -> bool {
    let Some((key, value)) = parameter.split_once('=') else {
        return false;
    };
    if !key.trim().eq_ignore_ascii_case("q") {
        return false;
    }
    let value = value.trim();
    match value.split_once('.') {
        Some((whole, fraction)) => whole == "0" && fraction.bytes().all(|c| c == b'0'),
        None => value == "0",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gathers_every_line() {
        // What skopeo sends: one type per line.
        let set = AcceptSet::from_headers([
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "application/vnd.docker.distribution.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.index.v1+json",
        ]);
        for m in MediaType::PULLABLE {
            assert!(set.accepts(m), "{m}");
        }
        assert!(set.accepts(MediaType::DockerSchema1));
        assert_eq!(set.iter().count(), 4);
    }

    #[test]
    fn one_line_with_commas_and_parameters() {
        let set = AcceptSet::from_headers([
            "application/vnd.docker.distribution.manifest.v2+json; q=0.9, application/vnd.oci.image.index.v1+json;q=0",
        ]);
        assert!(set.accepts(MediaType::DockerManifest));
        assert!(!set.accepts(MediaType::OciIndex));
        assert!(!set.accepts(MediaType::OciManifest));
        assert_eq!(set.iter().collect::<Vec<_>>(), [MediaType::DockerManifest]);
    }

    #[test]
    fn unspecified_and_wildcards_accept_all_pullable() {
        for set in [
            AcceptSet::new(),
            AcceptSet::from_headers(["application/json"]),
            AcceptSet::from_headers(["*/*"]),
            AcceptSet::from_headers(["application/*"]),
        ] {
            assert_eq!(set.iter().count(), 4, "{set:?}");
            assert!(!set.accepts(MediaType::DockerSchema1));
        }
        assert!(AcceptSet::new().is_unspecified());
        let excluded =
            AcceptSet::from_headers(["*/*", "application/vnd.oci.image.index.v1+json;q=0.0"]);
        assert!(!excluded.accepts(MediaType::OciIndex));
        assert!(excluded.accepts(MediaType::OciManifest));
    }

    proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec("\\PC{0,80}", 0..6)) {
            let set = AcceptSet::from_headers(lines.iter().map(String::as_str));
            prop_assert!(set.iter().count() <= 4);
        }
    }
}
