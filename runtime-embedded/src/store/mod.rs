//! The edge cache's flash: the trust journal ([`state`]) in two banks at the start, then a
//! circular log of sealed object records (pieces and commit proofs).
//!
//! Objects are written at the head of the log, one record per piece or proof, each starting on
//! an erase-sector boundary. Space is reclaimed by erasing the sectors ahead of the head, oldest
//! records first, so every sector is erased once per turn of the log: wear is spread evenly
//! with no wear-levelling table to keep. A record is sealed only after its content was verified
//! against the log, and on open every seal is checked again against the bytes in flash, so
//! power loss at any write or erase, or a rotted bit, costs that record and nothing else.
//! The index of objects lives in RAM (at most [`MAX_OBJECTS`]) and is rebuilt on open.

mod record;
pub mod state;

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};
use pyrsia_core::digest::Digest;
use pyrsia_core::light::Trusted;
use pyrsia_core::tlog::Hash;

use record::{ALIGN, RecordWriter, SEAL_LEN, align_up, seal_holds};
use state::Journal;
pub use state::{STATE_BANK_LEN, SavedState};

/// The most objects (pieces and proofs) the cache indexes.
pub const MAX_OBJECTS: usize = 64;

/// Bytes read at a time when checking seals.
const SCRATCH_LEN: usize = 256;

const MAGIC: u32 = u32::from_le_bytes(*b"PYO1");
const HEADER_LEN: u32 = 96;
const _: () = assert!(HEADER_LEN.is_multiple_of(ALIGN));

/// Why the store failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StoreError {
    /// The flash driver failed.
    Flash(#[cfg_attr(feature = "defmt", defmt(Debug2Format))] NorFlashErrorKind),
    /// The flash has room for the journal and less than one object sector, or a sector size
    /// the layout cannot use.
    FlashTooSmall,
    /// The object is larger than the whole object area.
    TooLarge,
    /// A record's content contradicts its own header.
    Corrupt,
}

impl StoreError {
    fn flash<E: NorFlashError>(error: E) -> Self {
        StoreError::Flash(error.kind())
    }
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoreError::Flash(kind) => write!(f, "flash: {kind:?}"),
            StoreError::FlashTooSmall => f.write_str("flash too small for the cache layout"),
            StoreError::TooLarge => f.write_str("object larger than the cache"),
            StoreError::Corrupt => f.write_str("flash record contradicts its header"),
        }
    }
}

/// What an object record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind {
    /// A verified piece of a blob: its inclusion proof in the piece root, then its bytes.
    Piece,
    /// A verified `Commit` entry for a digest: its inclusion proof, then the entry.
    Proof,
}

impl Kind {
    const fn code(self) -> u8 {
        match self {
            Kind::Piece => 1,
            Kind::Proof => 2,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Kind::Piece),
            2 => Some(Kind::Proof),
            _ => None,
        }
    }
}

/// An object in flash, as the index knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Object {
    /// Piece or proof.
    pub kind: Kind,
    /// The blob (piece) or the artifact the proof is for.
    pub digest: Digest,
    /// Piece index; 0 for a proof.
    pub piece: u32,
    /// Blob size (piece) or the tree size the proof is for (proof).
    pub size: u64,
    /// The entry's log index (proof); 0 for a piece.
    pub entry_index: u64,
    /// How many proof hashes start the payload.
    pub proof_hashes: u8,
    /// Payload bytes: the proof hashes then the data.
    pub payload_len: u32,
    /// Flash offset of the record.
    at: u32,
    /// Write order.
    seq: u32,
}

impl Object {
    /// A piece record to [`Store::begin`]: piece `index` of blob `digest` (`blob_size` bytes),
    /// `proof_hashes` hashes of its proof then its bytes, `payload_len` in all.
    pub fn piece(
        digest: Digest,
        index: u32,
        blob_size: u64,
        proof_hashes: u8,
        payload_len: u32,
    ) -> Self {
        Object {
            kind: Kind::Piece,
            digest,
            piece: index,
            size: blob_size,
            entry_index: 0,
            proof_hashes,
            payload_len,
            at: 0,
            seq: 0,
        }
    }

    /// A commit-proof record to [`Store::begin`]: entry `entry_index` proven for `digest` in
    /// the tree of `tree_size`, `proof_hashes` hashes then the entry, `payload_len` in all.
    pub fn proof(
        digest: Digest,
        tree_size: u64,
        entry_index: u64,
        proof_hashes: u8,
        payload_len: u32,
    ) -> Self {
        Object {
            kind: Kind::Proof,
            digest,
            piece: 0,
            size: tree_size,
            entry_index,
            proof_hashes,
            payload_len,
            at: 0,
            seq: 0,
        }
    }

    /// Flash offset of the proof hashes.
    pub fn proof_at(&self) -> u32 {
        self.at + HEADER_LEN
    }

    /// Flash offset of the data (piece bytes or entry).
    pub fn data_at(&self) -> u32 {
        self.proof_at() + 32 * u32::from(self.proof_hashes)
    }

    /// Length of the data.
    pub fn data_len(&self) -> u32 {
        self.payload_len - 32 * u32::from(self.proof_hashes)
    }

    fn header(&self) -> [u8; HEADER_LEN as usize] {
        let mut h = [0u8; HEADER_LEN as usize];
        h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&self.seq.to_le_bytes());
        h[8] = self.kind.code();
        h[9] = self.proof_hashes;
        h[12..16].copy_from_slice(&self.piece.to_le_bytes());
        h[16..20].copy_from_slice(&self.payload_len.to_le_bytes());
        h[20..28].copy_from_slice(&self.size.to_le_bytes());
        h[28..36].copy_from_slice(&self.entry_index.to_le_bytes());
        h[36..68].copy_from_slice(self.digest.as_bytes());
        h
    }

    fn parse(h: &[u8; HEADER_LEN as usize], at: u32) -> Option<Self> {
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let long = |i: usize| u64::from(word(i)) | (u64::from(word(i + 4)) << 32);
        if word(0) != MAGIC || h[68..].iter().any(|&b| b != 0) {
            return None;
        }
        let object = Object {
            kind: Kind::from_code(h[8])?,
            digest: Digest::from_sha256_bytes(h[36..68].try_into().ok()?),
            piece: word(12),
            size: long(20),
            entry_index: long(28),
            proof_hashes: h[9],
            payload_len: word(16),
            at,
            seq: word(4),
        };
        (object.payload_len >= 32 * u32::from(object.proof_hashes)).then_some(object)
    }

    fn record_len(&self) -> u32 {
        HEADER_LEN + align_up(self.payload_len) + SEAL_LEN
    }
}

/// A record being written: append its payload, then [`Store::commit`] or [`Store::abandon`].
pub struct Pending {
    object: Object,
    writer: RecordWriter,
    written: u32,
}

/// The cache's flash: trust journal and object log.
pub struct Store<F> {
    flash: F,
    journal: Journal,
    objects: heapless::Vec<Object, MAX_OBJECTS>,
    sector: u32,
    area_start: u32,
    sectors: u32,
    head: u32,
    seq: u32,
}

impl<F: NorFlash> Store<F> {
    /// Opens the store on `flash`, checking every record's seal and rebuilding the index.
    /// A blank flash opens empty.
    pub fn open(flash: F) -> Result<Self, StoreError> {
        let mut slot = None;
        Self::open_in(&mut slot, flash)?;
        slot.ok_or(StoreError::Corrupt)
    }

    /// [`Store::open`] built in place in `slot` (a device's `static`): the index never
    /// travels through the stack. On error the slot is left empty.
    pub fn open_in(slot: &mut Option<Self>, mut flash: F) -> Result<&mut Self, StoreError> {
        *slot = None;
        let sector = F::ERASE_SIZE as u32;
        if sector == 0
            || !STATE_BANK_LEN.is_multiple_of(sector)
            || !ALIGN.is_multiple_of(F::WRITE_SIZE as u32)
            || !sector.is_multiple_of(ALIGN)
        {
            return Err(StoreError::FlashTooSmall);
        }
        let capacity = flash.capacity() as u32;
        let area_start = 2 * STATE_BANK_LEN;
        if capacity < area_start + sector {
            return Err(StoreError::FlashTooSmall);
        }
        let mut scratch = [0u8; SCRATCH_LEN];
        let journal = Journal::open(&mut flash, &mut scratch)?;
        let scanned = slot
            .insert(Store {
                flash,
                journal,
                objects: heapless::Vec::new(),
                sector,
                area_start,
                sectors: (capacity - area_start) / sector,
                head: 0,
                seq: 0,
            })
            .scan(&mut scratch);
        if let Err(e) = scanned {
            *slot = None;
            return Err(e);
        }
        slot.as_mut().ok_or(StoreError::Corrupt)
    }

    fn scan(&mut self, scratch: &mut [u8]) -> Result<(), StoreError> {
        let mut newest: Option<(u32, u32)> = None; // seq, sector after it
        let mut s = 0;
        while s < self.sectors {
            let at = self.area_start + s * self.sector;
            let mut header = [0u8; HEADER_LEN as usize];
            self.flash
                .read(at, &mut header)
                .map_err(StoreError::flash)?;
            let Some(object) = Object::parse(&header, at) else {
                s += 1;
                continue;
            };
            let span = object.record_len().div_ceil(self.sector);
            if s + span > self.sectors {
                s += 1;
                continue;
            }
            if newest.is_none_or(|(seq, _)| object.seq.wrapping_sub(seq) as i32 > 0) {
                newest = Some((object.seq, (s + span) % self.sectors));
            }
            if seal_holds(&mut self.flash, at, &header, object.payload_len, scratch)
                .map_err(StoreError::flash)?
            {
                self.index(object);
            }
            s += span;
        }
        if let Some((seq, head)) = newest {
            self.seq = seq.wrapping_add(1);
            self.head = head;
        }
        Ok(())
    }

    /// Adds `object` to the index, replacing an older copy, or the oldest object if full.
    fn index(&mut self, object: Object) {
        let same = |o: &Object| {
            o.kind == object.kind && o.digest == object.digest && o.piece == object.piece
        };
        if let Some(existing) = self.objects.iter_mut().find(|o| same(o)) {
            if object.seq.wrapping_sub(existing.seq) as i32 > 0 {
                *existing = object;
            }
            return;
        }
        if let Err(object) = self.objects.push(object) {
            let oldest = self
                .objects
                .iter()
                .enumerate()
                .max_by_key(|(_, o)| object.seq.wrapping_sub(o.seq))
                .map(|(i, _)| i);
            if let Some(i) =
                oldest.filter(|&i| object.seq.wrapping_sub(self.objects[i].seq) as i32 > 0)
            {
                self.objects[i] = object;
            }
        }
    }

    /// The trusted state saved last, if any.
    pub fn saved_state(&self) -> Option<SavedState> {
        self.journal.saved()
    }

    /// Saves the trusted checkpoint with its note and the genesis inclusion proof for it.
    pub fn save_state(
        &mut self,
        trusted: Trusted,
        note: &str,
        genesis_link: &[Hash],
    ) -> Result<SavedState, StoreError> {
        self.journal
            .save(&mut self.flash, trusted, note, genesis_link)
    }

    /// Reads flash bytes (a note, a proof, piece data) at `offset`.
    pub fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), StoreError> {
        self.flash.read(offset, buf).map_err(StoreError::flash)
    }

    /// The stored piece `index` of blob `digest`.
    pub fn piece(&self, digest: &Digest, index: u32) -> Option<Object> {
        self.objects
            .iter()
            .find(|o| o.kind == Kind::Piece && o.digest == *digest && o.piece == index)
            .copied()
    }

    /// The stored commit proof for `digest`.
    pub fn proof(&self, digest: &Digest) -> Option<Object> {
        self.objects
            .iter()
            .find(|o| o.kind == Kind::Proof && o.digest == *digest)
            .copied()
    }

    /// Every indexed object.
    pub fn objects(&self) -> &[Object] {
        &self.objects
    }

    /// Starts writing `object` ([`Object::piece`], [`Object::proof`]) at the head, erasing
    /// (and so evicting) what its sectors held. The proof hashes must be appended first, then
    /// the data.
    pub fn begin(&mut self, mut object: Object) -> Result<Pending, StoreError> {
        let payload_len = object.payload_len;
        if payload_len < 32 * u32::from(object.proof_hashes) {
            return Err(StoreError::Corrupt);
        }
        object.seq = self.seq;
        let span = (HEADER_LEN + align_up(payload_len) + SEAL_LEN).div_ceil(self.sector);
        if span > self.sectors {
            return Err(StoreError::TooLarge);
        }
        if self.head + span > self.sectors {
            self.head = 0;
        }
        let (first, end) = (self.head, self.head + span);
        let sector = self.sector;
        let area = self.area_start;
        self.objects.retain(|o| {
            let s = (o.at - area) / sector;
            let e = s + o.record_len().div_ceil(sector);
            e <= first || s >= end
        });
        object.at = area + first * sector;
        self.flash
            .erase(object.at, area + end * sector)
            .map_err(StoreError::flash)?;
        let mut writer = RecordWriter::new(object.at);
        writer
            .write(&mut self.flash, &object.header())
            .map_err(StoreError::flash)?;
        self.seq = self.seq.wrapping_add(1);
        self.head = end % self.sectors;
        Ok(Pending {
            object,
            writer,
            written: 0,
        })
    }

    /// Appends payload bytes to `pending`.
    pub fn append(&mut self, pending: &mut Pending, bytes: &[u8]) -> Result<(), StoreError> {
        if pending.written + bytes.len() as u32 > pending.object.payload_len {
            return Err(StoreError::Corrupt);
        }
        pending
            .writer
            .write(&mut self.flash, bytes)
            .map_err(StoreError::flash)?;
        pending.written += bytes.len() as u32;
        Ok(())
    }

    /// Seals a fully written, verified record and indexes it.
    pub fn commit(&mut self, pending: Pending) -> Result<Object, StoreError> {
        if pending.written != pending.object.payload_len {
            return Err(StoreError::Corrupt);
        }
        pending
            .writer
            .seal(&mut self.flash)
            .map_err(StoreError::flash)?;
        self.index(pending.object);
        Ok(pending.object)
    }

    /// Drops a record that failed verification; its sectors are reused by the next record.
    pub fn abandon(&mut self, pending: Pending) {
        self.head = (pending.object.at - self.area_start) / self.sector;
    }

    /// The flash, for a board to take back (tests use it to simulate power loss).
    pub fn into_flash(self) -> F {
        self.flash
    }
}
