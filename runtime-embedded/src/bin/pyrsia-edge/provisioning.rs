//! The provisioning block a device is flashed with: the genesis entry it trusts, the current
//! time (the board has no battery-backed clock), what to prefetch, and flags. Little-endian:
//!
//! ```text
//! "PYPV" | version u32 = 1 | now u64 | flags u32 | wants u32 | genesis_len u32
//! | wants × 32-byte SHA-256 digests | genesis bytes
//! ```
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use pyrsia_core::digest::Digest;

/// Magic at the start of the block.
pub(crate) const MAGIC: &[u8; 4] = b"PYPV";
/// Format version.
pub(crate) const VERSION: u32 = 1;
/// Flag: exit (semihosting) after the first LAN session ends.
pub(crate) const EXIT_AFTER_SESSION: u32 = 1;
/// Most digests to prefetch.
pub(crate) const MAX_WANTS: usize = 32;

const HEADER_LEN: usize = 28;

/// A parsed provisioning block.
pub(crate) struct Provisioning<'a> {
    /// Unix seconds when the device was started.
    pub(crate) now: u64,
    /// [`EXIT_AFTER_SESSION`] and future flags.
    pub(crate) flags: u32,
    /// Digests to prefetch.
    pub(crate) wants: heapless::Vec<Digest, MAX_WANTS>,
    /// The genesis entry.
    pub(crate) genesis: &'a [u8],
}

impl<'a> Provisioning<'a> {
    /// Parses the block at the start of `bytes`, or `None` if it is missing or malformed.
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
            return None;
        }
        let word =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        if word(4) != VERSION {
            return None;
        }
        let now = u64::from(word(8)) | (u64::from(word(12)) << 32);
        let flags = word(16);
        let count = word(20) as usize;
        let genesis_len = word(24) as usize;
        let wants_end = HEADER_LEN.checked_add(count.checked_mul(32)?)?;
        let end = wants_end.checked_add(genesis_len)?;
        if count > MAX_WANTS || end > bytes.len() {
            return None;
        }
        let mut wants = heapless::Vec::new();
        for chunk in bytes[HEADER_LEN..wants_end].chunks_exact(32) {
            wants
                .push(Digest::from_sha256_bytes(chunk.try_into().ok()?))
                .ok()?;
        }
        Some(Provisioning {
            now,
            flags,
            wants,
            genesis: &bytes[wants_end..end],
        })
    }
}
