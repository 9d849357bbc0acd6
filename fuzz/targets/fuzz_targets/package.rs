//! Package coordinates (npm, PyPI, Maven) and Maven checksum files: no panic, what parses formats back to what it
//! read, and nothing that parses can climb out of a directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_core::package::maven_checksum::ExpectedChecksum;
use pyrsia_core::package::maven_metadata::{only_versions, tags as maven_tags};
use pyrsia_core::package::maven_pom::release_files;
use pyrsia_core::package::npm_registry::{DIST_TAGS_OBSERVED_MAX, Integrity, Packument};
use pyrsia_core::package::simple::{IndexFormat, ProjectIndex};
use pyrsia_core::package::{
    Checksum, DistFile, Gav, MAVEN_TAGS, MavenPath, NpmName, NpmVersion, Pep440, ProjectName,
};
use pyrsia_core::tlog::entry::{
    Coordinates, ECOSYSTEM_DOCKER, ECOSYSTEM_MAVEN, ECOSYSTEM_NPM, ECOSYSTEM_PYPI,
};

fuzz_target!(|data: &[u8]| {
    // Upstream project pages in either format: an error or a page, never a panic; what
    // parses survives this node's own rendering.
    for format in [IndexFormat::Html, IndexFormat::Json] {
        if let Ok(index) = ProjectIndex::parse(format, data, "http://up.example/simple/p/", "p") {
            let stored = ProjectIndex::from_stored(&index.to_stored()).expect("stored page");
            assert_eq!(stored.files.len(), index.files.len());
        }
    }
    // npm packuments: what parses keeps its tarballs when pointed at the node.
    if let Ok(packument) = Packument::parse(data)
        && let Ok(tarballs) = packument.tarballs()
    {
        let moved = packument.with_tarballs_at(|file| format!("http://node/npm/p/-/{file}"));
        // The dist-tags the log may record are bounded and valid in their grammars.
        let tags = packument.dist_tags();
        assert!(tags.len() <= DIST_TAGS_OBSERVED_MAX);
        for (tag, version) in &tags {
            let coordinates = Coordinates {
                ecosystem: ECOSYSTEM_NPM,
                name: "p",
                version: tag,
            };
            assert_eq!(coordinates.check_tag(), Ok(()), "{tag:?}");
            assert_eq!(
                Coordinates {
                    version,
                    ..coordinates
                }
                .check(),
                Ok(()),
                "{version:?}"
            );
        }
        let again = Packument::parse(&moved).expect("the rewritten packument parses");
        let moved_tarballs = again.tarballs().expect("its tarballs too");
        assert_eq!(moved_tarballs.len(), tarballs.len());
        for (before, after) in tarballs.iter().zip(&moved_tarballs) {
            assert_eq!(before.integrity, after.integrity);
        }
    }
    // Poms: the release's files are valid repository paths of its own directory.
    let release = Gav::release("org.example:lib", "1.0").expect("a release");
    if let Ok(files) = release_files(&release, data) {
        for gav in [Some(files.pom), files.main].into_iter().flatten() {
            let path = gav.path().to_string();
            assert!(path.starts_with("org/example/lib/1.0/lib-1.0."), "{path}");
            assert!(
                matches!(
                    MavenPath::parse(&path),
                    Ok(MavenPath::Artifact {
                        checksum: None,
                        signature: false,
                        ..
                    })
                ),
                "{path}"
            );
        }
    }
    // Maven metadata tags are Maven's two, naming release versions.
    if let Ok(tags) = maven_tags(data) {
        for (tag, version) in tags {
            assert!(MAVEN_TAGS.contains(&tag));
            assert!(
                !version.ends_with("-SNAPSHOT") && !version.contains('<'),
                "{version:?}"
            );
        }
    }
    // Maven metadata filtered to no version lists none, whatever the document hid.
    if let Ok(out) = only_versions(data, |_| false) {
        let text = String::from_utf8(out).expect("the filter keeps UTF-8");
        assert!(
            !text.contains("<version>") || !text.contains("<versions>") || {
                let (open, close) = (
                    text.find("<versions>").unwrap(),
                    text.find("</versions>").unwrap(),
                );
                !text[open..close].contains("version>")
            },
            "{text}"
        );
        assert!(
            !text.contains("<latest>") && !text.contains("<release>"),
            "{text}"
        );
    }
    // Checksum files: a digest of the algorithm's length, or an error, never a panic.
    for algorithm in [
        Checksum::Md5,
        Checksum::Sha1,
        Checksum::Sha256,
        Checksum::Sha512,
    ] {
        if let Ok(expected) = ExpectedChecksum::parse(algorithm, data) {
            assert_eq!(expected.algorithm(), algorithm);
            let mut checker = expected.checker();
            checker.update(data);
            let _ = checker.matches();
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        if let Ok(sri) = std::str::from_utf8(&data[..data.len().min(200)]) {
            let _ = Integrity::parse(sri);
        }
        return;
    };
    if let Ok(integrity) = Integrity::parse(text) {
        assert_eq!(Integrity::parse(&integrity.to_string()), Ok(integrity));
    }
    // A valid image name is never a package's index key (`npm:…`, `pypi:…`, `maven:…`).
    let image = Coordinates {
        ecosystem: ECOSYSTEM_DOCKER,
        name: text,
        version: "sha256:00",
    };
    if image.check().is_ok() {
        for (ecosystem, prefix) in [
            (ECOSYSTEM_NPM, "npm:"),
            (ECOSYSTEM_PYPI, "pypi:"),
            (ECOSYSTEM_MAVEN, "maven:"),
        ] {
            let as_package = text.strip_prefix(prefix).map(|name| Coordinates {
                ecosystem,
                name,
                version: "1.0.0",
            });
            assert!(as_package.is_none_or(|c| c.check().is_err()), "{text}");
        }
    }
    if let Ok(version) = Pep440::parse(text) {
        assert_eq!(version.as_str(), text);
    }
    if let Ok(name) = ProjectName::parse(text) {
        let normal = name.normalized().to_string();
        let again = ProjectName::parse(&normal).expect("the normalised name parses");
        assert!(again.is_normalized() && again.same_project(&name));
    }
    if let Ok(file) = DistFile::parse(text) {
        assert!(!text.contains('/') && !file.project().as_str().is_empty());
    }
    if let Ok(name) = NpmName::parse(text) {
        assert_eq!(name.to_string(), text);
        let path = name.path_form().to_string();
        assert_eq!(NpmName::parse_path(&path), Ok(name));
        assert!(!name.bare().starts_with('.'));
    }
    if let Ok(version) = NpmVersion::parse(text) {
        assert_eq!(version.as_str(), text);
    }
    if let Some((name, version)) = text.rsplit_once(' ')
        && let Ok(gav) = Gav::release(name, version)
    {
        assert!(!gav.is_snapshot() && MavenPath::parse(&gav.path().to_string()).is_ok());
    }
    if let Ok(gav) = Gav::parse(text) {
        let path = gav.path().to_string();
        assert!(
            !path
                .split('/')
                .any(|s| s == ".." || s == "." || s.is_empty())
        );
        match MavenPath::parse(&path) {
            Ok(MavenPath::Artifact { gav: parsed, .. }) => {
                assert_eq!(parsed.to_string(), gav.to_string());
            }
            other => panic!("{path} from {text} parsed as {other:?}"),
        }
    }
    if MavenPath::parse(text).is_ok() {
        assert!(
            !text
                .split('/')
                .any(|s| s == ".." || s == "." || s.is_empty())
        );
    }
});
