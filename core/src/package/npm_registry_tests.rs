use base64ct::{Base64, Encoding};
use sha2::{Digest as _, Sha256, Sha512};

use super::npm_registry::*;

fn b64(bytes: &[u8]) -> String {
    let mut buf = [0u8; 128];
    Base64::encode(bytes, &mut buf).unwrap().to_string()
}

fn sri512(bytes: &[u8]) -> String {
    format!("sha512-{}", b64(&Sha512::digest(bytes)))
}

fn packument(integrity: &str) -> String {
    format!(
        r#"{{"name":"@scope/pkg","dist-tags":{{"latest":"1.1.0"}},"versions":{{
            "1.0.0":{{"name":"@scope/pkg","version":"1.0.0","dist":{{"tarball":"http://up.example/@scope/pkg/-/pkg-1.0.0.tgz","shasum":"abc","integrity":"{integrity}"}}}},
            "1.1.0":{{"name":"@scope/pkg","version":"1.1.0","dist":{{"tarball":"http://up.example/@scope%2fpkg/-/pkg-1.1.0.tgz?x=1","integrity":"sha1-AAAA"}}}}
        }},"time":{{"1.0.0":"2020-01-01T00:00:00Z"}}}}"#
    )
}

#[test]
fn the_form_follows_accept() {
    assert_eq!(PackumentFormat::negotiate(None), PackumentFormat::Full);
    assert_eq!(
        PackumentFormat::negotiate(Some("application/json")),
        PackumentFormat::Full
    );
    // npm's own header.
    assert_eq!(
        PackumentFormat::negotiate(Some(
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
        )),
        PackumentFormat::Abbreviated
    );
    assert_eq!(
        PackumentFormat::negotiate(Some("application/vnd.npm.install-v1+json;q=0")),
        PackumentFormat::Full
    );
}

#[test]
fn tarballs_are_found_and_pointed_at_the_node_with_integrity_untouched() {
    let sri = sri512(b"tarball bytes");
    let doc = Packument::parse(packument(&sri).as_bytes()).unwrap();
    let tarballs = doc.tarballs().unwrap();
    assert_eq!(tarballs.len(), 2);
    let first = doc.tarball("pkg-1.0.0.tgz").unwrap();
    assert_eq!(first.version, "1.0.0");
    assert_eq!(first.url, "http://up.example/@scope/pkg/-/pkg-1.0.0.tgz");
    assert_eq!(first.integrity, Some(Integrity::parse(&sri).unwrap()));
    let second = doc.tarball("pkg-1.1.0.tgz").unwrap();
    assert_eq!(second.integrity, None, "sha1 alone is not trusted");

    let rewritten = doc.with_tarballs_at(|file| format!("http://node/npm/@scope%2fpkg/-/{file}"));
    let value: serde_json::Value = serde_json::from_slice(&rewritten).unwrap();
    let dist = &value["versions"]["1.0.0"]["dist"];
    assert_eq!(
        dist["tarball"],
        "http://node/npm/@scope%2fpkg/-/pkg-1.0.0.tgz"
    );
    assert_eq!(dist["integrity"], sri.as_str());
    assert_eq!(dist["shasum"], "abc");
    assert_eq!(
        value["versions"]["1.1.0"]["dist"]["tarball"],
        "http://node/npm/@scope%2fpkg/-/pkg-1.1.0.tgz"
    );
    assert_eq!(value["time"]["1.0.0"], "2020-01-01T00:00:00Z");
    assert_eq!(value["dist-tags"]["latest"], "1.1.0");
}

#[test]
fn bad_packuments_are_refused() {
    for bad in [&b"nope"[..], br#"{"name":"x"}"#, br#"{"versions":[]}"#] {
        assert!(matches!(
            Packument::parse(bad),
            Err(PackumentError::NotAPackument(_))
        ));
    }
    let doc =
        Packument::parse(br#"{"versions":{"1.0.0":{"dist":{"tarball":"http://x/"}}}}"#).unwrap();
    assert_eq!(doc.tarballs(), Err(PackumentError::Tarball("1.0.0".into())));
}

#[test]
fn integrity_strings_check_streamed_bytes() {
    let bytes = b"the tarball";
    let sri = sri512(bytes);
    let integrity = Integrity::parse(&sri).unwrap();
    assert_eq!(integrity.to_string(), sri);
    let mut checker = integrity.checker();
    checker.update(&bytes[..4]);
    checker.update(&bytes[4..]);
    assert!(checker.matches());
    let mut tampered = integrity.checker();
    tampered.update(b"the tarbalL");
    assert!(!tampered.matches());

    // The strongest of several wins; unknown algorithms and options are ignored.
    let sha256 = format!("sha256-{}", b64(&Sha256::digest(bytes)));
    let both = format!("sha1-AAAA {sha256} {sri}?opt");
    assert_eq!(Integrity::parse(&both), Ok(integrity));
    let weaker = Integrity::parse(&sha256).unwrap();
    let mut checker = weaker.checker();
    checker.update(bytes);
    assert!(checker.matches());
    for bad in ["", "sha1-AAAA", "sha512-short", "md5-xyz", "sha512"] {
        assert_eq!(Integrity::parse(bad), Err(IntegrityError), "{bad}");
    }
}

#[test]
fn a_version_tarball_is_found_and_verified_only_listings_drop_versions_and_their_tags() {
    let document = Packument::parse(packument(&sri512(b"x")).as_bytes()).unwrap();
    let tarball = document.version_tarball("1.0.0").unwrap();
    assert_eq!(tarball.file(), Some("pkg-1.0.0.tgz"));
    assert!(document.version_tarball("9.9.9").is_none());
    let only = document.only_versions(|t| t.version == "1.0.0");
    let json: serde_json::Value =
        serde_json::from_slice(&only.with_tarballs_at(|f| f.into())).unwrap();
    assert!(json["versions"]["1.0.0"].is_object());
    assert!(json["versions"].get("1.1.0").is_none());
    // `latest` named the dropped version: it goes too, rather than point at nothing.
    assert!(json["dist-tags"].get("latest").is_none());
    assert_eq!(json["name"], "@scope/pkg");
}

#[test]
fn dist_tags_the_log_may_record_are_bounded_and_latest_comes_first() {
    let mut tags: Vec<String> = (0..20).map(|i| format!("\"t{i}\": \"1.0.{i}\"")).collect();
    tags.push("\"latest\": \"2.0.0\"".into());
    tags.push("\"1.x\": \"1.0.0\"".into());
    tags.push("\"bad\": \"not-semver\"".into());
    tags.push("\"odd\": 7".into());
    let document = format!(
        "{{\"name\":\"p\",\"dist-tags\":{{{}}},\"versions\":{{}}}}",
        tags.join(",")
    );
    let packument = Packument::parse(document.as_bytes()).unwrap();
    let found = packument.dist_tags();
    assert_eq!(found.len(), DIST_TAGS_OBSERVED_MAX);
    assert_eq!(found[0], ("latest".to_string(), "2.0.0".to_string()));
    assert!(
        found
            .iter()
            .all(|(t, _)| t != "1.x" && t != "bad" && t != "odd")
    );
    assert_eq!(packument.dist_tag("latest"), Some("2.0.0"));
    assert_eq!(packument.dist_tag("none"), None);
}

#[test]
fn dist_tags_can_be_replaced_by_the_logs_naming_listed_versions_only() {
    let document = "{\"name\":\"p\",\"dist-tags\":{\"latest\":\"2.0.0\"},\"versions\":{\"1.0.0\":{},\"2.0.0\":{}}}";
    let packument = Packument::parse(document.as_bytes()).unwrap();
    let tags = vec![
        ("latest".to_string(), "1.0.0".to_string()),
        ("next".to_string(), "3.0.0".to_string()),
    ];
    let set = packument.with_dist_tags(&tags);
    assert_eq!(set.dist_tag("latest"), Some("1.0.0"));
    assert_eq!(set.dist_tag("next"), None);
}

#[test]
fn a_packument_from_the_log_lists_committed_manifests_as_their_package_json_says() {
    let tarball = b"the tarball's bytes";
    let mut digests = TarballDigests::new();
    digests.update(&tarball[..4]);
    digests.update(&tarball[4..]);
    let digests = digests.finish();
    assert_eq!(digests.0, sri512(tarball));
    assert_eq!(digests.1.len(), 40);
    let package_json = br#"{"name":"@demo/app","version":"1.0.0","dependencies":{"@demo/lib":"^1.0.0"},"scripts":{"x":"y"}}"#;
    let manifest = version_manifest(
        package_json,
        "@demo/app",
        "1.0.0",
        "app-1.0.0.tgz",
        &digests,
    )
    .unwrap();
    assert_eq!(manifest["dependencies"]["@demo/lib"], "^1.0.0");
    assert!(manifest.get("scripts").is_none());
    let packument = Packument::from_manifests(
        "@demo/app",
        vec![("1.0.0".into(), manifest)],
        &[
            ("latest".into(), "1.0.0".into()),
            ("next".into(), "2.0.0".into()),
        ],
    );
    let tarball_ref = packument.version_tarball("1.0.0").unwrap();
    assert_eq!(tarball_ref.file(), Some("app-1.0.0.tgz"));
    assert_eq!(
        tarball_ref.integrity,
        Integrity::parse(&sri512(tarball)).ok()
    );
    assert_eq!(packument.dist_tag("latest"), Some("1.0.0"));
    assert_eq!(packument.dist_tag("next"), None);
    // A package.json of another package or version, or not JSON, makes no manifest.
    for (bytes, error) in [
        (
            &br#"{"name":"other","version":"1.0.0"}"#[..],
            ManifestError::OtherPackage,
        ),
        (
            &br#"{"name":"@demo/app","version":"1.0.1"}"#[..],
            ManifestError::OtherPackage,
        ),
        (&b"[1]"[..], ManifestError::NotJson),
        (&b"{"[..], ManifestError::NotJson),
    ] {
        assert_eq!(
            version_manifest(bytes, "@demo/app", "1.0.0", "app-1.0.0.tgz", &digests),
            Err(error)
        );
    }
}
