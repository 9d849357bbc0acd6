//! Content addressing: the [`Digest`] of a blob or manifest, its text form, and a streaming
//! verifier that checks bytes against an expected digest as they pass.
//!
//! Only `sha256` is accepted today. The OCI grammar allows other algorithms; a well-formed digest
//! of another algorithm is rejected with [`DigestError::UnsupportedAlgorithm`] so callers can tell
//! "not supported" from "garbage".

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Length in bytes of a SHA-256 digest.
pub const SHA256_LEN: usize = 32;
/// Length of the text form `sha256:<64 hex>`.
pub const SHA256_TEXT_LEN: usize = 7 + 2 * SHA256_LEN;
/// Longest algorithm name accepted by [`Digest::parse`] before it gives up (OCI sets no limit;
/// this bounds the work done on hostile input).
pub const ALGORITHM_LEN_MAX: usize = 32;

/// A content digest: the algorithm and its output bytes.
///
/// Construct one with [`Digest::parse`] from text, [`Digest::sha256`] from bytes you hold, or
/// [`Verifier`] while bytes stream past. Ordering and equality are by algorithm then bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest {
    algorithm: Algorithm,
    bytes: [u8; SHA256_LEN],
}

/// The hash algorithms Pyrsia addresses content with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256, the OCI default and the only one registries must support.
    Sha256,
}

impl Algorithm {
    /// The algorithm's name as it appears before the `:` in a digest string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
        }
    }
}

/// Why a digest string was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DigestError {
    /// No `algorithm:` prefix.
    MissingAlgorithm,
    /// The algorithm part breaks the OCI grammar (`[a-z0-9]+([+._-][a-z0-9]+)*`).
    InvalidAlgorithm,
    /// A well-formed algorithm that Pyrsia does not implement (e.g. `sha512`).
    UnsupportedAlgorithm,
    /// The encoded part has the wrong length for the algorithm.
    WrongLength {
        /// Characters found after the `:`.
        found: usize,
    },
    /// A character outside lowercase hex in the encoded part.
    InvalidHex {
        /// Byte offset of the first bad character within the whole string.
        position: usize,
    },
}

impl DigestError {
    /// A short static description, suitable for an OCI error message.
    pub const fn reason(&self) -> &'static str {
        match self {
            DigestError::MissingAlgorithm => "digest has no algorithm prefix",
            DigestError::InvalidAlgorithm => "digest algorithm is malformed",
            DigestError::UnsupportedAlgorithm => "digest algorithm is not supported",
            DigestError::WrongLength { .. } => "digest has the wrong length",
            DigestError::InvalidHex { .. } => "digest is not lowercase hex",
        }
    }
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::WrongLength { found } => {
                write!(f, "{} ({found} characters, expected 64)", self.reason())
            }
            DigestError::InvalidHex { position } => {
                write!(f, "{} (at byte {position})", self.reason())
            }
            other => f.write_str(other.reason()),
        }
    }
}

impl core::error::Error for DigestError {}

impl Digest {
    /// Wraps raw SHA-256 output. Use when the bytes come from a trusted hash computation
    /// (a [`Verifier`], a Merkle tree); use [`Digest::parse`] for text from outside.
    pub const fn from_sha256_bytes(bytes: [u8; SHA256_LEN]) -> Self {
        Digest {
            algorithm: Algorithm::Sha256,
            bytes,
        }
    }

    /// Hashes `data` in one go. For data that arrives in pieces, use [`Hasher`].
    pub fn sha256(data: &[u8]) -> Self {
        let mut hasher = Hasher::new();
        hasher.update(data);
        hasher.finish()
    }

    /// Parses `sha256:<64 lowercase hex>`. Anything else is a typed [`DigestError`].
    pub fn parse(text: &str) -> Result<Self, DigestError> {
        let (algorithm, encoded) = text.split_once(':').ok_or(DigestError::MissingAlgorithm)?;
        check_algorithm_grammar(algorithm)?;
        if algorithm != Algorithm::Sha256.as_str() {
            return Err(DigestError::UnsupportedAlgorithm);
        }
        if encoded.len() != 2 * SHA256_LEN {
            return Err(DigestError::WrongLength {
                found: encoded.len(),
            });
        }
        let offset = algorithm.len() + 1;
        let mut bytes = [0u8; SHA256_LEN];
        let hex = encoded.as_bytes();
        for (i, byte) in bytes.iter_mut().enumerate() {
            let hi = hex_value(hex[2 * i]).ok_or(DigestError::InvalidHex {
                position: offset + 2 * i,
            })?;
            let lo = hex_value(hex[2 * i + 1]).ok_or(DigestError::InvalidHex {
                position: offset + 2 * i + 1,
            })?;
            *byte = (hi << 4) | lo;
        }
        Ok(Digest::from_sha256_bytes(bytes))
    }

    /// The hash algorithm.
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw hash output.
    pub const fn as_bytes(&self) -> &[u8; SHA256_LEN] {
        &self.bytes
    }

    /// The lowercase hex of the hash output, without the algorithm: the file name a store uses.
    pub fn hex(&self) -> HexBuf {
        let mut out = [0u8; 2 * SHA256_LEN];
        for (i, b) in self.bytes.iter().enumerate() {
            out[2 * i] = HEX[(b >> 4) as usize];
            out[2 * i + 1] = HEX[(b & 0x0f) as usize];
        }
        HexBuf(out)
    }

    /// Starts a streaming check of bytes against this digest.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(*self)
    }
}

/// The 64 lowercase hex characters of a SHA-256 digest, on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexBuf([u8; 2 * SHA256_LEN]);

impl HexBuf {
    /// The hex text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into the buffer.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for HexBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HexBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// `algorithm-component (algorithm-separator algorithm-component)*` with components
/// `[a-z0-9]+` and separators `[+._-]`.
fn check_algorithm_grammar(algorithm: &str) -> Result<(), DigestError> {
    if algorithm.is_empty() {
        return Err(DigestError::MissingAlgorithm);
    }
    if algorithm.len() > ALGORITHM_LEN_MAX {
        return Err(DigestError::InvalidAlgorithm);
    }
    let mut previous_was_separator = true;
    for c in algorithm.bytes() {
        match c {
            b'a'..=b'z' | b'0'..=b'9' => previous_was_separator = false,
            b'+' | b'.' | b'_' | b'-' if !previous_was_separator => previous_was_separator = true,
            _ => return Err(DigestError::InvalidAlgorithm),
        }
    }
    if previous_was_separator {
        return Err(DigestError::InvalidAlgorithm);
    }
    Ok(())
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Digest {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "sha256:{=[u8]:02x}", self.bytes)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

/// An incremental SHA-256 computation for data that arrives in pieces.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    /// Starts an empty hash.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }

    /// How many bytes have been fed so far.
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been fed yet.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ends the computation and returns the digest.
    pub fn finish(self) -> Digest {
        Digest::from_sha256_bytes(self.inner.finalize().into())
    }
}

/// The outcome of a [`Verifier`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Verification {
    /// The bytes hash to the expected digest.
    Match,
    /// The bytes hash to something else; `actual` is what they hash to.
    Mismatch {
        /// The digest of the bytes that were fed.
        actual: Digest,
    },
}

/// Checks a stream of bytes against an expected digest without holding them.
///
/// Feed every chunk with [`Verifier::update`] as it passes (to a client, to a temp file), then
/// call [`Verifier::finish`]: only on [`Verification::Match`] may the bytes be stored or served
/// under the digest's name.
#[derive(Clone)]
pub struct Verifier {
    expected: Digest,
    hasher: Hasher,
}

impl Verifier {
    /// Starts checking against `expected`.
    pub fn new(expected: Digest) -> Self {
        Verifier {
            expected,
            hasher: Hasher::new(),
        }
    }

    /// The digest the bytes must match.
    pub const fn expected(&self) -> &Digest {
        &self.expected
    }

    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
    }

    /// Bytes fed so far.
    pub const fn bytes_seen(&self) -> u64 {
        self.hasher.len()
    }

    /// Ends the check.
    pub fn finish(self) -> Verification {
        let actual = self.hasher.finish();
        if actual == self.expected {
            Verification::Match
        } else {
            Verification::Mismatch { actual }
        }
    }
}

/// How many leading bytes of a blob still being downloaded may be served before its digest
/// has been checked: those written so far, but never the last one, so that no reader ever
/// holds a complete body that failed verification. Once [`Verifier::finish`] gave
/// [`Verification::Match`], all `size` bytes may be served. Call it wherever bytes of a
/// download in progress are served (to clients following it, to peers asking for pieces).
pub fn servable_before_verification(size: u64, written: u64) -> u64 {
    written.min(size.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hashes_known_values() {
        assert_eq!(Digest::sha256(b"").to_string(), EMPTY);
        assert_eq!(
            Digest::sha256(b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parses_and_formats() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex().as_str(), &EMPTY[7..]);
    }

    #[test]
    fn rejects_malformed_digests_with_typed_errors() {
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        let cases: &[(&str, DigestError)] = &[
            ("", DigestError::MissingAlgorithm),
            ("e3b0c442", DigestError::MissingAlgorithm),
            (":abcd", DigestError::MissingAlgorithm),
            ("SHA256:00", DigestError::InvalidAlgorithm),
            ("sha-:00", DigestError::InvalidAlgorithm),
            ("sha..256:00", DigestError::InvalidAlgorithm),
            ("sha512:00", DigestError::UnsupportedAlgorithm),
            ("sha256:", DigestError::WrongLength { found: 0 }),
            ("sha256:abc", DigestError::WrongLength { found: 3 }),
            (&upper, DigestError::InvalidHex { position: 7 }),
        ];
        for (input, expected) in cases {
            assert_eq!(Digest::parse(input), Err(*expected), "input {input:?}");
        }
        let long = alloc_string(EMPTY, "0");
        assert_eq!(
            Digest::parse(&long),
            Err(DigestError::WrongLength { found: 65 })
        );
        let nul = EMPTY.replacen('e', "\0", 2);
        assert!(matches!(
            Digest::parse(&nul),
            Err(DigestError::InvalidHex { .. })
        ));
        let traversal = "sha256:../../../../etc/passwd/0000000000000000000000000000000000000";
        assert!(Digest::parse(traversal).is_err());
    }

    fn alloc_string(a: &str, b: &str) -> String {
        let mut s = String::from(a);
        s.push_str(b);
        s
    }

    #[test]
    fn verifier_matches_and_mismatches() {
        let data = b"hello, pyrsia";
        let digest = Digest::sha256(data);
        let mut v = digest.verifier();
        v.update(&data[..5]);
        v.update(&data[5..]);
        assert_eq!(v.bytes_seen(), data.len() as u64);
        assert_eq!(v.finish(), Verification::Match);

        let mut v = digest.verifier();
        v.update(b"hello, pyrsiA");
        assert_eq!(
            v.finish(),
            Verification::Mismatch {
                actual: Digest::sha256(b"hello, pyrsiA")
            }
        );
    }

    proptest! {
        #[test]
        fn round_trips(bytes in any::<[u8; 32]>()) {
            let d = Digest::from_sha256_bytes(bytes);
            let text = d.to_string();
            prop_assert_eq!(text.len(), SHA256_TEXT_LEN);
            prop_assert_eq!(Digest::parse(&text), Ok(d));
        }

        #[test]
        fn never_panics_and_accepts_only_canonical(s in "\\PC{0,80}") {
            if let Ok(d) = Digest::parse(&s) {
                prop_assert_eq!(d.to_string(), s);
            }
        }

        #[test]
        fn chunking_does_not_change_the_hash(data in proptest::collection::vec(any::<u8>(), 0..2048), cut in 0usize..2048) {
            let cut = cut.min(data.len());
            let mut v = Digest::sha256(&data).verifier();
            v.update(&data[..cut]);
            v.update(&data[cut..]);
            prop_assert_eq!(v.finish(), Verification::Match);
        }
    }

    #[test]
    fn the_last_byte_waits_for_verification() {
        assert_eq!(servable_before_verification(100, 40), 40);
        assert_eq!(servable_before_verification(100, 99), 99);
        assert_eq!(servable_before_verification(100, 100), 99);
        assert_eq!(servable_before_verification(1, 1), 0);
        assert_eq!(servable_before_verification(0, 0), 0);
    }
}
