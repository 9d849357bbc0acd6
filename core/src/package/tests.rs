use proptest::prelude::*;

use super::*;

#[test]
fn pep440_accepts_the_specifications_spellings() {
    for good in [
        "1",
        "1.0",
        "v1.0",
        "2012.10",
        "1!2.0",
        "1.0a1",
        "1.0.alpha.1",
        "1.0-beta-2",
        "1.0b",
        "1.0rc1",
        "1.0c1",
        "1.0pre1",
        "1.0preview1",
        "1.0.post1",
        "1.0-1",
        "1.0post",
        "1.0-r4",
        "1.0rev2",
        "1.0.dev0",
        "1.0dev",
        "1.0a1.post2.dev3",
        "1.0+ubuntu.1",
        "1.0+abc-1_2",
        "1.0RC1",
        "1!1.2.3rc4.post5.dev6+local.7",
    ] {
        assert!(Pep440::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "a",
        "1.",
        ".1",
        "1..0",
        "1.0-",
        "1.0a1b1",
        "1.0+",
        "1.0+a..b",
        "1.0 ",
        "1,0",
        "1.0+ü",
        "!1.0",
        "1.0.post1.post2",
        "1.0dev1dev2",
    ] {
        assert!(Pep440::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        Pep440::parse("1.0x"),
        Err(Pep440Error::Invalid { position: 3 })
    );
    assert!(Pep440::parse("1.0+local").unwrap().is_local());
}

#[test]
fn project_names_normalise_per_pep_503() {
    let cases = [
        ("Django", "django"),
        ("zope.interface", "zope-interface"),
        ("typing_extensions", "typing-extensions"),
        ("Foo__Bar-._baz", "foo-bar-baz"),
        ("a", "a"),
        ("A1", "a1"),
    ];
    for (name, normal) in cases {
        let parsed = ProjectName::parse(name).unwrap();
        assert_eq!(parsed.normalized().to_string(), normal);
        assert_eq!(parsed.is_normalized(), name == normal, "{name}");
        assert!(parsed.same_project(&ProjectName::parse(normal).unwrap()));
    }
    assert!(
        !ProjectName::parse("foo")
            .unwrap()
            .same_project(&ProjectName::parse("foo2").unwrap())
    );
    for (bad, error) in [
        ("", ProjectNameError::Empty),
        ("-foo", ProjectNameError::EdgeSeparator),
        ("foo.", ProjectNameError::EdgeSeparator),
        (
            "foo/bar",
            ProjectNameError::InvalidCharacter { position: 3 },
        ),
        ("..", ProjectNameError::EdgeSeparator),
        (
            "foo bar",
            ProjectNameError::InvalidCharacter { position: 3 },
        ),
        ("naïve", ProjectNameError::InvalidCharacter { position: 2 }),
    ] {
        assert_eq!(ProjectName::parse(bad), Err(error), "{bad:?}");
    }
}

#[test]
fn wheel_and_sdist_file_names_parse() {
    let wheel = DistFile::parse("typing_extensions-4.12.2-py3-none-any.whl").unwrap();
    assert_eq!(
        wheel,
        DistFile::Wheel {
            project: ProjectName::parse("typing_extensions").unwrap(),
            version: Pep440::parse("4.12.2").unwrap(),
            build: None,
            python: "py3",
            abi: "none",
            platform: "any",
        }
    );
    let built = DistFile::parse("numpy-2.0.0-1-cp312-cp312-manylinux_2_17_x86_64.whl").unwrap();
    assert!(matches!(
        built,
        DistFile::Wheel {
            build: Some("1"),
            ..
        }
    ));
    let sdist = DistFile::parse("python-dateutil-2.8.2.tar.gz").unwrap();
    assert_eq!(sdist.project().as_str(), "python-dateutil");
    assert_eq!(sdist.version().as_str(), "2.8.2");
    assert!(matches!(
        DistFile::parse("pkg-1.0.zip").unwrap(),
        DistFile::Sdist {
            format: SdistFormat::Zip,
            ..
        }
    ));
    let project = ProjectName::parse("Typing-Extensions").unwrap();
    assert!(DistFile::parse_for(&project, "typing_extensions-4.12.2-py3-none-any.whl").is_ok());
    assert_eq!(
        DistFile::parse_for(&project, "other-1.0.tar.gz"),
        Err(DistFileError::OtherProject)
    );
    for (bad, error) in [
        ("pkg-1.0.egg", DistFileError::UnknownExtension),
        ("pkg-1.0-py3-none.whl", DistFileError::WheelParts),
        ("pkg-1.0-x-py3-none-any.whl", DistFileError::WheelParts),
        (
            "pkg-1.0-1-py3-none-any-extra.whl",
            DistFileError::WheelParts,
        ),
        ("pkg-1.0-py/3-none-any.whl", DistFileError::WheelParts),
        ("pkg.tar.gz", DistFileError::SdistParts),
        ("../x-1.0.tar.gz", DistFileError::SdistParts),
    ] {
        assert_eq!(DistFile::parse(bad), Err(error), "{bad}");
    }
    assert!(matches!(
        DistFile::parse("pkg-one-py3-none-any.whl"),
        Err(DistFileError::Version(_))
    ));
}

#[test]
fn npm_names_scopes_and_path_forms() {
    let plain = NpmName::parse("left-pad").unwrap();
    assert_eq!((plain.scope(), plain.bare()), (None, "left-pad"));
    assert_eq!(plain.path_form().to_string(), "left-pad");
    let scoped = NpmName::parse("@types/node").unwrap();
    assert_eq!((scoped.scope(), scoped.bare()), (Some("types"), "node"));
    assert_eq!(scoped.to_string(), "@types/node");
    assert_eq!(scoped.path_form().to_string(), "@types%2fnode");
    assert_eq!(NpmName::parse_path("@types%2fnode"), Ok(scoped));
    assert_eq!(NpmName::parse_path("@types%2Fnode"), Ok(scoped));
    assert_eq!(NpmName::parse_path("@types/node"), Ok(scoped));
    assert!(NpmName::parse("JSONStream").is_ok(), "legacy uppercase");
    for (bad, error) in [
        ("", NpmNameError::Empty),
        ("@types", NpmNameError::Empty),
        ("@/node", NpmNameError::Empty),
        ("@types/", NpmNameError::Empty),
        (".hidden", NpmNameError::LeadingDotOrUnderscore),
        ("_under", NpmNameError::LeadingDotOrUnderscore),
        ("@scope/.x", NpmNameError::LeadingDotOrUnderscore),
        ("..", NpmNameError::LeadingDotOrUnderscore),
        ("a/b", NpmNameError::InvalidCharacter { position: 1 }),
        ("@a/b/c", NpmNameError::InvalidCharacter { position: 4 }),
        ("a b", NpmNameError::InvalidCharacter { position: 1 }),
        ("a%2fb", NpmNameError::InvalidCharacter { position: 1 }),
        ("node_modules", NpmNameError::Reserved),
    ] {
        assert_eq!(NpmName::parse(bad), Err(error), "{bad:?}");
    }
    let long = "a".repeat(NPM_NAME_LEN_MAX + 1);
    assert_eq!(
        NpmName::parse(&long),
        Err(NpmNameError::TooLong { len: long.len() })
    );
}

#[test]
fn npm_versions_and_tarball_names() {
    for good in [
        "0.0.0",
        "1.2.3",
        "10.20.30",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-0.3.7",
        "1.0.0-x-y-z.--",
        "1.0.0+20130313144700",
        "1.0.0-beta+exp.sha.5114f85",
    ] {
        assert!(NpmVersion::parse(good).is_ok(), "{good}");
    }
    for (bad, error) in [
        ("", NpmVersionError::Length),
        ("1.2", NpmVersionError::Core),
        ("1.2.3.4", NpmVersionError::Core),
        ("01.2.3", NpmVersionError::Core),
        ("v1.2.3", NpmVersionError::Core),
        ("1.2.3-", NpmVersionError::PreRelease),
        ("1.2.3-01", NpmVersionError::PreRelease),
        ("1.2.3-a..b", NpmVersionError::PreRelease),
        ("1.2.3+", NpmVersionError::Build),
        ("1.2.3+a_b", NpmVersionError::Build),
    ] {
        assert_eq!(NpmVersion::parse(bad), Err(error), "{bad:?}");
    }
    let scoped = NpmName::parse("@scope/pkg").unwrap();
    assert_eq!(
        scoped.tarball_version("pkg-1.0.0-rc.1.tgz"),
        Some(NpmVersion::parse("1.0.0-rc.1").unwrap())
    );
    assert_eq!(scoped.tarball_version("other-1.0.0.tgz"), None);
    assert_eq!(scoped.tarball_version("pkg-1.0.tgz"), None);
}

#[test]
fn maven_coordinates_and_their_paths() {
    let jar = Gav::parse("org.apache.commons:commons-lang3:3.12.0").unwrap();
    assert_eq!(jar.extension, "jar");
    assert_eq!(
        jar.path().to_string(),
        "org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0.jar"
    );
    assert_eq!(jar.to_string(), "org.apache.commons:commons-lang3:3.12.0");
    let sources = Gav::parse("org.example:lib:1.0:sources:jar").unwrap();
    assert_eq!(sources.classifier, Some("sources"));
    assert_eq!(sources.to_string(), "org.example:lib:1.0:sources:jar");
    assert_eq!(
        Gav::parse("org.example:lib:1.0:pom").unwrap().to_string(),
        "org.example:lib:1.0:pom"
    );
    assert_eq!(Gav::parse("org.example:lib"), Err(GavError::Parts));
    let long = format!("org.example:lib:{}", "1".repeat(MAVEN_PATH_LEN_MAX / 2));
    assert_eq!(Gav::parse(&long), Err(GavError::TooLong));
    assert_eq!(jar.path().to_string().len(), jar.path_len());
    assert_eq!(Gav::parse("a:b:c:d:e:f"), Err(GavError::Parts));
    assert_eq!(
        Gav::parse("org..example:lib:1.0"),
        Err(GavError::Segment(MavenSegment::Group))
    );
    for derived in ["jar.asc", "pom.sha1", "asc", "md5"] {
        assert_eq!(
            Gav::parse(&format!("org.example:lib:1.0:{derived}")),
            Err(GavError::Segment(MavenSegment::Extension)),
            "{derived} names a signature or checksum, not an artifact"
        );
    }
    assert_eq!(
        Gav::parse("org.example:../x:1.0"),
        Err(GavError::Segment(MavenSegment::Artifact))
    );

    let path = "org/example/lib/1.0/lib-1.0-sources.jar";
    let MavenPath::Artifact {
        gav,
        snapshot,
        checksum,
        signature,
    } = MavenPath::parse(path).unwrap()
    else {
        panic!("an artifact");
    };
    assert_eq!(gav.path().to_string(), path);
    assert_eq!((snapshot, checksum, signature), (None, None, false));
    assert!(gav.group.same_as(&sources.group));
    assert_eq!(gav.to_string(), "org.example:lib:1.0:sources:jar");

    let signed = MavenPath::parse("org/example/lib/1.0/lib-1.0.pom.asc.sha1").unwrap();
    assert!(matches!(
        signed,
        MavenPath::Artifact {
            checksum: Some(Checksum::Sha1),
            signature: true,
            gav: Gav {
                extension: "pom",
                classifier: None,
                ..
            },
            ..
        }
    ));
    let tarball = MavenPath::parse("org/example/dist/2.0/dist-2.0-linux-x86_64.tar.gz").unwrap();
    assert!(matches!(
        tarball,
        MavenPath::Artifact {
            gav: Gav {
                classifier: Some("linux-x86_64"),
                extension: "tar.gz",
                ..
            },
            ..
        }
    ));
    let snapshot =
        MavenPath::parse("org/example/lib/1.1-SNAPSHOT/lib-1.1-20240102.030405-7-tests.jar")
            .unwrap();
    assert!(matches!(
        snapshot,
        MavenPath::Artifact {
            snapshot: Some("1.1-20240102.030405-7"),
            gav: Gav {
                version: "1.1-SNAPSHOT",
                classifier: Some("tests"),
                ..
            },
            ..
        }
    ));
    assert_eq!(
        MavenPath::parse("org/example/lib/maven-metadata.xml.sha256"),
        Ok(MavenPath::Metadata {
            directory: "org/example/lib",
            checksum: Some(Checksum::Sha256),
        })
    );
    for (bad, error) in [
        ("", MavenPathError::Length),
        ("/org/x/1/x-1.jar", MavenPathError::Length),
        ("org/../x/1/x-1.jar", MavenPathError::Segment),
        ("org//x/1/x-1.jar", MavenPathError::Segment),
        ("org/x/1/x%2f-1.jar", MavenPathError::Segment),
        ("x/1/x-1.jar", MavenPathError::TooShort),
        ("org/x/1/y-1.jar", MavenPathError::FileName),
        ("org/x/1/x-2.jar", MavenPathError::FileName),
        ("org/x/1/x-1", MavenPathError::FileName),
        ("org/x/1-SNAPSHOT/x-1-2024.jar", MavenPathError::FileName),
    ] {
        assert_eq!(MavenPath::parse(bad), Err(error), "{bad}");
    }
}

fn npm_part() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._~-]{0,20}"
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
        let _ = Pep440::parse(&text);
        let _ = ProjectName::parse(&text);
        let _ = DistFile::parse(&text);
        let _ = NpmName::parse(&text);
        let _ = NpmName::parse_path(&text);
        let _ = NpmVersion::parse(&text);
        let _ = Gav::parse(&text);
        let _ = MavenPath::parse(&text);
    }

    #[test]
    fn generated_versions_parse(
        epoch in proptest::option::of(0u32..5),
        release in proptest::collection::vec(0u32..1000, 1..5),
        pre in proptest::option::of((prop::sample::select(vec!["a", "b", "rc", "alpha", "c"]), 0u32..20)),
        post in proptest::option::of(0u32..20),
        dev in proptest::option::of(0u32..20),
        local in proptest::option::of("[a-z0-9]{1,5}(\\.[a-z0-9]{1,5}){0,2}"),
    ) {
        let mut text = String::new();
        if let Some(epoch) = epoch {
            text += &format!("{epoch}!");
        }
        let release: Vec<String> = release.iter().map(u32::to_string).collect();
        text += &release.join(".");
        if let Some((label, n)) = pre {
            text += &format!("{label}{n}");
        }
        if let Some(n) = post {
            text += &format!(".post{n}");
        }
        if let Some(n) = dev {
            text += &format!(".dev{n}");
        }
        if let Some(local) = local {
            text += &format!("+{local}");
        }
        prop_assert!(Pep440::parse(&text).is_ok(), "{}", text);
    }

    #[test]
    fn normalising_is_idempotent(name in "[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?") {
        let parsed = ProjectName::parse(&name).unwrap();
        let normal = parsed.normalized().to_string();
        let again = ProjectName::parse(&normal).unwrap();
        prop_assert!(again.is_normalized());
        prop_assert_eq!(again.normalized().to_string(), normal.clone());
        prop_assert!(parsed.same_project(&again));
    }

    #[test]
    fn npm_names_round_trip_through_the_path_form(
        scope in proptest::option::of(npm_part()),
        bare in npm_part(),
    ) {
        let text = match &scope {
            Some(scope) => format!("@{scope}/{bare}"),
            None => bare.clone(),
        };
        let name = NpmName::parse(&text).unwrap();
        prop_assert_eq!(name.to_string(), text.clone());
        let path = name.path_form().to_string();
        prop_assert_eq!(NpmName::parse_path(&path).unwrap(), name);
    }

    #[test]
    fn maven_coordinates_round_trip_through_paths(
        group in proptest::collection::vec("[a-z][a-z0-9]{0,8}", 1..4),
        artifact in "[a-z][a-z0-9-]{0,12}[a-z0-9]",
        version in "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(-SNAPSHOT)?",
        classifier in proptest::option::of("[a-z][a-z0-9_]{0,8}"),
        extension in prop::sample::select(vec!["jar", "pom", "tar.gz", "war"]),
    ) {
        let group = group.join(".");
        let text = match classifier {
            Some(c) => format!("{group}:{artifact}:{version}:{c}:{extension}"),
            None => format!("{group}:{artifact}:{version}:{extension}"),
        };
        let gav = Gav::parse(&text).unwrap();
        let path = gav.path().to_string();
        prop_assert_eq!(path.len(), gav.path_len());
        let MavenPath::Artifact { gav: parsed, snapshot: None, checksum: None, signature: false } =
            MavenPath::parse(&path).unwrap()
        else {
            panic!("{path} is an artifact");
        };
        prop_assert_eq!(parsed.to_string(), gav.to_string());
    }
}

#[test]
fn dist_tags_are_names_that_never_read_as_versions_or_ranges() {
    for good in [
        "latest",
        "next",
        "beta",
        "v-next",
        "release-1.x",
        "canary~2",
        "Latest_1",
    ] {
        assert!(is_dist_tag(good), "{good}");
    }
    let too_long = "a".repeat(NPM_DIST_TAG_LEN_MAX + 1);
    for bad in [
        "",
        "1.0.0",
        "1.x",
        "v1",
        "v2.3",
        "=1.0.0",
        ">=1",
        "^1",
        "~1",
        "*",
        "latest tag",
        "a/b",
        "a%2fb",
        "tag@1",
        "_private",
        ".hidden",
        too_long.as_str(),
    ] {
        assert!(!is_dist_tag(bad), "{bad:?}");
    }
}

proptest! {
    /// Nothing npm accepts as a version is a dist-tag, so the log's tag and version spaces
    /// never overlap.
    #[test]
    fn no_version_is_a_dist_tag(text in "[v=]?[0-9]{1,3}(\\.[0-9x*]{1,3}){0,2}(-[a-z0-9.]{1,8})?") {
        prop_assert!(!is_dist_tag(&text));
    }
}
