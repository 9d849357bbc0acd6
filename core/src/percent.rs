//! Percent-decoding of query values into a fixed-capacity buffer (RFC 3986 §2.1), for every
//! frontend that reads query parameters.

use heapless::String;

/// Why a percent-encoded value could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PercentError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded value does not fit the buffer.
    TooLong,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

/// Decodes `%XY` escapes in `encoded` into a string of at most `N` bytes.
pub fn decode<const N: usize>(encoded: &str) -> Result<String<N>, PercentError> {
    let mut bytes: heapless::Vec<u8, N> = heapless::Vec::new();
    let raw = encoded.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let byte = if raw[i] == b'%' {
            let hi = raw.get(i + 1).and_then(|c| hex(*c));
            let lo = raw.get(i + 2).and_then(|c| hex(*c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PercentError::BadEscape);
            };
            i += 3;
            (hi << 4) | lo
        } else {
            i += 1;
            raw[i - 1]
        };
        bytes.push(byte).map_err(|_| PercentError::TooLong)?;
    }
    String::from_utf8(bytes).map_err(|_| PercentError::NotUtf8)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes() {
        assert_eq!(decode::<32>("localhost%3A5000").unwrap(), "localhost:5000");
        assert_eq!(decode::<32>("plain").unwrap(), "plain");
        assert_eq!(decode::<32>("%2e%2E").unwrap(), "..");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode::<32>("%"), Err(PercentError::BadEscape));
        assert_eq!(decode::<32>("%4"), Err(PercentError::BadEscape));
        assert_eq!(decode::<32>("%zz"), Err(PercentError::BadEscape));
        assert_eq!(decode::<4>("abcde"), Err(PercentError::TooLong));
        assert_eq!(decode::<4>("%ff"), Err(PercentError::NotUtf8));
    }
}
