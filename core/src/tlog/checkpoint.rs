//! Checkpoints as signed notes (the C2SP `tlog-checkpoint` and `signed-note` formats):
//!
//! ```text
//! pyrsia.dev/log/example          ← origin: names the log
//! 42                              ← tree size
//! 3q2+7w…=                        ← base64 root hash
//! timestamp 1795694400            ← Unix seconds when it was signed (an extension line)
//!                                 ← blank line
//! — 7c0f…e1 AAAAAKy…              ← one line per cosignature: key id (hex), base64(key hint ‖ sig)
//! ```
//!
//! Every member signs the same body bytes (everything above the blank line) for
//! [`Purpose::Checkpoint`]; a checkpoint is final when a quorum of members of its epoch have. Parsing
//! and formatting need no allocator: the light client on the edge cache reads notes as text.

use core::fmt;

use base64ct::{Base64, Encoding};

use super::hash::Hash;
use crate::identity::{KeyId, PublicKey, Purpose, SecretKey, Signature};

/// The longest origin line accepted.
pub const MAX_ORIGIN_LEN: usize = 128;
/// The most cosignatures one note carries (at least the largest quorum of an epoch).
pub const MAX_COSIGNATURES: usize = 64;
/// The longest checkpoint body: origin, size, root and timestamp lines.
pub const MAX_BODY_LEN: usize = MAX_ORIGIN_LEN + 1 + 20 + 1 + 44 + 1 + 10 + 20 + 1;
/// One signature line: `— ` (4 bytes), 64 hex, a space, base64 of 68 bytes (92), newline.
const SIGNATURE_LINE_LEN: usize = 4 + 64 + 1 + 92 + 1;
/// The longest signed note accepted: a body, the blank line and every cosignature.
pub const MAX_NOTE_LEN: usize = MAX_BODY_LEN + 1 + MAX_COSIGNATURES * SIGNATURE_LINE_LEN;

const SIGNATURE_PREFIX: &str = "\u{2014} ";
const TIMESTAMP_PREFIX: &str = "timestamp ";

/// The signed statement: "the log named `origin` had `size` entries with this `root` at
/// `timestamp`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (from the genesis entry); a checkpoint of another log never verifies.
    pub origin: heapless::String<MAX_ORIGIN_LEN>,
    /// Number of entries in the tree.
    pub size: u64,
    /// RFC 9162 root hash of those entries.
    pub root: Hash,
    /// Unix seconds when the members signed it; the light client's freshness check reads it.
    pub timestamp: u64,
}

/// One member's signature over a checkpoint body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The signer's key id; the verifier looks the key up in the epoch's member set.
    pub key_id: KeyId,
    /// Signature over the body for [`Purpose::Checkpoint`].
    pub signature: Signature,
}

/// A checkpoint with the cosignatures collected so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What was signed.
    pub checkpoint: Checkpoint,
    /// Who signed it, in the order they appear in the note; at most one per key id.
    pub cosignatures: heapless::Vec<Cosignature, MAX_COSIGNATURES>,
}

/// Why a note was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NoteError {
    /// Longer than [`MAX_NOTE_LEN`] or a field longer than its maximum.
    TooLong,
    /// A line is missing, extra or out of order.
    Malformed,
    /// The origin is empty or contains a control character.
    BadOrigin,
    /// The size or timestamp is not a canonical decimal number.
    BadNumber,
    /// The root or a signature is not canonical base64 of the right length.
    BadBase64,
    /// A signature line's key hint does not match its key id.
    KeyHintMismatch,
    /// The same key signed twice in one note.
    DuplicateSigner,
    /// More than [`MAX_COSIGNATURES`] signatures.
    TooManySignatures,
}

impl fmt::Display for NoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoteError::TooLong => "checkpoint note is too long",
            NoteError::Malformed => "checkpoint note lines are malformed",
            NoteError::BadOrigin => "checkpoint origin is empty or has control characters",
            NoteError::BadNumber => "checkpoint size or timestamp is not a canonical number",
            NoteError::BadBase64 => "checkpoint root or signature is not valid base64",
            NoteError::KeyHintMismatch => "signature key hint does not match its key id",
            NoteError::DuplicateSigner => "one key signed the note twice",
            NoteError::TooManySignatures => "too many signatures on one note",
        })
    }
}

impl core::error::Error for NoteError {}

impl Checkpoint {
    /// A checkpoint of `origin` at `size` with `root`, signed at `timestamp` (Unix seconds).
    pub fn new(origin: &str, size: u64, root: Hash, timestamp: u64) -> Result<Self, NoteError> {
        Ok(Checkpoint {
            origin: parse_origin(origin)?,
            size,
            root,
            timestamp,
        })
    }

    /// The exact bytes every member signs.
    pub fn body(&self) -> heapless::String<MAX_BODY_LEN> {
        let mut out = heapless::String::new();
        // Cannot overflow: every field is bounded and MAX_BODY_LEN is their sum.
        let _ = self.write_body(&mut out);
        out
    }

    fn write_body(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let mut root = [0u8; 44];
        let root = Base64::encode(&self.root, &mut root).map_err(|_| fmt::Error)?;
        write!(
            out,
            "{}\n{}\n{}\n{TIMESTAMP_PREFIX}{}\n",
            self.origin, self.size, root, self.timestamp
        )
    }

    /// Signs the body with `key`.
    pub fn sign(&self, key: &SecretKey) -> Cosignature {
        Cosignature {
            key_id: key.public().key_id(),
            signature: key.sign(Purpose::Checkpoint, self.body().as_bytes()),
        }
    }

    /// Checks `cosignature` against `key` (which the caller found by the key id).
    pub fn verify(&self, key: &PublicKey, cosignature: &Cosignature) -> bool {
        key.key_id() == cosignature.key_id
            && key
                .verify(
                    Purpose::Checkpoint,
                    self.body().as_bytes(),
                    &cosignature.signature,
                )
                .is_ok()
    }
}

impl SignedCheckpoint {
    /// A checkpoint with no signatures yet.
    pub fn unsigned(checkpoint: Checkpoint) -> Self {
        SignedCheckpoint {
            checkpoint,
            cosignatures: heapless::Vec::new(),
        }
    }

    /// Adds a cosignature, replacing none: a second one from the same key is refused.
    pub fn add(&mut self, cosignature: Cosignature) -> Result<(), NoteError> {
        if self
            .cosignatures
            .iter()
            .any(|c| c.key_id == cosignature.key_id)
        {
            return Err(NoteError::DuplicateSigner);
        }
        self.cosignatures
            .push(cosignature)
            .map_err(|_| NoteError::TooManySignatures)
    }

    /// Parses a signed note. Only the syntax is checked here; whose signatures count is the
    /// light client's decision ([`crate::light`]).
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        let view = NoteView::parse(note)?;
        let mut signed = SignedCheckpoint::unsigned(view.checkpoint.clone());
        for cosignature in view.cosignatures() {
            signed.add(cosignature)?;
        }
        Ok(signed)
    }

    /// Writes the note in its text form (what [`SignedCheckpoint::parse`] reads back).
    pub fn write_to(&self, out: &mut impl fmt::Write) -> fmt::Result {
        self.checkpoint.write_body(out)?;
        out.write_char('\n')?;
        for c in &self.cosignatures {
            let mut blob = [0u8; 68];
            blob[..4].copy_from_slice(&c.key_id.0[..4]);
            blob[4..].copy_from_slice(&c.signature.to_bytes());
            let mut text = [0u8; 92];
            let text = Base64::encode(&blob, &mut text).map_err(|_| fmt::Error)?;
            out.write_str(SIGNATURE_PREFIX)?;
            for b in c.key_id.0 {
                write!(out, "{b:02x}")?;
            }
            writeln!(out, " {text}")?;
        }
        Ok(())
    }
}

/// A signed note read in place: the checkpoint parsed, the cosignature lines kept as text and
/// decoded one at a time. What a device verifies with: a [`SignedCheckpoint`] holds up to
/// [`MAX_COSIGNATURES`] signatures at once (6 KiB), this holds the body and a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteView<'a> {
    /// What was signed.
    pub checkpoint: Checkpoint,
    /// The signature lines, newline-separated, syntax already checked.
    signatures: &'a str,
}

impl<'a> NoteView<'a> {
    /// Parses a signed note, checking the syntax of every line (as [`SignedCheckpoint::parse`]
    /// does: the same errors for the same notes).
    pub fn parse(note: &'a str) -> Result<Self, NoteError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLong);
        }
        let (body, signatures) = note.split_once("\n\n").ok_or(NoteError::Malformed)?;
        let mut lines = body.split('\n');
        let origin = lines.next().ok_or(NoteError::Malformed)?;
        let size = parse_number(lines.next().ok_or(NoteError::Malformed)?)?;
        let root = parse_root(lines.next().ok_or(NoteError::Malformed)?)?;
        let timestamp = lines
            .next()
            .and_then(|l| l.strip_prefix(TIMESTAMP_PREFIX))
            .ok_or(NoteError::Malformed)?;
        let timestamp = parse_number(timestamp)?;
        if lines.next().is_some() {
            return Err(NoteError::Malformed);
        }
        let checkpoint = Checkpoint::new(origin, size, root, timestamp)?;
        let signatures = signatures.strip_suffix('\n').ok_or(NoteError::Malformed)?;
        if signatures.is_empty() {
            return Err(NoteError::Malformed);
        }
        for (i, line) in signatures.split('\n').enumerate() {
            if i == MAX_COSIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            parse_signature_line(line)?;
            // Key ids are canonical lowercase hex: equal ids are equal text.
            if signatures
                .split('\n')
                .take(i)
                .any(|earlier| signer_text(earlier) == signer_text(line))
            {
                return Err(NoteError::DuplicateSigner);
            }
        }
        Ok(NoteView {
            checkpoint,
            signatures,
        })
    }

    /// The cosignatures, decoded as they are read.
    pub fn cosignatures(&self) -> impl Iterator<Item = Cosignature> + 'a {
        self.signatures
            .split('\n')
            .filter_map(|line| parse_signature_line(line).ok())
    }
}

/// The key-id text of a signature line.
fn signer_text(line: &str) -> &str {
    line.strip_prefix(SIGNATURE_PREFIX)
        .and_then(|rest| rest.split_once(' '))
        .map_or("", |(name, _)| name)
}

impl fmt::Display for SignedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

fn parse_origin(origin: &str) -> Result<heapless::String<MAX_ORIGIN_LEN>, NoteError> {
    if origin.is_empty() || origin.chars().any(char::is_control) {
        return Err(NoteError::BadOrigin);
    }
    heapless::String::try_from(origin).map_err(|_| NoteError::TooLong)
}

/// A decimal with no sign, no leading zero (except "0") and no overflow.
fn parse_number(text: &str) -> Result<u64, NoteError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(NoteError::BadNumber);
    }
    text.parse().map_err(|_| NoteError::BadNumber)
}

fn parse_root(text: &str) -> Result<Hash, NoteError> {
    let mut root = [0u8; 32];
    let decoded = Base64::decode(text, &mut root).map_err(|_| NoteError::BadBase64)?;
    if decoded.len() != 32 {
        return Err(NoteError::BadBase64);
    }
    Ok(root)
}

fn parse_signature_line(line: &str) -> Result<Cosignature, NoteError> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(NoteError::Malformed)?;
    let (name, blob) = rest.split_once(' ').ok_or(NoteError::Malformed)?;
    let key_id = parse_key_id(name)?;
    let mut bytes = [0u8; 68];
    let decoded = Base64::decode(blob, &mut bytes).map_err(|_| NoteError::BadBase64)?;
    if decoded.len() != 68 {
        return Err(NoteError::BadBase64);
    }
    if bytes[..4] != key_id.0[..4] {
        return Err(NoteError::KeyHintMismatch);
    }
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&bytes[4..]);
    Ok(Cosignature {
        key_id,
        signature: Signature::from_bytes(&signature),
    })
}

/// A key id in lowercase hex (64 characters), as signature lines and the CLI show it.
pub fn parse_key_id(text: &str) -> Result<KeyId, NoteError> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return Err(NoteError::Malformed);
    }
    let mut id = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or(NoteError::Malformed)?;
        let lo = hex_value(pair[1]).ok_or(NoteError::Malformed)?;
        id[i] = hi << 4 | lo;
    }
    Ok(KeyId(id))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}
