//! Checking a Maven artifact against the checksum file its repository publishes next to it:
//! which checksum files to ask for and in which order ([`CHECKSUMS_TRUSTED`]; `.md5` is never
//! trusted), reading one ([`ExpectedChecksum::parse`]), and hashing the artifact's bytes as
//! they stream ([`ChecksumChecker`]).

use core::fmt;

use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};

use super::Checksum;

/// The checksum files a mirror asks for, strongest first: the first the repository has is the
/// one an artifact is checked against (Maven Central has `.sha1` for every file, `.sha256` and
/// `.sha512` for newer ones).
pub const CHECKSUMS_TRUSTED: [Checksum; 3] = [Checksum::Sha512, Checksum::Sha256, Checksum::Sha1];

impl Checksum {
    /// The checksum file's suffix (`.sha1`).
    pub const fn suffix(&self) -> &'static str {
        match self {
            Checksum::Md5 => ".md5",
            Checksum::Sha1 => ".sha1",
            Checksum::Sha256 => ".sha256",
            Checksum::Sha512 => ".sha512",
        }
    }

    /// The digest's length in bytes.
    pub const fn digest_len(&self) -> usize {
        match self {
            Checksum::Md5 => 16,
            Checksum::Sha1 => 20,
            Checksum::Sha256 => 32,
            Checksum::Sha512 => 64,
        }
    }
}

/// Why a checksum file was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ChecksumError {
    /// Not a hex digest of the algorithm's length (first token of the file).
    Malformed,
    /// An algorithm too weak to check anything with (`.md5`).
    Untrusted,
}

impl fmt::Display for ChecksumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChecksumError::Malformed => "checksum file does not hold a hex digest of its length",
            ChecksumError::Untrusted => "md5 checksums are not trusted",
        })
    }
}

impl core::error::Error for ChecksumError {}

/// The digest a checksum file gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedChecksum {
    algorithm: Checksum,
    digest: [u8; 64],
}

impl ExpectedChecksum {
    /// Reads a checksum file of `algorithm`: its first whitespace-separated token is the hex
    /// digest (some tools append the file name after it).
    pub fn parse(algorithm: Checksum, text: &[u8]) -> Result<Self, ChecksumError> {
        if algorithm == Checksum::Md5 {
            return Err(ChecksumError::Untrusted);
        }
        let token = text
            .split(|c| c.is_ascii_whitespace())
            .find(|t| !t.is_empty())
            .ok_or(ChecksumError::Malformed)?;
        if token.len() != 2 * algorithm.digest_len() {
            return Err(ChecksumError::Malformed);
        }
        let mut digest = [0u8; 64];
        for (i, pair) in token.chunks(2).enumerate() {
            let hex = |c: u8| (c as char).to_digit(16).ok_or(ChecksumError::Malformed);
            digest[i] = u8::try_from(hex(pair[0])? * 16 + hex(pair[1])?)
                .map_err(|_| ChecksumError::Malformed)?;
        }
        Ok(ExpectedChecksum { algorithm, digest })
    }

    /// The algorithm.
    pub const fn algorithm(&self) -> Checksum {
        self.algorithm
    }

    /// A checker to feed the artifact's bytes to.
    pub fn checker(&self) -> ChecksumChecker {
        // `parse` refuses md5, the one algorithm without a hasher.
        let hasher = Hasher::new(self.algorithm).unwrap_or(Hasher::Sha1(Sha1::new()));
        ChecksumChecker {
            hasher,
            expected: *self,
        }
    }
}

enum Hasher {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn new(algorithm: Checksum) -> Option<Hasher> {
        match algorithm {
            Checksum::Sha512 => Some(Hasher::Sha512(Sha512::new())),
            Checksum::Sha256 => Some(Hasher::Sha256(Sha256::new())),
            Checksum::Sha1 => Some(Hasher::Sha1(Sha1::new())),
            Checksum::Md5 => None,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest, in the first bytes of the returned array; returns its length too.
    fn finalize(self) -> ([u8; 64], usize) {
        let mut out = [0u8; 64];
        let len = match self {
            Hasher::Sha1(h) => copy_into(&mut out, &h.finalize()),
            Hasher::Sha256(h) => copy_into(&mut out, &h.finalize()),
            Hasher::Sha512(h) => copy_into(&mut out, &h.finalize()),
        };
        (out, len)
    }
}

fn copy_into(out: &mut [u8; 64], digest: &[u8]) -> usize {
    out[..digest.len()].copy_from_slice(digest);
    digest.len()
}

/// Makes the checksum file of bytes this node holds: what it serves as the `.sha1`, `.sha256`
/// or `.sha512` of an artifact it verified, when the upstream's own file is not to be trusted
/// or cannot be reached.
pub struct ChecksumWriter {
    hasher: Hasher,
}

impl ChecksumWriter {
    /// A writer for `algorithm`; `None` for md5, which this node neither trusts nor makes.
    pub fn new(algorithm: Checksum) -> Option<ChecksumWriter> {
        Hasher::new(algorithm).map(|hasher| ChecksumWriter { hasher })
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// The checksum file's content: the lower-case hex digest, as Maven writes it.
    pub fn finish(self) -> heapless::String<128> {
        let (digest, len) = self.hasher.finalize();
        let mut hex = heapless::String::new();
        for byte in &digest[..len] {
            // 128 characters hold the longest digest, sha512's.
            let _ = fmt::Write::write_fmt(&mut hex, format_args!("{byte:02x}"));
        }
        hex
    }
}

/// Hashes an artifact's bytes as they stream and tells whether they match the checksum file.
pub struct ChecksumChecker {
    hasher: Hasher,
    expected: ExpectedChecksum,
}

impl ChecksumChecker {
    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// Whether the bytes fed match the expected digest.
    pub fn matches(self) -> bool {
        let len = self.expected.algorithm.digest_len();
        let (digest, actual_len) = self.hasher.finalize();
        actual_len == len && digest[..len] == self.expected.digest[..len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> alloc::string::String {
        bytes.iter().map(|b| alloc::format!("{b:02x}")).collect()
    }

    #[test]
    fn each_trusted_checksum_checks_the_bytes_it_was_made_of() {
        let data = b"a jar's bytes";
        let sums = [
            (Checksum::Sha1, hex(&Sha1::digest(data))),
            (Checksum::Sha256, hex(&Sha256::digest(data))),
            (Checksum::Sha512, hex(&Sha512::digest(data))),
        ];
        for (algorithm, sum) in sums {
            // As Maven writes it, and with a file name after it.
            for text in [sum.clone(), alloc::format!("{sum}  lib-1.0.jar\n")] {
                let expected = ExpectedChecksum::parse(algorithm, text.as_bytes()).unwrap();
                let mut ok = expected.checker();
                ok.update(&data[..4]);
                ok.update(&data[4..]);
                assert!(ok.matches(), "{algorithm:?}");
                let mut tampered = expected.checker();
                tampered.update(b"a jar's bytez");
                assert!(!tampered.matches(), "{algorithm:?}");
            }
        }
    }

    #[test]
    fn a_written_checksum_file_checks_the_bytes_it_was_made_of() {
        let data = b"a jar's bytes";
        assert!(ChecksumWriter::new(Checksum::Md5).is_none());
        for algorithm in [Checksum::Sha1, Checksum::Sha256, Checksum::Sha512] {
            let mut writer = ChecksumWriter::new(algorithm).unwrap();
            writer.update(data);
            let text = writer.finish();
            assert_eq!(text.len(), 2 * algorithm.digest_len());
            let mut checker = ExpectedChecksum::parse(algorithm, text.as_bytes())
                .unwrap()
                .checker();
            checker.update(data);
            assert!(checker.matches(), "{algorithm:?}");
        }
        let mut sha1 = ChecksumWriter::new(Checksum::Sha1).unwrap();
        sha1.update(b"abc");
        assert_eq!(
            sha1.finish().as_str(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn malformed_and_md5_checksum_files_are_refused() {
        assert_eq!(
            ExpectedChecksum::parse(Checksum::Md5, b"d41d8cd98f00b204e9800998ecf8427e"),
            Err(ChecksumError::Untrusted)
        );
        for text in [
            &b""[..],
            b"   \n",
            b"zz",
            &[b'a'; 39],
            &[b'g'; 40],
            &[b'a'; 41],
        ] {
            assert_eq!(
                ExpectedChecksum::parse(Checksum::Sha1, text),
                Err(ChecksumError::Malformed),
                "{text:?}"
            );
        }
    }
}
