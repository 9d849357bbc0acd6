//! PEP 440 version strings, validated against the specification's grammar (appendix B, the
//! regular expression every installer uses), case-insensitively and without whitespace:
//! `v? (N!)? N(.N)* (pre)? (post)? (dev)? (+local)?`.

use core::fmt;

/// The longest version accepted, in bytes.
pub const PEP440_LEN_MAX: usize = 128;

/// A validated PEP 440 version, borrowed as written (`1.0`, `2.0.0rc1`, `1!3.1.post2.dev4+ubuntu.1`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Pep440<'a>(&'a str);

/// Why a version was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Pep440Error {
    /// The version is empty.
    Empty,
    /// The version is longer than [`PEP440_LEN_MAX`].
    TooLong {
        /// Length found, in bytes.
        len: usize,
    },
    /// The text does not follow the grammar from this byte on.
    Invalid {
        /// Byte offset where the grammar stopped matching.
        position: usize,
    },
}

impl fmt::Display for Pep440Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pep440Error::Empty => f.write_str("version is empty"),
            Pep440Error::TooLong { len } => {
                write!(f, "version is longer than {PEP440_LEN_MAX} bytes ({len})")
            }
            Pep440Error::Invalid { position } => {
                write!(f, "not a PEP 440 version (at byte {position})")
            }
        }
    }
}

impl core::error::Error for Pep440Error {}

impl<'a> Pep440<'a> {
    /// Validates `text` as a PEP 440 version.
    pub fn parse(text: &'a str) -> Result<Self, Pep440Error> {
        if text.is_empty() {
            return Err(Pep440Error::Empty);
        }
        if text.len() > PEP440_LEN_MAX {
            return Err(Pep440Error::TooLong { len: text.len() });
        }
        let end = version_end(text.as_bytes());
        if end == text.len() {
            Ok(Pep440(text))
        } else {
            Err(Pep440Error::Invalid { position: end })
        }
    }

    /// The version as written.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether the version has a local label (`+...`), which indexes do not accept on upload
    /// but which private indexes serve.
    pub fn is_local(&self) -> bool {
        self.0.contains('+')
    }
}

impl fmt::Display for Pep440<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// How far the grammar matches `s` from its start.
fn version_end(s: &[u8]) -> usize {
    let mut i = 0;
    if matches!(s.first(), Some(b'v' | b'V')) {
        i = 1;
    }
    // Epoch: digits then '!'.
    if let Some(after) = digits(s, i)
        && s.get(after) == Some(&b'!')
    {
        i = after + 1;
    }
    // Release: N(.N)*
    let Some(mut at) = digits(s, i) else {
        return i;
    };
    while s.get(at) == Some(&b'.')
        && let Some(after) = digits(s, at + 1)
    {
        at = after;
    }
    i = at;
    if let Some(after) = pre_release(s, i) {
        i = after;
    }
    if let Some(after) = post_release(s, i) {
        i = after;
    }
    if let Some(after) = dev_release(s, i) {
        i = after;
    }
    if s.get(i) == Some(&b'+')
        && let Some(after) = local(s, i + 1)
    {
        i = after;
    }
    i
}

fn digits(s: &[u8], i: usize) -> Option<usize> {
    let n = s[i.min(s.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    (n > 0).then_some(i + n)
}

fn separator(s: &[u8], i: usize) -> usize {
    if matches!(s.get(i), Some(b'-' | b'_' | b'.')) {
        i + 1
    } else {
        i
    }
}

/// The first of `labels` that `s` spells at `i`, ignoring case.
fn label(s: &[u8], i: usize, labels: &[&str]) -> Option<usize> {
    labels.iter().find_map(|l| {
        let end = i + l.len();
        (end <= s.len() && s[i..end].eq_ignore_ascii_case(l.as_bytes())).then_some(end)
    })
}

/// `[-_.]? LABEL [-_.]? N?`
fn labelled(s: &[u8], i: usize, labels: &[&str]) -> Option<usize> {
    let after = label(s, separator(s, i), labels).or_else(|| label(s, i, labels))?;
    let sep = separator(s, after);
    Some(digits(s, sep).unwrap_or(after))
}

fn pre_release(s: &[u8], i: usize) -> Option<usize> {
    // Longer spellings first, as the grammar's alternation must match them whole.
    labelled(
        s,
        i,
        &["alpha", "a", "beta", "b", "preview", "pre", "rc", "c"],
    )
}

fn post_release(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) == Some(&b'-')
        && let Some(after) = digits(s, i + 1)
    {
        return Some(after);
    }
    labelled(s, i, &["post", "rev", "r"])
}

fn dev_release(s: &[u8], i: usize) -> Option<usize> {
    labelled(s, i, &["dev"])
}

/// `[a-z0-9]+([-_.][a-z0-9]+)*`
fn local(s: &[u8], i: usize) -> Option<usize> {
    let part = |at: usize| {
        let n = s[at.min(s.len())..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        (n > 0).then_some(at + n)
    };
    let mut at = part(i)?;
    while matches!(s.get(at), Some(b'-' | b'_' | b'.'))
        && let Some(after) = part(at + 1)
    {
        at = after;
    }
    Some(at)
}
