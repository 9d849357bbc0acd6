//! PyPI project names (PEP 508), their normalised form (PEP 503), and distribution file names:
//! wheels (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`) and source
//! distributions (`{name}-{version}.tar.gz`, or `.zip` from older tools).

use core::fmt;

use super::pep440::{Pep440, Pep440Error};

/// The longest project name accepted, in bytes.
pub const PROJECT_NAME_LEN_MAX: usize = 200;

/// A validated project name as written (`Django`, `zope.interface`, `typing_extensions`).
///
/// Two names are the same project when their [`ProjectName::normalized`] forms are equal.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ProjectName<'a>(&'a str);

/// Why a project name was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ProjectNameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`PROJECT_NAME_LEN_MAX`].
    TooLong {
        /// Length found, in bytes.
        len: usize,
    },
    /// A byte other than ASCII letters, digits, `.`, `_` and `-`.
    InvalidCharacter {
        /// Byte offset of the byte.
        position: usize,
    },
    /// The name starts or ends with `.`, `_` or `-`.
    EdgeSeparator,
}

impl fmt::Display for ProjectNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProjectNameError::Empty => f.write_str("project name is empty"),
            ProjectNameError::TooLong { len } => write!(
                f,
                "project name is longer than {PROJECT_NAME_LEN_MAX} bytes ({len})"
            ),
            ProjectNameError::InvalidCharacter { position } => {
                write!(
                    f,
                    "project name has an invalid character (at byte {position})"
                )
            }
            ProjectNameError::EdgeSeparator => {
                f.write_str("project name starts or ends with '.', '_' or '-'")
            }
        }
    }
}

impl core::error::Error for ProjectNameError {}

impl<'a> ProjectName<'a> {
    /// Validates `text` as a project name: `[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?`.
    pub fn parse(text: &'a str) -> Result<Self, ProjectNameError> {
        let bytes = text.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return Err(ProjectNameError::Empty);
        };
        if text.len() > PROJECT_NAME_LEN_MAX {
            return Err(ProjectNameError::TooLong { len: text.len() });
        }
        if let Some(position) = bytes
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || is_separator(c)))
        {
            return Err(ProjectNameError::InvalidCharacter { position });
        }
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return Err(ProjectNameError::EdgeSeparator);
        }
        Ok(ProjectName(text))
    }

    /// The name as written.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }

    /// The PEP 503 normalised form: lowercase, each run of `.`, `_` and `-` one `-`. It is
    /// what `/simple/{name}/` uses; display it to get the text.
    pub const fn normalized(&self) -> Normalized<'a> {
        Normalized(self.0)
    }

    /// Whether the name is already in normalised form (else an index redirects to it).
    pub fn is_normalized(&self) -> bool {
        let bytes = self.0.as_bytes();
        !bytes.iter().any(u8::is_ascii_uppercase)
            && !bytes.iter().any(|&c| c == b'.' || c == b'_')
            && !bytes.windows(2).any(|w| w == b"--")
    }

    /// Whether `self` and `other` name the same project.
    pub fn same_project(&self, other: &ProjectName<'_>) -> bool {
        self.normalized().bytes().eq(other.normalized().bytes())
    }
}

fn is_separator(c: u8) -> bool {
    matches!(c, b'.' | b'_' | b'-')
}

/// A project name's normalised form, produced lazily (no allocation); see
/// [`ProjectName::normalized`].
#[derive(Clone, Copy, Debug)]
pub struct Normalized<'a>(&'a str);

impl Normalized<'_> {
    /// The normalised bytes, one by one.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let bytes = self.0.as_bytes();
        bytes.iter().enumerate().filter_map(move |(i, &c)| {
            if is_separator(c) {
                // A run of separators becomes the one '-' written at its end.
                let run_continues = bytes.get(i + 1).is_some_and(|&n| is_separator(n));
                (!run_continues).then_some(b'-')
            } else {
                Some(c.to_ascii_lowercase())
            }
        })
    }
}

impl fmt::Display for Normalized<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        self.bytes().try_for_each(|c| f.write_char(char::from(c)))
    }
}

/// The archive format of a source distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SdistFormat {
    /// `.tar.gz` (PEP 625, and nearly every sdist).
    TarGz,
    /// `.zip` (older tools).
    Zip,
}

/// A distribution file name, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistFile<'a> {
    /// A built distribution.
    Wheel {
        /// The project, as the file spells it (`_` for `-`).
        project: ProjectName<'a>,
        /// Its version.
        version: Pep440<'a>,
        /// The optional build tag (starts with a digit).
        build: Option<&'a str>,
        /// Python tag(s), e.g. `py3` or `cp312`.
        python: &'a str,
        /// ABI tag(s), e.g. `none` or `cp312`.
        abi: &'a str,
        /// Platform tag(s), e.g. `any` or `manylinux_2_17_x86_64`.
        platform: &'a str,
    },
    /// A source distribution.
    Sdist {
        /// The project, as the file spells it.
        project: ProjectName<'a>,
        /// Its version.
        version: Pep440<'a>,
        /// Its archive format.
        format: SdistFormat,
    },
}

/// Why a distribution file name was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DistFileError {
    /// Neither `.whl`, `.tar.gz` nor `.zip`.
    UnknownExtension,
    /// A wheel name without five or six `-`-separated parts, or with an invalid tag.
    WheelParts,
    /// The project part is not a project name.
    Project(ProjectNameError),
    /// The version part is not a PEP 440 version.
    Version(Pep440Error),
    /// No split of an sdist name gives a project name and a version.
    SdistParts,
    /// The file belongs to another project than the one asked for.
    OtherProject,
}

impl fmt::Display for DistFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistFileError::UnknownExtension => {
                f.write_str("not a distribution file (.whl, .tar.gz or .zip)")
            }
            DistFileError::WheelParts => f.write_str("not a valid wheel file name"),
            DistFileError::Project(e) => write!(f, "distribution file name: {e}"),
            DistFileError::Version(e) => write!(f, "distribution file name: {e}"),
            DistFileError::SdistParts => f.write_str("not a valid source distribution file name"),
            DistFileError::OtherProject => f.write_str("the file belongs to another project"),
        }
    }
}

impl core::error::Error for DistFileError {}

impl<'a> DistFile<'a> {
    /// Parses a distribution file name (no path).
    pub fn parse(file: &'a str) -> Result<Self, DistFileError> {
        if let Some(stem) = file.strip_suffix(".whl") {
            return parse_wheel(stem);
        }
        let (stem, format) = if let Some(stem) = file.strip_suffix(".tar.gz") {
            (stem, SdistFormat::TarGz)
        } else if let Some(stem) = file.strip_suffix(".zip") {
            (stem, SdistFormat::Zip)
        } else {
            return Err(DistFileError::UnknownExtension);
        };
        // Older sdists keep `-` in the project part (`python-dateutil-2.8.2`): the first
        // split whose left is a name and whose right is a version wins.
        stem.match_indices('-')
            .find_map(|(i, _)| {
                let project = ProjectName::parse(&stem[..i]).ok()?;
                let version = Pep440::parse(&stem[i + 1..]).ok()?;
                Some(DistFile::Sdist {
                    project,
                    version,
                    format,
                })
            })
            .ok_or(DistFileError::SdistParts)
    }

    /// Parses a file name that must belong to `project` (by normalised name).
    pub fn parse_for(project: &ProjectName<'_>, file: &'a str) -> Result<Self, DistFileError> {
        let parsed = DistFile::parse(file)?;
        if parsed.project().same_project(project) {
            Ok(parsed)
        } else {
            Err(DistFileError::OtherProject)
        }
    }

    /// The project the file belongs to, as the file spells it.
    pub const fn project(&self) -> ProjectName<'a> {
        match self {
            DistFile::Wheel { project, .. } | DistFile::Sdist { project, .. } => *project,
        }
    }

    /// The file's version.
    pub const fn version(&self) -> Pep440<'a> {
        match self {
            DistFile::Wheel { version, .. } | DistFile::Sdist { version, .. } => *version,
        }
    }
}

fn parse_wheel(stem: &str) -> Result<DistFile<'_>, DistFileError> {
    let mut parts = stem.split('-');
    let mut next = || parts.next().ok_or(DistFileError::WheelParts);
    let (project, version) = (next()?, next()?);
    let (a, b, c) = (next()?, next()?, next()?);
    let (build, python, abi, platform) = match next() {
        Ok(d) => (Some(a), b, c, d),
        Err(_) => (None, a, b, c),
    };
    if next().is_ok() {
        return Err(DistFileError::WheelParts);
    }
    let tag_ok = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
    };
    let build_ok = build.is_none_or(|b| {
        b.as_bytes().first().is_some_and(u8::is_ascii_digit)
            && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
    });
    if !(build_ok && tag_ok(python) && tag_ok(abi) && tag_ok(platform)) {
        return Err(DistFileError::WheelParts);
    }
    Ok(DistFile::Wheel {
        project: ProjectName::parse(project).map_err(DistFileError::Project)?,
        version: Pep440::parse(version).map_err(DistFileError::Version)?,
        build,
        python,
        abi,
        platform,
    })
}
