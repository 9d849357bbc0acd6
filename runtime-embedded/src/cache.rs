//! The edge cache: trust rooted in the genesis, a checkpoint refreshed from the parent, and
//! artifacts fetched piece by piece, each verified before it is sealed in flash.

use embedded_io::{Read, Write};
use embedded_storage::nor_flash::NorFlash;
use pyrsia_core::digest::{Digest, Hasher};
use pyrsia_core::edge::{
    EDGE_VERSION, Hashes, MAX_MESSAGE_LEN, MAX_PROOF_HASHES, Request, Response,
};
use pyrsia_core::light::{Connectivity, Freshness, LightClient, LightError, Trusted};
use pyrsia_core::pieces::{PIECE_LEN, piece_count};
use pyrsia_core::tlog::checkpoint::NoteView;
use pyrsia_core::tlog::entry::Entry;
use pyrsia_core::tlog::{Hash, verify_inclusion};

use crate::error::EdgeError;
use crate::link::Link;
use crate::store::{Object, Store};

/// Membership changes applied per refresh at most; the rest on the next one.
pub const MAX_EPOCH_STEPS: u32 = 16;

/// Times a refresh retries when the parent's log grows between its two checkpoint answers.
const REFRESH_ATTEMPTS: u32 = 3;

/// A refresh saves a re-signed checkpoint of the same tree only when it is this much newer
/// (seconds): members re-sign hourly and the journal need not wear at that pace.
pub const RESAVE_AFTER: u64 = 6 * 3600;

/// The cache's working memory: room to read a note, an entry or a chunk from flash when
/// answering a peer, and proof hashes kept across answers that reuse the link's buffer. The
/// caller's (a `static` on a device), so the cache itself is a few pointers.
pub struct Scratch {
    pub(crate) bytes: [u8; MAX_MESSAGE_LEN],
    pub(crate) proof: heapless::Vec<Hash, MAX_PROOF_HASHES>,
}

impl Scratch {
    /// Zeroed; `const`, for a `static`.
    pub const fn new() -> Self {
        Scratch {
            bytes: [0; MAX_MESSAGE_LEN],
            proof: heapless::Vec::new(),
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// An edge cache: a light client, a flash store and scratch memory, all the caller's. On a
/// device each lives in a `static` and is built in place there, so no large value ever
/// travels through the stack.
pub struct EdgeCache<'b, F> {
    pub(crate) light: &'b mut LightClient,
    pub(crate) store: &'b mut Store<F>,
    pub(crate) scratch: &'b mut Scratch,
}

impl<'b, F: NorFlash> EdgeCache<'b, F> {
    /// The cache over `light` (trust rooted in the genesis it was made from), `store` (opened
    /// on the flash, every seal checked) and `scratch`. A client that trusts nothing yet
    /// resumes from the checkpoint saved in flash.
    pub fn new(
        light: &'b mut LightClient,
        store: &'b mut Store<F>,
        scratch: &'b mut Scratch,
    ) -> Self {
        if light.trusted().is_none()
            && let Some(saved) = store.saved_state()
        {
            light.resume(saved.trusted);
        }
        EdgeCache {
            light,
            store,
            scratch,
        }
    }

    /// Copies proof hashes out of the link's buffer into the scratch, to keep them past the
    /// next answer.
    fn keep_proof(&mut self, hashes: Hashes<'_>) -> Result<(), EdgeError> {
        let hashes = hashes.as_hashes().ok_or(EdgeError::BadProof)?;
        self.scratch.proof.clear();
        self.scratch
            .proof
            .extend_from_slice(hashes)
            .map_err(|_| EdgeError::BadProof)
    }

    /// The checkpoint trusted now.
    pub fn trusted(&self) -> Option<Trusted> {
        self.light.trusted().copied()
    }

    /// The flash store (what is cached).
    pub fn store(&self) -> &Store<F> {
        self.store
    }

    /// The flash store, to read cached bytes.
    pub fn store_mut(&mut self) -> &mut Store<F> {
        self.store
    }

    /// Starts a session with the parent: both sides speak [`EDGE_VERSION`].
    pub fn hello<IO: Read + Write>(&mut self, parent: &mut Link<'_, IO>) -> Result<(), EdgeError> {
        match parent.call(&Request::Hello {
            version: EDGE_VERSION,
        })? {
            Response::Hello { version } if version == EDGE_VERSION => Ok(()),
            Response::Error(code) => Err(EdgeError::Refused(code)),
            _ => Err(EdgeError::Unexpected),
        }
    }

    /// Brings trust up to the parent's latest checkpoint: walks membership changes, then checks
    /// the checkpoint's quorum, its link to the trusted one (or to the genesis) and its
    /// freshness at `now` (Unix seconds), saves it in flash, and only then trusts it.
    pub fn refresh<IO: Read + Write>(
        &mut self,
        parent: &mut Link<'_, IO>,
        now: u64,
    ) -> Result<Freshness, EdgeError> {
        self.walk_membership(parent)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_refresh(parent, now) {
                Err(EdgeError::Unexpected) if attempt < REFRESH_ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    fn walk_membership<IO: Read + Write>(
        &mut self,
        parent: &mut Link<'_, IO>,
    ) -> Result<(), EdgeError> {
        for _ in 0..MAX_EPOCH_STEPS {
            let epoch = self.light.members().epoch();
            match parent.call(&Request::Membership { epoch })? {
                Response::Membership { entry: None } => return Ok(()),
                Response::Membership { entry: Some(entry) } => {
                    self.light.apply_membership(entry)?
                }
                other => return Err(EdgeError::answered(&other)),
            }
        }
        Ok(())
    }

    #[inline(never)] // Keeps its note and proofs out of the caller's frame on a device.
    fn try_refresh<IO: Read + Write>(
        &mut self,
        parent: &mut Link<'_, IO>,
        now: u64,
    ) -> Result<Freshness, EdgeError> {
        // First the parent's latest tree with its genesis link (a peer without trust needs it).
        let answer = parent.call(&Request::Checkpoint { have: 0 })?;
        let Response::Checkpoint { note, link } = answer else {
            return Err(EdgeError::answered(&answer));
        };
        let parsed = NoteView::parse(note).map_err(|_| EdgeError::BadNote)?;
        let cp = &parsed.checkpoint;
        if cp.origin.as_str() != self.light.origin() {
            return Err(EdgeError::Light(LightError::WrongOrigin));
        }
        self.keep_proof(link)?;
        if self.light.trusted().is_none() {
            // Nothing trusted yet: this answer is the whole check (the link is the genesis's).
            let checked =
                self.light
                    .check_note(&parsed, &self.scratch.proof, now, Connectivity::Online)?;
            self.store
                .save_state(checked.trusted(), note, &self.scratch.proof)?;
            return Ok(self.light.trust(checked)?);
        }
        verify_inclusion(
            0,
            cp.size,
            self.light.genesis_leaf(),
            &self.scratch.proof,
            &cp.root,
        )
        .map_err(|e| EdgeError::Light(LightError::GenesisNotIncluded(e)))?;
        let (size, root) = (cp.size, cp.root);
        let trusted = self.light.trusted().copied();
        if trusted.is_some_and(|t| t.size == size && t.root == root) {
            return self.refresh_same_tree(parent, now);
        }
        let have = trusted.map_or(0, |t| t.size);
        // The same tree again, with the consistency proof from the trusted one.
        let answer = parent.call(&Request::Checkpoint { have })?;
        let Response::Checkpoint { note, link } = answer else {
            return Err(EdgeError::answered(&answer));
        };
        let parsed = NoteView::parse(note).map_err(|_| EdgeError::BadNote)?;
        if parsed.checkpoint.size != size || parsed.checkpoint.root != root {
            return Err(EdgeError::Unexpected); // The log grew in between: ask again.
        }
        let link = link.as_hashes().ok_or(EdgeError::BadProof)?;
        let checked = self
            .light
            .check_note(&parsed, link, now, Connectivity::Online)?;
        // Persist before trusting: a reset never rolls trust back.
        self.store
            .save_state(checked.trusted(), note, &self.scratch.proof)?;
        Ok(self.light.trust(checked)?)
    }

    /// The parent's tree is the trusted one: accept a newer signing time (freshness) and save
    /// it once it is [`RESAVE_AFTER`] newer than the saved one.
    #[inline(never)] // Keeps its note and proofs out of the caller's frame on a device.
    fn refresh_same_tree<IO: Read + Write>(
        &mut self,
        parent: &mut Link<'_, IO>,
        now: u64,
    ) -> Result<Freshness, EdgeError> {
        let Some(trusted) = self.light.trusted().copied() else {
            return Err(EdgeError::NoCheckpoint);
        };
        let answer = parent.call(&Request::Checkpoint { have: trusted.size })?;
        let Response::Checkpoint { note, link } = answer else {
            return Err(EdgeError::answered(&answer));
        };
        let parsed = NoteView::parse(note).map_err(|_| EdgeError::BadNote)?;
        let link = link.as_hashes().ok_or(EdgeError::BadProof)?;
        let checked = self
            .light
            .check_note(&parsed, link, now, Connectivity::Online)?;
        let freshness = self.light.trust(checked)?;
        let saved = self.store.saved_state().map_or(0, |s| s.trusted.timestamp);
        if parsed.checkpoint.timestamp >= saved.saturating_add(RESAVE_AFTER) {
            let now_trusted = self
                .light
                .trusted()
                .copied()
                .ok_or(EdgeError::NoCheckpoint)?;
            self.store
                .save_state(now_trusted, note, &self.scratch.proof)?;
        }
        Ok(freshness)
    }

    /// Whether `digest` is cached whole: its commit proof for the trusted tree and every piece.
    pub fn holds(&self, digest: &Digest) -> bool {
        let Some(trusted) = self.light.trusted() else {
            return false;
        };
        let Some(proof) = self.store.proof(digest) else {
            return false;
        };
        let Some(first) = self.store.piece(digest, 0) else {
            return false;
        };
        proof.size == trusted.size
            && (0..piece_count(first.size)).all(|i| self.store.piece(digest, i as u32).is_some())
    }

    /// Fetches `digest` from the parent unless cached: the `Commit` listing it, proven in the
    /// trusted tree, then every piece, each checked against the committed piece root (or the
    /// digest, for a blob of one piece) before it is sealed in flash.
    pub fn fetch<IO: Read + Write>(
        &mut self,
        parent: &mut Link<'_, IO>,
        digest: &Digest,
    ) -> Result<(), EdgeError> {
        if self.holds(digest) {
            return Ok(());
        }
        let trusted = self
            .light
            .trusted()
            .copied()
            .ok_or(EdgeError::NoCheckpoint)?;
        let piece_root = self.fetch_proof(parent, digest, trusted.size)?;
        let blob_size = match self.store.piece(digest, 0) {
            Some(first) => first.size,
            None => self.fetch_piece(parent, digest, 0, None, piece_root)?,
        };
        for index in 1..piece_count(blob_size) as u32 {
            if self.store.piece(digest, index).is_none() {
                self.fetch_piece(parent, digest, index, Some(blob_size), piece_root)?;
            }
        }
        Ok(())
    }

    /// Fetches and checks the commit proof for `digest` in the tree of `tree_size`, stores it,
    /// and returns the committed piece root, if the blob has one.
    #[inline(never)] // Keeps its answer's copies out of the caller's frame on a device.
    fn fetch_proof<IO: Read + Write>(
        &mut self,
        parent: &mut Link<'_, IO>,
        digest: &Digest,
        tree_size: u64,
    ) -> Result<Option<Hash>, EdgeError> {
        if let Some(stored) = self.store.proof(digest).filter(|p| p.size == tree_size) {
            let mut root = None;
            let len = stored.data_len() as usize;
            if len > self.scratch.bytes.len() {
                return Err(EdgeError::Unexpected);
            }
            self.store
                .read(stored.data_at(), &mut self.scratch.bytes[..len])?;
            if let Ok(Entry::Commit(commit)) = Entry::decode(&self.scratch.bytes[..len]) {
                root = commit.statement.piece_roots.root_of(digest);
            }
            return Ok(root);
        }
        let answer = parent.call(&Request::Lookup {
            digest: *digest,
            tree_size,
        })?;
        let Response::Committed {
            index,
            tree_size: proven_size,
            entry,
            proof,
        } = answer
        else {
            return Err(EdgeError::answered(&answer));
        };
        if proven_size != tree_size {
            return Err(EdgeError::Unexpected);
        }
        let hashes = proof.as_hashes().ok_or(EdgeError::BadProof)?;
        let decoded = self.light.check_committed(entry, index, hashes, digest)?;
        let Entry::Commit(commit) = decoded else {
            return Err(EdgeError::Unexpected);
        };
        let root = commit.statement.piece_roots.root_of(digest);
        let payload = (proof.0.len() + entry.len()) as u32;
        let mut pending = self.store.begin(Object::proof(
            *digest,
            tree_size,
            index,
            hashes.len() as u8,
            payload,
        ))?;
        self.store.append(&mut pending, proof.0)?;
        self.store.append(&mut pending, entry)?;
        self.store.commit(pending)?;
        Ok(root)
    }

    /// Fetches piece `index`, streaming it into flash while hashing it; seals it only if it
    /// matches the piece root (or the digest). Returns the blob size the parent gave.
    #[inline(never)] // Keeps its answer's copies out of the caller's frame on a device.
    fn fetch_piece<IO: Read + Write>(
        &mut self,
        parent: &mut Link<'_, IO>,
        digest: &Digest,
        index: u32,
        known_size: Option<u64>,
        piece_root: Option<Hash>,
    ) -> Result<u64, EdgeError> {
        let answer = parent.call(&Request::Piece {
            digest: *digest,
            index,
            offset: 0,
        })?;
        let Response::Piece {
            blob_size,
            offset: 0,
            data,
            proof,
        } = answer
        else {
            return Err(EdgeError::answered(&answer));
        };
        let count = piece_count(blob_size);
        if known_size.is_some_and(|s| s != blob_size) || u64::from(index) >= count {
            return Err(EdgeError::Unexpected);
        }
        if count > 1 && piece_root.is_none() {
            return Err(EdgeError::NoPieceRoot);
        }
        self.keep_proof(proof)?;
        if piece_root.is_none() && !self.scratch.proof.is_empty() {
            return Err(EdgeError::BadProof);
        }
        let piece_len =
            (blob_size - u64::from(index) * u64::from(PIECE_LEN)).min(u64::from(PIECE_LEN)) as u32;
        if data.len() as u32 > piece_len || (data.is_empty() && piece_len > 0) {
            return Err(EdgeError::Unexpected);
        }
        let mut hasher = Hasher::new();
        if piece_root.is_some() {
            hasher.update(&[0x00]); // RFC 9162 leaf prefix: pieces are leaves of the piece tree.
        }
        let proof_hashes = self.scratch.proof.len() as u8;
        let payload = 32 * u32::from(proof_hashes) + piece_len;
        let mut pending = self.store.begin(Object::piece(
            *digest,
            index,
            blob_size,
            proof_hashes,
            payload,
        ))?;
        self.store
            .append(&mut pending, self.scratch.proof.as_flattened())?;
        hasher.update(data);
        self.store.append(&mut pending, data)?;
        let mut offset = data.len() as u32;
        while offset < piece_len {
            let answer = parent.call(&Request::Piece {
                digest: *digest,
                index,
                offset,
            });
            let data = match answer {
                Ok(Response::Piece {
                    blob_size: size,
                    offset: at,
                    data,
                    ..
                }) if size == blob_size
                    && at == offset
                    && !data.is_empty()
                    && data.len() as u32 <= piece_len - offset =>
                {
                    data
                }
                Ok(Response::Error(code)) => {
                    self.store.abandon(pending);
                    return Err(EdgeError::Refused(code));
                }
                Ok(_) => {
                    self.store.abandon(pending);
                    return Err(EdgeError::Unexpected);
                }
                Err(e) => {
                    self.store.abandon(pending);
                    return Err(e.into());
                }
            };
            hasher.update(data);
            self.store.append(&mut pending, data)?;
            offset += data.len() as u32;
        }
        let hash = hasher.finish();
        let matches = match piece_root {
            Some(root) => verify_inclusion(
                u64::from(index),
                count,
                hash.as_bytes(),
                &self.scratch.proof,
                &root,
            )
            .is_ok(),
            None => hash == *digest,
        };
        if !matches {
            self.store.abandon(pending);
            return Err(EdgeError::BadPiece);
        }
        self.store.commit(pending)?;
        Ok(blob_size)
    }

    /// Re-checks the saved checkpoint against the genesis: its note's quorum of member
    /// signatures and that it is the trusted tree. For audits, and to measure the cost of a
    /// checkpoint verification on the device.
    #[inline(never)] // Keeps its note and proofs out of the caller's frame on a device.
    pub fn audit_checkpoint(&mut self, now: u64) -> Result<Freshness, EdgeError> {
        let saved = self.store.saved_state().ok_or(EdgeError::NoCheckpoint)?;
        let note = &mut self.scratch.bytes[..usize::from(saved.note_len)];
        self.store.read(saved.note_at, note)?;
        let note = core::str::from_utf8(note).map_err(|_| EdgeError::BadNote)?;
        let parsed = NoteView::parse(note).map_err(|_| EdgeError::BadNote)?;
        let checked = self
            .light
            .check_note(&parsed, &[], now, Connectivity::Offline)?;
        Ok(checked.freshness())
    }

    /// Re-checks the stored commit proof of `digest` in the trusted tree: inclusion and the
    /// f+1 attestations. Returns the committed piece root, if any.
    pub fn audit_commit(&mut self, digest: &Digest) -> Result<Option<Hash>, EdgeError> {
        let stored = self.store.proof(digest).ok_or(EdgeError::NoCheckpoint)?;
        let entry_len = stored.data_len() as usize;
        if entry_len > self.scratch.bytes.len()
            || usize::from(stored.proof_hashes) > MAX_PROOF_HASHES
        {
            return Err(EdgeError::BadProof);
        }
        self.scratch.proof.clear();
        for i in 0..u32::from(stored.proof_hashes) {
            let mut hash = [0u8; 32];
            self.store.read(stored.proof_at() + 32 * i, &mut hash)?;
            let _ = self.scratch.proof.push(hash);
        }
        let entry = &mut self.scratch.bytes[..entry_len];
        self.store.read(stored.data_at(), entry)?;
        let Entry::Commit(commit) =
            self.light
                .check_committed(entry, stored.entry_index, &self.scratch.proof, digest)?
        else {
            return Err(EdgeError::Unexpected);
        };
        Ok(commit.statement.piece_roots.root_of(digest))
    }

    /// Re-hashes stored piece `index` of `digest` from flash and checks it against
    /// `piece_root` (from [`EdgeCache::audit_commit`]) or, for a one-piece blob, the digest.
    /// Catches bit rot; measures the cost of verifying a piece on the device.
    pub fn audit_piece(
        &mut self,
        digest: &Digest,
        index: u32,
        piece_root: Option<Hash>,
    ) -> Result<(), EdgeError> {
        let piece = self.store.piece(digest, index).ok_or(EdgeError::BadPiece)?;
        self.scratch.proof.clear();
        for i in 0..u32::from(piece.proof_hashes) {
            let mut hash = [0u8; 32];
            self.store.read(piece.proof_at() + 32 * i, &mut hash)?;
            self.scratch
                .proof
                .push(hash)
                .map_err(|_| EdgeError::BadProof)?;
        }
        let mut hasher = Hasher::new();
        if piece_root.is_some() {
            hasher.update(&[0x00]);
        }
        let mut done = 0;
        while done < piece.data_len() {
            let take = (piece.data_len() - done).min(self.scratch.bytes.len() as u32);
            let chunk = &mut self.scratch.bytes[..take as usize];
            self.store.read(piece.data_at() + done, chunk)?;
            hasher.update(chunk);
            done += take;
        }
        let hash = hasher.finish();
        let holds = match piece_root {
            Some(root) => verify_inclusion(
                u64::from(index),
                piece_count(piece.size),
                hash.as_bytes(),
                &self.scratch.proof,
                &root,
            )
            .is_ok(),
            None => hash == *digest,
        };
        if holds {
            Ok(())
        } else {
            Err(EdgeError::BadPiece)
        }
    }
}
