use super::*;
use alloc::string::ToString;
use proptest::prelude::*;

const DOCKER_V2: &str = include_str!("../../testdata/manifests/docker-v2.json");
const DOCKER_LIST: &str = include_str!("../../testdata/manifests/docker-list.json");
const OCI_MANIFEST: &str = include_str!("../../testdata/manifests/oci-manifest-no-mediatype.json");
const OCI_INDEX: &str = include_str!("../../testdata/manifests/oci-index.json");
const SCHEMA1: &str = include_str!("../../testdata/manifests/schema1.json");

fn digest(c: char) -> Digest {
    Digest::parse(&alloc::format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

#[test]
fn docker_schema2_manifest() {
    let m = Manifest::parse(DOCKER_V2.as_bytes(), None).unwrap();
    assert_eq!(m.media_type(), MediaType::DockerManifest);
    assert!(!m.is_index());
    assert_eq!(m.config().unwrap().digest, digest('a'));
    assert_eq!(m.layers().len(), 1);
    assert_eq!(m.layers()[0].size, 3_408_729);
    let refs: Vec<_> = m.references().map(|d| d.digest).collect();
    assert_eq!(refs, [digest('a'), digest('b')]);
}

#[test]
fn docker_manifest_list_with_platforms() {
    let m = Manifest::parse(DOCKER_LIST.as_bytes(), None).unwrap();
    assert_eq!(m.media_type(), MediaType::DockerManifestList);
    assert!(m.is_index());
    assert_eq!(m.manifests().len(), 3);
    assert_eq!(
        m.manifest_for("linux", "amd64", None).unwrap().digest,
        digest('a')
    );
    assert_eq!(
        m.manifest_for("linux", "arm", Some("v7")).unwrap().digest,
        digest('b')
    );
    assert!(m.manifest_for("linux", "arm", Some("v6")).is_none());
    let windows = m.manifest_for("windows", "amd64", None).unwrap();
    assert_eq!(
        windows.platform.as_ref().unwrap().os_version.as_deref(),
        Some("10.0.17763.5329")
    );
    assert!(m.config().is_none());
}

#[test]
fn oci_manifest_kind_from_header_or_shape() {
    let m = Manifest::parse(OCI_MANIFEST.as_bytes(), None).unwrap();
    assert_eq!(m.media_type(), MediaType::OciManifest);
    assert_eq!(m.references().count(), 3);
    let m = Manifest::parse(
        OCI_MANIFEST.as_bytes(),
        Some("application/vnd.oci.image.manifest.v1+json"),
    )
    .unwrap();
    assert_eq!(m.media_type(), MediaType::OciManifest);
}

#[test]
fn oci_index() {
    let m = Manifest::parse(OCI_INDEX.as_bytes(), Some(MediaType::OciIndex.as_str())).unwrap();
    assert_eq!(m.media_type(), MediaType::OciIndex);
    assert_eq!(
        m.manifest_for("linux", "arm64", Some("v8")).unwrap().size,
        1000
    );
    assert_eq!(m.references().count(), 2);
}

/// A malformed body, the Content-Type it comes with, and the check its error must pass.
type Case = (String, Option<&'static str>, fn(&ManifestError) -> bool);

#[test]
fn malformed_manifests_are_typed_errors() {
    let cases: Vec<Case> = vec![
        (String::new(), None, |e| {
            matches!(e, ManifestError::InvalidJson { .. })
        }),
        ("{".into(), None, |e| {
            matches!(e, ManifestError::InvalidJson { .. })
        }),
        (DOCKER_V2[..DOCKER_V2.len() / 2].into(), None, |e| {
            matches!(e, ManifestError::InvalidJson { .. })
        }),
        ("[]".into(), None, |e| {
            matches!(e, ManifestError::InvalidJson { .. })
        }),
        ("\"manifest\"".into(), None, |e| {
            matches!(e, ManifestError::InvalidJson { .. })
        }),
        (DOCKER_V2.replace("3408729", "-1"), None, |e| {
            matches!(e, ManifestError::InvalidJson { .. })
        }),
        (
            DOCKER_V2.replace("\"size\": 1472", "\"size\": \"big\""),
            None,
            |e| matches!(e, ManifestError::InvalidJson { .. }),
        ),
        (DOCKER_V2.replace("sha256:aaaa", "sha256:AAAA"), None, |e| {
            matches!(e, ManifestError::InvalidDigest(_))
        }),
        (DOCKER_V2.replace("sha256:bbbb", "md5:bbbb"), None, |e| {
            matches!(e, ManifestError::InvalidDigest(_))
        }),
        (
            DOCKER_V2.replace("\"schemaVersion\": 2", "\"schemaVersion\": 3"),
            None,
            |e| *e == ManifestError::UnsupportedSchemaVersion,
        ),
        (DOCKER_V2.replace("\"schemaVersion\": 2,", ""), None, |e| {
            *e == ManifestError::UnsupportedSchemaVersion
        }),
        (
            DOCKER_V2.replace("manifest.v2+json", "manifest.v9+json"),
            None,
            |e| *e == ManifestError::UnknownMediaType,
        ),
        (
            DOCKER_V2.into(),
            Some(MediaType::OciManifest.as_str()),
            |e| *e == ManifestError::MediaTypeMismatch,
        ),
        (SCHEMA1.into(), None, |e| *e == ManifestError::Schema1),
        (
            SCHEMA1.into(),
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            |e| *e == ManifestError::Schema1,
        ),
        (DOCKER_V2.replace("\"config\"", "\"konfig\""), None, |e| {
            *e == ManifestError::MissingField("config")
        }),
        (DOCKER_V2.replace("\"layers\"", "\"lagers\""), None, |e| {
            *e == ManifestError::MissingField("layers")
        }),
        (
            DOCKER_LIST.replace("\"manifests\"", "\"manifestz\""),
            None,
            |e| *e == ManifestError::MissingField("manifests"),
        ),
        (
            DOCKER_V2.replace("\"layers\"", "\"manifests\": [], \"layers\""),
            None,
            |e| *e == ManifestError::Ambiguous,
        ),
        ("{\"schemaVersion\":2}".into(), None, |e| {
            *e == ManifestError::UnknownMediaType
        }),
    ];
    for (i, (body, content_type, check)) in cases.iter().enumerate() {
        let err = Manifest::parse(body.as_bytes(), *content_type).expect_err(body);
        assert!(check(&err), "case {i}: unexpected {err:?}");
        assert!(!err.to_string().is_empty());
    }
    let huge = alloc::vec![b' '; MANIFEST_LEN_MAX + 1];
    assert_eq!(
        Manifest::parse(&huge, None),
        Err(ManifestError::TooLarge {
            len: MANIFEST_LEN_MAX + 1
        })
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Manifest::parse(&bytes, None);
    }

    #[test]
    fn mutated_manifests_never_panic(at in 0usize..600, byte in any::<u8>(), which in 0usize..4) {
        let source = [DOCKER_V2, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX][which];
        let mut bytes = source.as_bytes().to_vec();
        let at = at % bytes.len();
        bytes[at] = byte;
        if let Ok(m) = Manifest::parse(&bytes, None) {
            prop_assert!(m.references().count() >= 1);
        }
    }
}
