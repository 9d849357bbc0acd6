//! Maven coordinates (`group:artifact:version[:classifier]:extension`, or `group:artifact:version`
//! for a jar) and the repository layout's paths
//! (`org/example/lib/1.0/lib-1.0-sources.jar`, checksums, signatures, `maven-metadata.xml`).

use core::fmt;

/// The tags a `maven-metadata.xml` sets, as the log records them: `<release>` (the newest
/// release deployed) and `<latest>` (the newest version, which may be a snapshot).
pub const MAVEN_TAGS: [&str; 2] = ["release", "latest"];

/// The longest repository path accepted, in bytes.
pub const MAVEN_PATH_LEN_MAX: usize = 1024;

/// A group id, borrowed either in coordinate form (`org.example`) or path form (`org/example`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Group<'a> {
    text: &'a str,
    separator: u8,
}

impl<'a> Group<'a> {
    /// The group's segments (`org`, `example`).
    pub fn segments(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.text.split(char::from(self.separator))
    }

    /// The group's directory in the repository (`org/example`); display it.
    pub fn path(&self) -> impl fmt::Display + 'a {
        Joined(*self, '/')
    }

    /// Whether two groups are the same whatever form they were written in.
    pub fn same_as(&self, other: &Group<'_>) -> bool {
        self.segments().eq(other.segments())
    }
}

impl fmt::Display for Group<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Joined(*self, '.').fmt(f)
    }
}

struct Joined<'a>(Group<'a>, char);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.segments().enumerate() {
            if i > 0 {
                fmt::Write::write_char(f, self.1)?;
            }
            f.write_str(segment)?;
        }
        Ok(())
    }
}

/// A validated artifact coordinate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Gav<'a> {
    /// The group id.
    pub group: Group<'a>,
    /// The artifact id.
    pub artifact: &'a str,
    /// The version (`1.0`, `2.0-SNAPSHOT`).
    pub version: &'a str,
    /// The classifier (`sources`, `javadoc`, `linux-x86_64`), if any.
    pub classifier: Option<&'a str>,
    /// The file extension (`jar`, `pom`, `tar.gz`).
    pub extension: &'a str,
}

/// Why a coordinate was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum GavError {
    /// Not three to five `:`-separated parts.
    Parts,
    /// The artifact's repository path would be longer than [`MAVEN_PATH_LEN_MAX`].
    TooLong,
    /// A part that is empty, `.`/`..`, or holds a character outside `[A-Za-z0-9_.+~-]`.
    Segment(MavenSegment),
}

/// Which part of a coordinate or path was invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MavenSegment {
    /// The group id.
    Group,
    /// The artifact id.
    Artifact,
    /// The version.
    Version,
    /// The classifier.
    Classifier,
    /// The extension.
    Extension,
}

impl fmt::Display for GavError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GavError::Parts => f.write_str(
                "not a Maven coordinate (group:artifact:version[:classifier]:extension)",
            ),
            GavError::TooLong => write!(
                f,
                "the Maven coordinate's path is longer than {MAVEN_PATH_LEN_MAX} bytes"
            ),
            GavError::Segment(part) => write!(f, "invalid {part:?} in the Maven coordinate"),
        }
    }
}

impl core::error::Error for GavError {}

impl<'a> Gav<'a> {
    /// Parses `group:artifact:version`, `group:artifact:version:extension` or
    /// `group:artifact:version:classifier:extension`.
    pub fn parse(text: &'a str) -> Result<Self, GavError> {
        let mut parts = text.split(':');
        let mut next = || parts.next();
        let (Some(group), Some(artifact), Some(version)) = (next(), next(), next()) else {
            return Err(GavError::Parts);
        };
        let (classifier, extension) = match (next(), next(), next()) {
            (None, _, _) => (None, "jar"),
            (Some(extension), None, _) => (None, extension),
            (Some(classifier), Some(extension), None) => (Some(classifier), extension),
            _ => return Err(GavError::Parts),
        };
        let gav = Gav {
            group: Group {
                text: group,
                separator: b'.',
            },
            artifact,
            version,
            classifier,
            extension,
        };
        gav.checked()
    }

    /// The length of [`Gav::path`] in bytes.
    pub(super) fn path_len(&self) -> usize {
        let (artifact, version) = (self.artifact.len(), self.version.len());
        self.group.text.len()
            + 2 * (artifact + version)
            + 4
            + self.classifier.map_or(0, |c| c.len() + 1)
            + 1
            + self.extension.len()
    }

    fn check(&self) -> Result<(), MavenSegment> {
        let ok = |s: &str| is_segment(s);
        if !self.group.segments().all(ok) {
            return Err(MavenSegment::Group);
        }
        if !ok(self.artifact) {
            return Err(MavenSegment::Artifact);
        }
        if !ok(self.version) {
            return Err(MavenSegment::Version);
        }
        if !self.classifier.is_none_or(|c| ok(c) && !c.contains('.')) {
            return Err(MavenSegment::Classifier);
        }
        // `.asc` and checksum suffixes name files derived from an artifact, never one.
        let derived = self.extension.rsplit('.').next().is_some_and(|last| {
            last == "asc" || Checksum::ALL.iter().any(|(_, suffix)| &suffix[1..] == last)
        });
        if !(ok(self.extension) && self.extension.split('.').all(|e| !e.is_empty())) || derived {
            return Err(MavenSegment::Extension);
        }
        Ok(())
    }

    /// The pom of the release the log names `name` (`groupId:artifactId`) at `version`:
    /// what a Maven release's coordinates in the log must parse as. A snapshot version is
    /// refused ([`MavenSegment::Version`]): it moves, so the log cannot commit it.
    pub fn release(name: &'a str, version: &'a str) -> Result<Self, GavError> {
        let (group, artifact) = name.split_once(':').ok_or(GavError::Parts)?;
        let gav = Gav {
            group: Group {
                text: group,
                separator: b'.',
            },
            artifact,
            version,
            classifier: None,
            extension: "pom",
        }
        .checked()?;
        if gav.is_snapshot() {
            return Err(GavError::Segment(MavenSegment::Version));
        }
        Ok(gav)
    }

    /// The same artifact and version with another classifier and extension (a release's
    /// main artifact, from its pom).
    pub fn with_file(&self, classifier: Option<&'a str>, extension: &'a str) -> Gav<'a> {
        Gav {
            classifier,
            extension,
            ..*self
        }
    }

    /// This coordinate if its parts are valid and its path not too long (for one built from
    /// parts rather than parsed).
    pub(super) fn checked(self) -> Result<Self, GavError> {
        self.check().map_err(GavError::Segment)?;
        if self.path_len() > MAVEN_PATH_LEN_MAX {
            return Err(GavError::TooLong);
        }
        Ok(self)
    }

    /// Whether the version is a snapshot (mutable: resolved through metadata).
    pub fn is_snapshot(&self) -> bool {
        self.version.ends_with("-SNAPSHOT")
    }

    /// The file's path in the repository layout; display it.
    pub fn path(&self) -> impl fmt::Display + '_ {
        GavPath(self)
    }
}

impl fmt::Display for Gav<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.group, self.artifact, self.version)?;
        match self.classifier {
            Some(classifier) => write!(f, ":{classifier}:{}", self.extension),
            None if self.extension != "jar" => write!(f, ":{}", self.extension),
            None => Ok(()),
        }
    }
}

struct GavPath<'g, 'a>(&'g Gav<'a>);

impl fmt::Display for GavPath<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gav = self.0;
        write!(
            f,
            "{}/{}/{}/{}-{}",
            gav.group.path(),
            gav.artifact,
            gav.version,
            gav.artifact,
            gav.version
        )?;
        if let Some(classifier) = gav.classifier {
            write!(f, "-{classifier}")?;
        }
        write!(f, ".{}", gav.extension)
    }
}

/// A path segment: `[A-Za-z0-9_.+~-]+`, not `.` or `..`.
fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'+' | b'~'))
}

/// A checksum file's algorithm, from its suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Checksum {
    /// `.md5`
    Md5,
    /// `.sha1`
    Sha1,
    /// `.sha256`
    Sha256,
    /// `.sha512`
    Sha512,
}

impl Checksum {
    const ALL: [(Checksum, &'static str); 4] = [
        (Checksum::Md5, ".md5"),
        (Checksum::Sha1, ".sha1"),
        (Checksum::Sha256, ".sha256"),
        (Checksum::Sha512, ".sha512"),
    ];

    fn strip(file: &str) -> (&str, Option<Checksum>) {
        Self::ALL
            .iter()
            .find_map(|&(sum, suffix)| file.strip_suffix(suffix).map(|f| (f, Some(sum))))
            .unwrap_or((file, None))
    }
}

/// A path in a Maven repository, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MavenPath<'a> {
    /// An artifact file, or its checksum or signature.
    Artifact {
        /// The artifact's coordinate (the directory's version).
        gav: Gav<'a>,
        /// For a snapshot, the timestamped version the file name carries
        /// (`1.0-20240102.030405-7` for `1.0-SNAPSHOT`).
        snapshot: Option<&'a str>,
        /// `Some` for a checksum file.
        checksum: Option<Checksum>,
        /// Whether it is an `.asc` signature (or a checksum of one).
        signature: bool,
    },
    /// `maven-metadata.xml` (or its checksum) in `directory`: mutable, handled like a tag.
    Metadata {
        /// The directory holding it (`org/example/lib`, or a snapshot version's directory).
        directory: &'a str,
        /// `Some` for a checksum file.
        checksum: Option<Checksum>,
    },
}

/// Why a repository path was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum MavenPathError {
    /// Empty, longer than [`MAVEN_PATH_LEN_MAX`], or with a leading `/`.
    Length,
    /// An empty, `.`/`..` or otherwise invalid segment.
    Segment,
    /// Too few directories for group, artifact and version.
    TooShort,
    /// The file name does not start with `{artifact}-{version}`.
    FileName,
    /// A coordinate part is invalid.
    Gav(GavError),
}

impl fmt::Display for MavenPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MavenPathError::Length => f.write_str("repository path is empty or too long"),
            MavenPathError::Segment => f.write_str("repository path has an invalid segment"),
            MavenPathError::TooShort => {
                f.write_str("repository path lacks a group, artifact or version directory")
            }
            MavenPathError::FileName => {
                f.write_str("file name does not match the artifact and version directories")
            }
            MavenPathError::Gav(e) => write!(f, "repository path: {e}"),
        }
    }
}

impl core::error::Error for MavenPathError {}

const METADATA: &str = "maven-metadata.xml";

impl<'a> MavenPath<'a> {
    /// Parses a path relative to the repository root (no leading `/`).
    pub fn parse(path: &'a str) -> Result<Self, MavenPathError> {
        if path.is_empty() || path.len() > MAVEN_PATH_LEN_MAX || path.starts_with('/') {
            return Err(MavenPathError::Length);
        }
        if !path.split('/').all(is_segment) {
            return Err(MavenPathError::Segment);
        }
        let (directory, file) = path.rsplit_once('/').ok_or(MavenPathError::TooShort)?;
        let (file, checksum) = Checksum::strip(file);
        if file == METADATA {
            return Ok(MavenPath::Metadata {
                directory,
                checksum,
            });
        }
        let (file, signature) = match file.strip_suffix(".asc") {
            Some(file) => (file, true),
            None => (file, false),
        };
        let (rest, version) = directory.rsplit_once('/').ok_or(MavenPathError::TooShort)?;
        let (group, artifact) = rest.rsplit_once('/').ok_or(MavenPathError::TooShort)?;
        let after_artifact = file
            .strip_prefix(artifact)
            .and_then(|f| f.strip_prefix('-'))
            .ok_or(MavenPathError::FileName)?;
        let (snapshot, tail) = split_version(after_artifact, version)?;
        // What follows the version: `.ext` or `-classifier.ext`.
        let (classifier, extension) = match tail.strip_prefix('-') {
            Some(classified) => {
                let (classifier, extension) =
                    classified.split_once('.').ok_or(MavenPathError::FileName)?;
                (Some(classifier), extension)
            }
            None => (
                None,
                tail.strip_prefix('.').ok_or(MavenPathError::FileName)?,
            ),
        };
        let gav = Gav {
            group: Group {
                text: group,
                separator: b'/',
            },
            artifact,
            version,
            classifier,
            extension,
        };
        gav.check()
            .map_err(|part| MavenPathError::Gav(GavError::Segment(part)))?;
        Ok(MavenPath::Artifact {
            gav,
            snapshot,
            checksum,
            signature,
        })
    }
}

/// Splits the version off a file name's remainder: the directory's version itself, or for a
/// snapshot its timestamped form `{base}-{yyyyMMdd.HHmmss}-{build}`.
fn split_version<'f>(
    rest: &'f str,
    version: &str,
) -> Result<(Option<&'f str>, &'f str), MavenPathError> {
    if let Some(tail) = rest.strip_prefix(version) {
        return Ok((None, tail));
    }
    let base = version
        .strip_suffix("-SNAPSHOT")
        .ok_or(MavenPathError::FileName)?;
    let stamp = rest
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('-'))
        .ok_or(MavenPathError::FileName)?;
    let bytes = stamp.as_bytes();
    let digits = |range: core::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if !(digits(0..8)
        && bytes.get(8) == Some(&b'.')
        && digits(9..15)
        && bytes.get(15) == Some(&b'-'))
    {
        return Err(MavenPathError::FileName);
    }
    let build_len = bytes[16..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if build_len == 0 {
        return Err(MavenPathError::FileName);
    }
    let end = base.len() + 1 + 16 + build_len;
    Ok((Some(&rest[..end]), &rest[end..]))
}
