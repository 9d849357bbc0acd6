//! Repository names per the OCI distribution-spec grammar:
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.

use core::fmt;

/// Longest repository name accepted, in bytes (the spec's limit for registry host plus name).
pub const NAME_LEN_MAX: usize = 255;

/// A validated repository name such as `library/alpine`, borrowed from the request.
///
/// Holding a `Name` proves the text matches the grammar: no `..`, no empty or absolute
/// components, no uppercase, no bytes outside `[a-z0-9._/-]`, so it is safe in file paths.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name<'a>(&'a str);

/// Why a repository name was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`NAME_LEN_MAX`].
    TooLong {
        /// Length found, in bytes.
        len: usize,
    },
    /// An empty path component: a leading `/` (absolute), `//`, or a trailing `/`.
    EmptyComponent,
    /// A `.` or `..` path component.
    DotSegment,
    /// An uppercase ASCII letter.
    Uppercase {
        /// Byte offset of the letter.
        position: usize,
    },
    /// A byte outside the grammar's alphabet (`%`, NUL, space, non-ASCII, ...).
    InvalidCharacter {
        /// Byte offset of the byte.
        position: usize,
    },
    /// A component that starts or ends with a separator, or a separator run other than
    /// `.`, `_`, `__` or dashes.
    InvalidSeparator {
        /// Byte offset where the bad separator run starts.
        position: usize,
    },
}

impl NameError {
    /// A short static description, suitable for an OCI error message.
    pub const fn reason(&self) -> &'static str {
        match self {
            NameError::Empty => "repository name is empty",
            NameError::TooLong { .. } => "repository name is longer than 255 bytes",
            NameError::EmptyComponent => "repository name has an empty path component",
            NameError::DotSegment => "repository name has a '.' or '..' path component",
            NameError::Uppercase { .. } => "repository name must be lowercase",
            NameError::InvalidCharacter { .. } => "repository name has an invalid character",
            NameError::InvalidSeparator { .. } => "repository name has a misplaced separator",
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::TooLong { len } => write!(f, "{} ({len} bytes)", self.reason()),
            NameError::Uppercase { position }
            | NameError::InvalidCharacter { position }
            | NameError::InvalidSeparator { position } => {
                write!(f, "{} (at byte {position})", self.reason())
            }
            other => f.write_str(other.reason()),
        }
    }
}

impl core::error::Error for NameError {}

impl<'a> Name<'a> {
    /// Validates `text` as a repository name.
    pub fn parse(text: &'a str) -> Result<Self, NameError> {
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        if text.len() > NAME_LEN_MAX {
            return Err(NameError::TooLong { len: text.len() });
        }
        let mut start = 0;
        for component in text.split('/') {
            check_component(component, start)?;
            start += component.len() + 1;
        }
        Ok(Name(text))
    }

    /// The name's text.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }

    /// The `/`-separated path components.
    pub fn components(&self) -> core::str::Split<'a, char> {
        self.0.split('/')
    }

    /// Number of path components (`alpine` has one, `library/alpine` two).
    pub fn component_count(&self) -> usize {
        self.components().count()
    }
}

fn check_component(component: &str, offset: usize) -> Result<(), NameError> {
    if component.is_empty() {
        return Err(NameError::EmptyComponent);
    }
    if component == "." || component == ".." {
        return Err(NameError::DotSegment);
    }
    let bytes = component.as_bytes();
    // Alphabet first, so that "%2e" or a NUL is reported as what it is.
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => {}
            b'A'..=b'Z' => {
                return Err(NameError::Uppercase {
                    position: offset + i,
                });
            }
            _ => {
                return Err(NameError::InvalidCharacter {
                    position: offset + i,
                });
            }
        }
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let run_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let run = &component[run_start..i];
        let at_edge = run_start == 0 || i == bytes.len();
        let valid_run = matches!(run, "." | "_" | "__") || run.bytes().all(|c| c == b'-');
        if at_edge || !valid_run {
            return Err(NameError::InvalidSeparator {
                position: offset + run_start,
            });
        }
    }
    Ok(())
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.0)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Name<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_valid_names() {
        for ok in [
            "alpine",
            "library/alpine",
            "a/b/c/d",
            "my-org/my.app",
            "a__b",
            "a---b",
            "a_b.c-d",
            "0/1",
        ] {
            assert_eq!(Name::parse(ok).map(|n| n.as_str()), Ok(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_names_with_typed_errors() {
        let too_long = "a".repeat(NAME_LEN_MAX + 1);
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("../etc/passwd", NameError::DotSegment),
            ("library/../../etc", NameError::DotSegment),
            ("a/./b", NameError::DotSegment),
            ("%2e%2e/etc", NameError::InvalidCharacter { position: 0 }),
            ("a%2fb", NameError::InvalidCharacter { position: 1 }),
            ("/etc/passwd", NameError::EmptyComponent),
            ("library//alpine", NameError::EmptyComponent),
            ("library/", NameError::EmptyComponent),
            ("Library/alpine", NameError::Uppercase { position: 0 }),
            ("library/Alpine", NameError::Uppercase { position: 8 }),
            ("a\0b", NameError::InvalidCharacter { position: 1 }),
            ("a b", NameError::InvalidCharacter { position: 1 }),
            ("caf\u{e9}", NameError::InvalidCharacter { position: 3 }),
            ("a\\b", NameError::InvalidCharacter { position: 1 }),
            ("-a", NameError::InvalidSeparator { position: 0 }),
            ("a-", NameError::InvalidSeparator { position: 1 }),
            ("a..b", NameError::InvalidSeparator { position: 1 }),
            ("a___b", NameError::InvalidSeparator { position: 1 }),
            ("a._b", NameError::InvalidSeparator { position: 1 }),
            ("x/.hidden", NameError::InvalidSeparator { position: 2 }),
            (&too_long, NameError::TooLong { len: 256 }),
        ];
        for (input, expected) in cases {
            assert_eq!(Name::parse(input), Err(*expected), "input {input:?}");
        }
        let at_limit = "a".repeat(NAME_LEN_MAX);
        assert!(Name::parse(&at_limit).is_ok());
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,8}((\\.|_|__|-{1,3})[a-z0-9]{1,8}){0,2}"
    }

    proptest! {
        #[test]
        fn grammar_names_round_trip(parts in proptest::collection::vec(component(), 1..5)) {
            let text = parts.join("/");
            let name = Name::parse(&text).unwrap();
            prop_assert_eq!(name.as_str(), text.as_str());
            prop_assert_eq!(name.component_count(), parts.len());
        }

        #[test]
        fn accepted_names_are_safe_paths(s in "\\PC{0,40}") {
            if let Ok(name) = Name::parse(&s) {
                for c in name.components() {
                    prop_assert!(!c.is_empty() && c != "." && c != "..");
                    prop_assert!(!c.starts_with('.'));
                }
                prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)));
            }
        }
    }
}
