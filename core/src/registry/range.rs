//! `Range: bytes=…` handling for blob GETs (RFC 9110 §14): one range per request, as
//! registries serve; anything else is answered with the whole blob.

use core::fmt;

/// An inclusive byte range `first..=last` within a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ByteRange {
    /// First byte offset.
    pub first: u64,
    /// Last byte offset, inclusive.
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range (never zero).
    pub const fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Always false: a resolved range holds at least one byte.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` header value for this range of a blob of `total` bytes.
    pub const fn content_range(&self, total: u64) -> ContentRange {
        ContentRange {
            range: Some(*self),
            total,
        }
    }
}

/// A `Content-Range` value: `bytes first-last/total`, or `bytes */total` for a 416.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    range: Option<ByteRange>,
    total: u64,
}

impl ContentRange {
    /// The value for a 416 response to a blob of `total` bytes.
    pub const fn unsatisfied(total: u64) -> Self {
        ContentRange { range: None, total }
    }
}

impl fmt::Display for ContentRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.range {
            Some(r) => write!(f, "bytes {}-{}/{}", r.first, r.last, self.total),
            None => write!(f, "bytes */{}", self.total),
        }
    }
}

/// A single byte-range request before the blob size is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RangeSpec {
    /// `bytes=first-last`.
    Bounded {
        /// First byte offset.
        first: u64,
        /// Last byte offset, inclusive (clamped to the blob's end when resolved).
        last: u64,
    },
    /// `bytes=first-`: from `first` to the end.
    From {
        /// First byte offset.
        first: u64,
    },
    /// `bytes=-n`: the last `n` bytes.
    Suffix {
        /// Number of trailing bytes.
        len: u64,
    },
}

/// Why a `Range` header could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RangeError {
    /// The unit is not `bytes`.
    NotBytes,
    /// More than one range; a blob mirror does not send multipart responses.
    MultipleRanges,
    /// Not `first-last`, `first-` or `-len` with decimal numbers.
    Malformed,
    /// `last` is before `first`.
    Inverted,
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RangeError::NotBytes => "range unit is not bytes",
            RangeError::MultipleRanges => "multiple ranges are not supported",
            RangeError::Malformed => "range is malformed",
            RangeError::Inverted => "range ends before it starts",
        })
    }
}

impl core::error::Error for RangeError {}

impl RangeSpec {
    /// Parses a `Range` header value.
    pub fn parse(header: &str) -> Result<Self, RangeError> {
        let (unit, set) = header.trim().split_once('=').ok_or(RangeError::Malformed)?;
        if !unit.trim().eq_ignore_ascii_case("bytes") {
            return Err(RangeError::NotBytes);
        }
        if set.contains(',') {
            return Err(RangeError::MultipleRanges);
        }
        let (first, last) = set.trim().split_once('-').ok_or(RangeError::Malformed)?;
        match (first.trim(), last.trim()) {
            ("", "") => Err(RangeError::Malformed),
            ("", len) => Ok(RangeSpec::Suffix { len: number(len)? }),
            (first, "") => Ok(RangeSpec::From {
                first: number(first)?,
            }),
            (first, last) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first {
                    return Err(RangeError::Inverted);
                }
                Ok(RangeSpec::Bounded { first, last })
            }
        }
    }

    /// The concrete range within a blob of `size` bytes, or `None` when it is unsatisfiable
    /// (starts past the end, or asks for zero bytes).
    pub fn resolve(self, size: u64) -> Option<ByteRange> {
        let last_byte = size.checked_sub(1)?;
        match self {
            RangeSpec::Bounded { first, last } if first <= last_byte => Some(ByteRange {
                first,
                last: last.min(last_byte),
            }),
            RangeSpec::From { first } if first <= last_byte => Some(ByteRange {
                first,
                last: last_byte,
            }),
            RangeSpec::Suffix { len } if len > 0 => Some(ByteRange {
                first: size - len.min(size),
                last: last_byte,
            }),
            _ => None,
        }
    }
}

fn number(text: &str) -> Result<u64, RangeError> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(RangeError::Malformed);
    }
    text.parse().map_err(|_| RangeError::Malformed)
}

/// What to send for a blob GET of `size` bytes given its `Range` header, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RangeOutcome {
    /// 200 with the whole blob (no header, or one that is ignored as RFC 9110 allows).
    Full,
    /// 206 with this range and a `Content-Range` header.
    Partial(ByteRange),
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Decides between 200, 206 and 416 for a blob of `size` bytes.
pub fn evaluate(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(header) = header else {
        return RangeOutcome::Full;
    };
    match RangeSpec::parse(header) {
        Ok(spec) => spec
            .resolve(size)
            .map_or(RangeOutcome::Unsatisfiable, RangeOutcome::Partial),
        Err(_) => RangeOutcome::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            RangeSpec::parse("bytes=0-99"),
            Ok(RangeSpec::Bounded { first: 0, last: 99 })
        );
        assert_eq!(
            RangeSpec::parse("bytes=100-"),
            Ok(RangeSpec::From { first: 100 })
        );
        assert_eq!(
            RangeSpec::parse("bytes=-5"),
            Ok(RangeSpec::Suffix { len: 5 })
        );
        assert_eq!(
            RangeSpec::parse(" Bytes = 1 - 2 "),
            Ok(RangeSpec::Bounded { first: 1, last: 2 })
        );
    }

    #[test]
    fn rejects_malformed_ranges() {
        let cases: &[(&str, RangeError)] = &[
            ("items=0-1", RangeError::NotBytes),
            ("bytes=0-1,5-6", RangeError::MultipleRanges),
            ("bytes=-", RangeError::Malformed),
            ("bytes=a-b", RangeError::Malformed),
            ("bytes=+1-2", RangeError::Malformed),
            ("bytes=1", RangeError::Malformed),
            ("bytes", RangeError::Malformed),
            ("bytes=99999999999999999999-", RangeError::Malformed),
            ("bytes=5-1", RangeError::Inverted),
        ];
        for (input, expected) in cases {
            assert_eq!(RangeSpec::parse(input), Err(*expected), "input {input:?}");
        }
    }

    #[test]
    fn resolves_against_size() {
        assert_eq!(evaluate(None, 10), RangeOutcome::Full);
        assert_eq!(
            evaluate(Some("bytes=2-4"), 10),
            RangeOutcome::Partial(ByteRange { first: 2, last: 4 })
        );
        assert_eq!(
            evaluate(Some("bytes=2-400"), 10),
            RangeOutcome::Partial(ByteRange { first: 2, last: 9 })
        );
        assert_eq!(
            evaluate(Some("bytes=-3"), 10),
            RangeOutcome::Partial(ByteRange { first: 7, last: 9 })
        );
        assert_eq!(
            evaluate(Some("bytes=-30"), 10),
            RangeOutcome::Partial(ByteRange { first: 0, last: 9 })
        );
        assert_eq!(evaluate(Some("bytes=10-"), 10), RangeOutcome::Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=-0"), 10), RangeOutcome::Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=0-0"), 0), RangeOutcome::Unsatisfiable);
        assert_eq!(evaluate(Some("garbage"), 10), RangeOutcome::Full);
        let r = ByteRange { first: 2, last: 4 };
        assert_eq!(r.content_range(10).to_string(), "bytes 2-4/10");
        assert_eq!(ContentRange::unsatisfied(10).to_string(), "bytes */10");
    }

    proptest! {
        #[test]
        fn resolved_ranges_stay_inside(header in "\\PC{0,30}|bytes=[0-9]{0,4}-[0-9]{0,4}", size in 0u64..5000) {
            if let RangeOutcome::Partial(r) = evaluate(Some(&header), size) {
                prop_assert!(r.first <= r.last && r.last < size);
                prop_assert!(r.len() <= size);
            }
        }
    }
}
