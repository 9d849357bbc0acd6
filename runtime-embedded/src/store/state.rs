//! The trust journal: the checkpoint the cache trusts (size, root, newest timestamp), its note
//! and the genesis inclusion proof for it, kept in two flash banks used in turn.
//!
//! Each save appends a sealed record to the current bank. When the bank is full the other one
//! is erased and written; the current bank keeps the previous record until then, so power loss
//! at any write or erase leaves the last saved state or the one before it, never nothing.
//! The newest valid record (highest sequence number) wins on open.

use embedded_storage::nor_flash::NorFlash;
use pyrsia_core::light::Trusted;
use pyrsia_core::tlog::Hash;
use pyrsia_core::tlog::checkpoint::MAX_NOTE_LEN;

use super::StoreError;
use super::record::{ALIGN, RecordWriter, SEAL_LEN, align_up, seal_holds};
use pyrsia_core::edge::MAX_PROOF_HASHES;

/// Bytes per bank; two banks sit at the start of the flash.
pub const STATE_BANK_LEN: u32 = 16 * 1024;

const MAGIC: u32 = u32::from_le_bytes(*b"PYS1");
const HEADER_LEN: u32 = ALIGN;
/// size, root, timestamp, note length, link length.
const FIXED_BODY_LEN: u32 = 8 + 32 + 8 + 2 + 2;
const MAX_BODY_LEN: u32 = FIXED_BODY_LEN + MAX_NOTE_LEN as u32 + 32 * MAX_PROOF_HASHES as u32;
const MAX_RECORD_LEN: u32 = HEADER_LEN + align_up(MAX_BODY_LEN) + SEAL_LEN;
const _: () = assert!(
    MAX_RECORD_LEN <= STATE_BANK_LEN,
    "a bank must hold the largest record"
);

/// Where the saved note and genesis link are, to read them back when serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedState {
    /// The trusted checkpoint.
    pub trusted: Trusted,
    /// Flash offset of the note text.
    pub note_at: u32,
    /// Its length.
    pub note_len: u16,
    /// Flash offset of the genesis inclusion proof (hashes).
    pub link_at: u32,
    /// How many hashes it has.
    pub link_hashes: u16,
}

/// The journal's position: the bank written now and where its next record goes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Journal {
    bank: u32,
    next: u32,
    seq: u32,
    saved: Option<SavedState>,
}

impl Journal {
    /// Scans both banks for the newest valid record.
    pub(crate) fn open<F: NorFlash>(flash: &mut F, scratch: &mut [u8]) -> Result<Self, StoreError> {
        let mut best: Option<(u32, u32, u32, SavedState)> = None; // seq, bank, next, state
        let mut ends = [0u32; 2];
        for bank in 0..2 {
            let start = bank * STATE_BANK_LEN;
            let mut at = start;
            while at + HEADER_LEN <= start + STATE_BANK_LEN {
                let mut header = [0u8; HEADER_LEN as usize];
                flash.read(at, &mut header).map_err(StoreError::flash)?;
                let magic = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default());
                let seq = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default());
                let len = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
                if header.iter().all(|&b| b == 0xFF) {
                    break; // Erased: the bank's next record goes here.
                }
                if magic != MAGIC || !(FIXED_BODY_LEN..=MAX_BODY_LEN).contains(&len) {
                    // Torn: nothing valid follows, and nothing may be written after it.
                    at = start + STATE_BANK_LEN;
                    break;
                }
                let end = at + HEADER_LEN + align_up(len) + SEAL_LEN;
                if end > start + STATE_BANK_LEN {
                    at = start + STATE_BANK_LEN;
                    break;
                }
                if seal_holds(flash, at, &header, len, scratch).map_err(StoreError::flash)? {
                    let state = read_body(flash, at + HEADER_LEN, len)?;
                    if best.is_none_or(|(s, ..)| seq.wrapping_sub(s) as i32 > 0) {
                        best = Some((seq, bank, end, state));
                    }
                }
                at = end;
            }
            ends[bank as usize] = at;
        }
        Ok(match best {
            Some((seq, bank, _, state)) => Journal {
                bank,
                next: ends[bank as usize],
                seq,
                saved: Some(state),
            },
            // Nothing saved: start bank 0 clean (erased before the first write).
            None => Journal {
                bank: 1,
                next: 2 * STATE_BANK_LEN,
                seq: 0,
                saved: None,
            },
        })
    }

    /// The newest saved state.
    pub(crate) fn saved(&self) -> Option<SavedState> {
        self.saved
    }

    /// Saves a new trusted state with its note and genesis link.
    pub(crate) fn save<F: NorFlash>(
        &mut self,
        flash: &mut F,
        trusted: Trusted,
        note: &str,
        genesis_link: &[Hash],
    ) -> Result<SavedState, StoreError> {
        if note.len() > MAX_NOTE_LEN || genesis_link.len() > MAX_PROOF_HASHES {
            return Err(StoreError::TooLarge);
        }
        let len = FIXED_BODY_LEN + note.len() as u32 + 32 * genesis_link.len() as u32;
        let record_len = HEADER_LEN + align_up(len) + SEAL_LEN;
        let bank_end = (self.bank + 1) * STATE_BANK_LEN;
        if self.next + record_len > bank_end {
            // Switch banks: erase the other one; this one keeps the previous record meanwhile.
            self.bank = 1 - self.bank;
            let start = self.bank * STATE_BANK_LEN;
            flash
                .erase(start, start + STATE_BANK_LEN)
                .map_err(StoreError::flash)?;
            self.next = start;
        }
        let at = self.next;
        let seq = self.seq.wrapping_add(1);
        let mut header = [0u8; HEADER_LEN as usize];
        header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..8].copy_from_slice(&seq.to_le_bytes());
        header[8..12].copy_from_slice(&len.to_le_bytes());
        let mut writer = RecordWriter::new(at);
        writer.write(flash, &header).map_err(StoreError::flash)?;
        writer
            .write(flash, &trusted.size.to_le_bytes())
            .map_err(StoreError::flash)?;
        writer
            .write(flash, &trusted.root)
            .map_err(StoreError::flash)?;
        writer
            .write(flash, &trusted.timestamp.to_le_bytes())
            .map_err(StoreError::flash)?;
        writer
            .write(flash, &(note.len() as u16).to_le_bytes())
            .map_err(StoreError::flash)?;
        writer
            .write(flash, &(genesis_link.len() as u16).to_le_bytes())
            .map_err(StoreError::flash)?;
        writer
            .write(flash, note.as_bytes())
            .map_err(StoreError::flash)?;
        writer
            .write(flash, genesis_link.as_flattened())
            .map_err(StoreError::flash)?;
        self.next = writer.seal(flash).map_err(StoreError::flash)?;
        self.seq = seq;
        let body = at + HEADER_LEN;
        let state = SavedState {
            trusted,
            note_at: body + FIXED_BODY_LEN,
            note_len: note.len() as u16,
            link_at: body + FIXED_BODY_LEN + note.len() as u32,
            link_hashes: genesis_link.len() as u16,
        };
        self.saved = Some(state);
        Ok(state)
    }
}

fn read_body<F: NorFlash>(flash: &mut F, body: u32, len: u32) -> Result<SavedState, StoreError> {
    let mut fixed = [0u8; FIXED_BODY_LEN as usize];
    flash.read(body, &mut fixed).map_err(StoreError::flash)?;
    let size = u64::from_le_bytes(fixed[0..8].try_into().unwrap_or_default());
    let mut root = [0u8; 32];
    root.copy_from_slice(&fixed[8..40]);
    let timestamp = u64::from_le_bytes(fixed[40..48].try_into().unwrap_or_default());
    let note_len = u16::from_le_bytes([fixed[48], fixed[49]]);
    let link_hashes = u16::from_le_bytes([fixed[50], fixed[51]]);
    if FIXED_BODY_LEN + u32::from(note_len) + 32 * u32::from(link_hashes) != len {
        return Err(StoreError::Corrupt);
    }
    Ok(SavedState {
        trusted: Trusted {
            size,
            root,
            timestamp,
        },
        note_at: body + FIXED_BODY_LEN,
        note_len,
        link_at: body + FIXED_BODY_LEN + u32::from(note_len),
        link_hashes,
    })
}
