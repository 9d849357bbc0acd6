//! npm package names (`name`, `@scope/name`) as the public registry serves them, their path
//! form (`@scope%2fname`), semver versions, and tarball file names (`{name}-{version}.tgz`).

use core::fmt;

/// The longest package name accepted, scope included, in bytes (the registry's limit).
pub const NPM_NAME_LEN_MAX: usize = 214;
/// The longest version accepted, in bytes (npm's semver limit).
const NPM_VERSION_LEN_MAX: usize = 256;

/// A validated package name: an optional scope and the bare name, borrowed.
///
/// Both parts use only the characters `encodeURIComponent` leaves alone (letters, digits,
/// `-._~!*'()`), and neither starts with `.` or `_`. Uppercase is accepted: old packages
/// (`JSONStream`) keep it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NpmName<'a> {
    scope: Option<&'a str>,
    bare: &'a str,
}

/// Why a package name was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NpmNameError {
    /// The name (or its scope, or the part after the scope) is empty.
    Empty,
    /// The name is longer than [`NPM_NAME_LEN_MAX`].
    TooLong {
        /// Length found, in bytes (scope included).
        len: usize,
    },
    /// A character outside the URL-safe set (a space, `/` outside the scope, `%`, non-ASCII...).
    InvalidCharacter {
        /// Byte offset of the character.
        position: usize,
    },
    /// The scope or name starts with `.` or `_`.
    LeadingDotOrUnderscore,
    /// `node_modules` or `favicon.ico`.
    Reserved,
}

impl fmt::Display for NpmNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NpmNameError::Empty => f.write_str("package name is empty"),
            NpmNameError::TooLong { len } => write!(
                f,
                "package name is longer than {NPM_NAME_LEN_MAX} bytes ({len})"
            ),
            NpmNameError::InvalidCharacter { position } => {
                write!(
                    f,
                    "package name has an invalid character (at byte {position})"
                )
            }
            NpmNameError::LeadingDotOrUnderscore => {
                f.write_str("package name starts with '.' or '_'")
            }
            NpmNameError::Reserved => f.write_str("package name is reserved"),
        }
    }
}

impl core::error::Error for NpmNameError {}

impl<'a> NpmName<'a> {
    /// Validates `text` as a package name: `name` or `@scope/name`.
    pub fn parse(text: &'a str) -> Result<Self, NpmNameError> {
        Self::parse_with(text, "/")
    }

    /// Validates a name as it appears in a registry URL path: a scoped name's `/` is
    /// escaped as `%2f` or `%2F` (a literal `/` is accepted too, as npm clients send either).
    pub fn parse_path(segment: &'a str) -> Result<Self, NpmNameError> {
        if segment.starts_with('@') {
            for escape in ["%2f", "%2F"] {
                if segment.contains(escape) {
                    return Self::parse_with(segment, escape);
                }
            }
        }
        Self::parse(segment)
    }

    fn parse_with(text: &'a str, slash: &str) -> Result<Self, NpmNameError> {
        if text.is_empty() {
            return Err(NpmNameError::Empty);
        }
        let (scope, bare, bare_at) = match text.strip_prefix('@') {
            Some(rest) => {
                let (scope, bare) = rest.split_once(slash).ok_or(NpmNameError::Empty)?;
                (Some(scope), bare, 1 + scope.len() + slash.len())
            }
            None => (None, text, 0),
        };
        let len = scope.map_or(0, |s| s.len() + 2) + bare.len();
        if len > NPM_NAME_LEN_MAX {
            return Err(NpmNameError::TooLong { len });
        }
        if let Some(scope) = scope {
            check_part(scope, 1)?;
        }
        check_part(bare, bare_at)?;
        if scope.is_none() && (bare == "node_modules" || bare == "favicon.ico") {
            return Err(NpmNameError::Reserved);
        }
        Ok(NpmName { scope, bare })
    }

    /// The scope without its `@`, if any.
    pub const fn scope(&self) -> Option<&'a str> {
        self.scope
    }

    /// The name without its scope: what tarball file names start with.
    pub const fn bare(&self) -> &'a str {
        self.bare
    }

    /// The name as a registry URL path segment: `@scope%2fname` or `name`.
    pub fn path_form(&self) -> impl fmt::Display + '_ {
        PathForm(self)
    }

    /// The version of a tarball file name of this package, `{bare}-{version}.tgz`.
    pub fn tarball_version<'f>(&self, file: &'f str) -> Option<NpmVersion<'f>> {
        let version = file
            .strip_prefix(self.bare)?
            .strip_prefix('-')?
            .strip_suffix(".tgz")?;
        NpmVersion::parse(version).ok()
    }
}

impl fmt::Display for NpmName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            Some(scope) => write!(f, "@{scope}/{}", self.bare),
            None => f.write_str(self.bare),
        }
    }
}

struct PathForm<'n, 'a>(&'n NpmName<'a>);

impl fmt::Display for PathForm<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.scope {
            Some(scope) => write!(f, "@{scope}%2f{}", self.0.bare),
            None => f.write_str(self.0.bare),
        }
    }
}

fn check_part(part: &str, offset: usize) -> Result<(), NpmNameError> {
    let Some(&first) = part.as_bytes().first() else {
        return Err(NpmNameError::Empty);
    };
    if let Some(i) = part.bytes().position(|c| !is_url_safe(c)) {
        return Err(NpmNameError::InvalidCharacter {
            position: offset + i,
        });
    }
    if first == b'.' || first == b'_' {
        return Err(NpmNameError::LeadingDotOrUnderscore);
    }
    Ok(())
}

/// What `encodeURIComponent` leaves unescaped.
fn is_url_safe(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.' | b'_' | b'~' | b'!' | b'*' | b'\'' | b'(' | b')'
        )
}

/// The longest dist-tag accepted, in bytes.
pub const NPM_DIST_TAG_LEN_MAX: usize = 128;

/// Whether `tag` is a dist-tag the log records (`latest`, `next`, `beta`, `v1-lts`): 1 to
/// [`NPM_DIST_TAG_LEN_MAX`] letters, digits and `-._~` (what `encodeURIComponent` leaves
/// alone, as npm requires), starting with a letter and not with `v` and a digit. npm refuses a
/// tag that reads as a semver range; these rules refuse every such tag (`1.x`, `v2`, `=1`,
/// `>=1`), so a tag can never be taken for the version it names.
pub fn is_dist_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let starts_as_version =
        bytes.first() == Some(&b'v') && bytes.get(1).is_some_and(u8::is_ascii_digit);
    !tag.is_empty()
        && tag.len() <= NPM_DIST_TAG_LEN_MAX
        && bytes[0].is_ascii_alphabetic()
        && !starts_as_version
        && bytes
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
}

/// A validated semver version as npm publishes them: `MAJOR.MINOR.PATCH(-pre)?(+build)?`, no
/// leading zeros in numbers, no leading `v` or `=`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NpmVersion<'a>(&'a str);

/// Why a version was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NpmVersionError {
    /// The version is empty or longer than npm allows.
    Length,
    /// Not three dot-separated numbers without leading zeros.
    Core,
    /// An empty or invalid pre-release identifier (or a numeric one with a leading zero).
    PreRelease,
    /// An empty or invalid build identifier.
    Build,
}

impl fmt::Display for NpmVersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NpmVersionError::Length => "version is empty or too long",
            NpmVersionError::Core => "version is not MAJOR.MINOR.PATCH",
            NpmVersionError::PreRelease => "version has an invalid pre-release part",
            NpmVersionError::Build => "version has an invalid build part",
        })
    }
}

impl core::error::Error for NpmVersionError {}

impl<'a> NpmVersion<'a> {
    /// Validates `text` as a semver 2.0 version.
    pub fn parse(text: &'a str) -> Result<Self, NpmVersionError> {
        if text.is_empty() || text.len() > NPM_VERSION_LEN_MAX {
            return Err(NpmVersionError::Length);
        }
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (text, None),
        };
        let (core_part, pre) = match rest.split_once('-') {
            Some((core_part, pre)) => (core_part, Some(pre)),
            None => (rest, None),
        };
        let mut numbers = core_part.split('.');
        for _ in 0..3 {
            if !numbers.next().is_some_and(is_number) {
                return Err(NpmVersionError::Core);
            }
        }
        if numbers.next().is_some() {
            return Err(NpmVersionError::Core);
        }
        if let Some(pre) = pre
            && !pre.split('.').all(|id| {
                is_identifier(id) && (!id.bytes().all(|c| c.is_ascii_digit()) || is_number(id))
            })
        {
            return Err(NpmVersionError::PreRelease);
        }
        if let Some(build) = build
            && !build.split('.').all(is_identifier)
        {
            return Err(NpmVersionError::Build);
        }
        Ok(NpmVersion(text))
    }

    /// The version's text.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Display for NpmVersion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A numeric identifier: digits, no leading zero (except `0` itself).
fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// `[0-9A-Za-z-]+`
fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}
