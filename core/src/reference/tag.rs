//! Tags (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`) and manifest references (a tag or a digest).

use core::fmt;

use crate::digest::{Digest, DigestError};

/// Longest tag accepted, in bytes.
pub const TAG_LEN_MAX: usize = 128;

/// A validated tag such as `3.20` or `latest`, borrowed from the request.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag<'a>(&'a str);

/// Why a tag was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TagError {
    /// The tag is empty.
    Empty,
    /// The tag is longer than [`TAG_LEN_MAX`].
    TooLong {
        /// Length found, in bytes.
        len: usize,
    },
    /// A byte outside `[a-zA-Z0-9._-]`, or a `.`/`-` in first position.
    InvalidCharacter {
        /// Byte offset of the byte.
        position: usize,
    },
}

impl TagError {
    /// A short static description, suitable for an OCI error message.
    pub const fn reason(&self) -> &'static str {
        match self {
            TagError::Empty => "tag is empty",
            TagError::TooLong { .. } => "tag is longer than 128 bytes",
            TagError::InvalidCharacter { .. } => "tag has an invalid character",
        }
    }
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagError::TooLong { len } => write!(f, "{} ({len} bytes)", self.reason()),
            TagError::InvalidCharacter { position } => {
                write!(f, "{} (at byte {position})", self.reason())
            }
            TagError::Empty => f.write_str(self.reason()),
        }
    }
}

impl core::error::Error for TagError {}

impl<'a> Tag<'a> {
    /// Validates `text` as a tag.
    pub fn parse(text: &'a str) -> Result<Self, TagError> {
        if text.is_empty() {
            return Err(TagError::Empty);
        }
        if text.len() > TAG_LEN_MAX {
            return Err(TagError::TooLong { len: text.len() });
        }
        for (position, c) in text.bytes().enumerate() {
            let valid = c.is_ascii_alphanumeric()
                || c == b'_'
                || (position > 0 && (c == b'.' || c == b'-'));
            if !valid {
                return Err(TagError::InvalidCharacter { position });
            }
        }
        Ok(Tag(text))
    }

    /// The tag's text.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Display for Tag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Tag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({:?})", self.0)
    }
}

/// What a manifest request names: a mutable tag or an immutable digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reference<'a> {
    /// A tag; its digest must be resolved (upstream, or the last observation when offline).
    Tag(Tag<'a>),
    /// A digest; the manifest's bytes must hash to it.
    Digest(Digest),
}

/// Why a manifest reference was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ReferenceError {
    /// It looked like a tag (no `:`) and broke the tag grammar.
    Tag(TagError),
    /// It looked like a digest (has a `:`) and broke the digest grammar.
    Digest(DigestError),
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceError::Tag(e) => e.fmt(f),
            ReferenceError::Digest(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ReferenceError {}

impl<'a> Reference<'a> {
    /// Parses a manifest reference: a digest when it contains `:`, a tag otherwise
    /// (tags cannot contain `:`, so the two never overlap).
    pub fn parse(text: &'a str) -> Result<Self, ReferenceError> {
        if text.contains(':') {
            Digest::parse(text)
                .map(Reference::Digest)
                .map_err(ReferenceError::Digest)
        } else {
            Tag::parse(text)
                .map(Reference::Tag)
                .map_err(ReferenceError::Tag)
        }
    }

    /// The digest, when the reference is one.
    pub const fn digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }
}

impl fmt::Display for Reference<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tags() {
        for ok in ["latest", "3.20", "_x", "v1.0-rc.1", "A_b"] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(TAG_LEN_MAX + 1);
        let cases: &[(&str, TagError)] = &[
            ("", TagError::Empty),
            (".hidden", TagError::InvalidCharacter { position: 0 }),
            ("-x", TagError::InvalidCharacter { position: 0 }),
            ("a/b", TagError::InvalidCharacter { position: 1 }),
            ("..", TagError::InvalidCharacter { position: 0 }),
            ("a\0", TagError::InvalidCharacter { position: 1 }),
            ("a%2e", TagError::InvalidCharacter { position: 1 }),
            (&long, TagError::TooLong { len: 129 }),
        ];
        for (input, expected) in cases {
            assert_eq!(Tag::parse(input), Err(*expected), "input {input:?}");
        }
        assert!(Tag::parse(&"a".repeat(TAG_LEN_MAX)).is_ok());
    }

    #[test]
    fn references() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(Reference::parse(d), Ok(Reference::Digest(_))));
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        assert_eq!(
            Reference::parse("sha256:abc"),
            Err(ReferenceError::Digest(DigestError::WrongLength {
                found: 3
            }))
        );
        assert!(matches!(
            Reference::parse("bad tag"),
            Err(ReferenceError::Tag(TagError::InvalidCharacter {
                position: 3
            }))
        ));
    }

    proptest! {
        #[test]
        fn grammar_tags_round_trip(s in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") {
            let tag = Tag::parse(&s).unwrap();
            prop_assert_eq!(Reference::parse(&s), Ok(Reference::Tag(tag)));
            prop_assert_eq!(tag.to_string(), s);
        }

        #[test]
        fn references_never_panic(s in "\\PC{0,100}") {
            if let Ok(r) = Reference::parse(&s) {
                prop_assert_eq!(r.to_string(), s);
            }
        }
    }
}
