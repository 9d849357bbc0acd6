//! Host-side doubles for the edge cache's unit tests: a parent that answers the edge protocol
//! from an in-memory log with real signatures and proofs (and can be told to misbehave), and a
//! flash that loses power at a chosen operation.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::{HashMap, VecDeque};

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use pyrsia_core::digest::Digest;
use pyrsia_core::edge::{
    CHUNK_LEN, EDGE_VERSION, ErrorCode, Hashes, MAX_FRAME_LEN, MAX_REQUEST_LEN, Request, Response,
    decode, encode,
};
use pyrsia_core::identity::SecretKey;
use pyrsia_core::pieces::{PIECE_LEN, piece_count};
use pyrsia_core::tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use pyrsia_core::tlog::entry::*;
use pyrsia_core::tlog::leaf_hash;
use pyrsia_core::tlog::tree::MerkleTree;
use pyrsia_embedded::RamFlash;

pub const ORIGIN: &str = "pyrsia.test/edge";
pub const NOW: u64 = 1_795_694_400;

pub fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

/// Deterministic blob bytes.
pub fn blob(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ salt)
        .collect()
}

/// How the parent misbehaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Checkpoints signed by keys that are not members.
    pub forged_checkpoint: bool,
    /// Inclusion proofs of commits with a flipped bit.
    pub bad_inclusion: bool,
    /// One byte flipped in this piece of every blob.
    pub corrupt_piece: Option<u32>,
}

/// A parent holding a log (4 members, f = 1) and blobs, answering one frame at a time.
pub struct Parent {
    pub genesis: Vec<u8>,
    entries: Vec<Vec<u8>>,
    tree: MerkleTree,
    blobs: HashMap<Digest, Vec<u8>>,
    commits: HashMap<Digest, u64>,
    pub timestamp: u64,
    pub faults: Faults,
    /// Requests answered, by kind.
    pub piece_requests: usize,
}

impl Parent {
    pub fn new() -> Self {
        let keys: Vec<u8> = (1..=4).flat_map(|s| key(s).public().to_bytes()).collect();
        let genesis = Entry::Genesis(Genesis {
            origin: ORIGIN,
            faults: 1,
            members: KeyList(&keys),
            created: NOW,
        })
        .encode();
        let mut parent = Parent {
            genesis: genesis.clone(),
            entries: Vec::new(),
            tree: MerkleTree::new(),
            blobs: HashMap::new(),
            commits: HashMap::new(),
            timestamp: NOW,
            faults: Faults::default(),
            piece_requests: 0,
        };
        parent.push(genesis);
        parent
    }

    fn push(&mut self, entry: Vec<u8>) -> u64 {
        self.entries.push(entry);
        self.tree.push(self.entries.last().unwrap())
    }

    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Commits `blobs` as one artifact attested by members 1 and 2 (f+1), with piece roots
    /// for blobs over one piece. Returns their digests.
    pub fn commit(&mut self, name: &str, blobs: Vec<Vec<u8>>) -> Vec<Digest> {
        let digests: Vec<Digest> = blobs.iter().map(|b| Digest::sha256(b)).collect();
        let mut sorted = digests.clone();
        sorted.sort();
        let outputs: Vec<u8> = sorted.iter().flat_map(|d| *d.as_bytes()).collect();
        let mut roots = Vec::new();
        for (digest, bytes) in digests.iter().zip(&blobs) {
            if bytes.len() > PIECE_LEN as usize {
                roots.extend_from_slice(digest.as_bytes());
                roots.extend_from_slice(
                    &piece_tree(bytes)
                        .root(piece_count(bytes.len() as u64))
                        .unwrap(),
                );
            }
        }
        let version = format!("sha256:{}", digests[0].hex().as_str());
        let statement = Statement {
            request_index: self.size() - 1,
            coordinates: Coordinates {
                ecosystem: ECOSYSTEM_DOCKER,
                name,
                version: &version,
            },
            build_type: DOCKER_FETCH_V1,
            outputs: DigestList(&outputs),
            epoch: 0,
            selection_size: self.size(),
            selection_root: self.tree.root(self.size()).unwrap(),
            piece_roots: PieceRootList(&roots),
        };
        let attestations: Vec<u8> = [1u8, 2]
            .iter()
            .flat_map(|&s| statement.sign(&key(s)).to_bytes())
            .collect();
        let index = self.push(
            Entry::Commit(Commit {
                statement,
                attestations: SignatureList(&attestations),
            })
            .encode(),
        );
        for (digest, bytes) in digests.iter().zip(blobs) {
            self.commits.insert(*digest, index);
            self.blobs.insert(*digest, bytes);
        }
        digests
    }

    /// The note for the current tree, signed by three members (or by strangers if forged).
    pub fn note(&self) -> String {
        let size = self.size();
        let cp =
            Checkpoint::new(ORIGIN, size, self.tree.root(size).unwrap(), self.timestamp).unwrap();
        let mut note = SignedCheckpoint::unsigned(cp.clone());
        let signers: &[u8] = if self.faults.forged_checkpoint {
            &[7, 8, 9]
        } else {
            &[1, 2, 3]
        };
        for &s in signers {
            note.add(cp.sign(&key(s))).unwrap();
        }
        note.to_string()
    }

    pub fn blob(&self, digest: &Digest) -> &[u8] {
        &self.blobs[digest]
    }

    /// Answers one request frame into `out`.
    pub fn answer(&mut self, frame: &mut [u8], out: &mut Vec<u8>) {
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let request: Request = match decode(frame) {
            Ok(r) => r,
            Err(_) => {
                out.extend_from_slice(
                    encode(&Response::Error(ErrorCode::BadRequest), &mut buf).unwrap(),
                );
                return;
            }
        };
        let note;
        let proof;
        let chunk;
        let response = match request {
            Request::Hello { .. } => Response::Hello {
                version: EDGE_VERSION,
            },
            Request::Goodbye => Response::Goodbye,
            Request::Membership { .. } => Response::Membership { entry: None },
            Request::Checkpoint { have } => {
                note = self.note();
                let size = self.size();
                proof = if have == 0 {
                    self.tree.inclusion_proof(0, size).unwrap()
                } else {
                    self.tree.consistency_proof(have, size).unwrap_or_default()
                };
                Response::Checkpoint {
                    note: &note,
                    link: Hashes::from_hashes(&proof),
                }
            }
            Request::Lookup { digest, tree_size } => match self.commits.get(&digest) {
                Some(&index) if index < tree_size && tree_size <= self.size() => {
                    let mut p = self.tree.inclusion_proof(index, tree_size).unwrap();
                    if self.faults.bad_inclusion
                        && let Some(first) = p.first_mut()
                    {
                        first[0] ^= 1;
                    }
                    proof = p;
                    Response::Committed {
                        index,
                        tree_size,
                        entry: &self.entries[index as usize],
                        proof: Hashes::from_hashes(&proof),
                    }
                }
                _ => Response::Error(ErrorCode::NotFound),
            },
            Request::Piece {
                digest,
                index,
                offset,
            } => {
                self.piece_requests += 1;
                match self.blobs.get(&digest) {
                    Some(bytes) if u64::from(index) < piece_count(bytes.len() as u64) => {
                        let start = index as usize * PIECE_LEN as usize;
                        let end = (start + PIECE_LEN as usize).min(bytes.len());
                        let from = start + offset as usize;
                        let to = (from + CHUNK_LEN).min(end);
                        let mut data = bytes[from.min(end)..to.max(from.min(end))].to_vec();
                        if self.faults.corrupt_piece == Some(index) && !data.is_empty() {
                            data[0] ^= 0x40;
                        }
                        chunk = data;
                        proof = if offset == 0 && bytes.len() > PIECE_LEN as usize {
                            let count = piece_count(bytes.len() as u64);
                            piece_tree(bytes)
                                .inclusion_proof(u64::from(index), count)
                                .unwrap()
                        } else {
                            Vec::new()
                        };
                        Response::Piece {
                            blob_size: bytes.len() as u64,
                            offset,
                            data: &chunk,
                            proof: Hashes::from_hashes(&proof),
                        }
                    }
                    _ => Response::Error(ErrorCode::NotFound),
                }
            }
        };
        out.extend_from_slice(encode(&response, &mut buf).unwrap());
    }
}

fn piece_tree(bytes: &[u8]) -> MerkleTree {
    let mut tree = MerkleTree::new();
    for piece in bytes.chunks(PIECE_LEN as usize) {
        tree.push_hash(leaf_hash(piece));
    }
    tree
}

/// Scratch space for a cache under test (leaked: tests open many caches).
pub fn scratch() -> &'static mut pyrsia_embedded::Scratch {
    Box::leak(Box::default())
}

/// An edge cache over `flash` trusting `genesis` (its parts leaked: tests open many).
pub fn open_cache<'m, F: NorFlash + 'm>(
    flash: F,
    genesis: &[u8],
) -> Result<pyrsia_embedded::EdgeCache<'m, F>, pyrsia_embedded::EdgeError> {
    let light = Box::leak(Box::new(pyrsia_core::light::LightClient::new(
        genesis,
        pyrsia_core::light::Policy::default(),
    )?));
    let store = Box::leak(Box::new(pyrsia_embedded::Store::open(flash)?));
    Ok(pyrsia_embedded::EdgeCache::new(light, store, scratch()))
}

/// Buffers for a link to a parent under test.
pub fn parent_buffers() -> &'static mut pyrsia_embedded::ParentBuffers {
    Box::leak(Box::default())
}

/// The parent as an in-memory stream: each request written is answered at once.
pub struct Loopback<'p> {
    pub parent: &'p mut Parent,
    frame: Vec<u8>,
    out: VecDeque<u8>,
    /// Fail every read and write (a parent that went away).
    pub down: bool,
}

impl<'p> Loopback<'p> {
    pub fn new(parent: &'p mut Parent) -> Self {
        Loopback {
            parent,
            frame: Vec::new(),
            out: VecDeque::new(),
            down: false,
        }
    }
}

impl embedded_io::ErrorType for Loopback<'_> {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Write for Loopback<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if self.down {
            return Err(embedded_io::ErrorKind::BrokenPipe);
        }
        let len = buf.len();
        for &byte in buf {
            if byte != 0 {
                self.frame.push(byte);
                continue;
            }
            let mut frame = std::mem::take(&mut self.frame);
            if frame.len() <= MAX_REQUEST_LEN {
                let mut out = Vec::new();
                self.parent.answer(&mut frame, &mut out);
                self.out.extend(out);
            }
        }
        Ok(len)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl embedded_io::Read for Loopback<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if self.down {
            return Err(embedded_io::ErrorKind::BrokenPipe);
        }
        let n = buf.len().min(self.out.len());
        for (slot, byte) in buf.iter_mut().zip(self.out.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

/// How a power cut tears the operation it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// Half of the bytes reach the flash.
    Prefix,
    /// Every other byte reaches the flash (cells programmed out of order).
    Scattered,
}

/// Flash that loses power at mutating operation number `cut_at` (0-based): that operation is
/// torn, it and every later one fail.
pub struct PowerCut<'m> {
    pub inner: RamFlash<'m>,
    /// Mutating operations so far (shared: the store owns the flash).
    pub ops: std::rc::Rc<std::cell::Cell<u32>>,
    pub cut_at: Option<u32>,
    pub tear: Tear,
}

impl<'m> PowerCut<'m> {
    pub fn new(memory: &'m mut [u8], cut_at: Option<u32>, tear: Tear) -> Self {
        PowerCut {
            inner: RamFlash::new(memory),
            ops: Default::default(),
            cut_at,
            tear,
        }
    }

    fn tick(&mut self) -> Option<bool> {
        let op = self.ops.get();
        self.ops.set(op + 1);
        match self.cut_at {
            Some(cut) if op > cut => None,
            Some(cut) if op == cut => Some(true),
            _ => Some(false),
        }
    }
}

impl ErrorType for PowerCut<'_> {
    type Error = pyrsia_embedded::ram_flash::RamFlashError;
}

impl ReadNorFlash for PowerCut<'_> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl NorFlash for PowerCut<'_> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = RamFlash::SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        match self.tick() {
            None => Err(pyrsia_embedded::ram_flash::RamFlashError::OutOfBounds),
            Some(false) => self.inner.erase(from, to),
            Some(true) => {
                // Torn erase: the first half of the range is erased, the rest is half-erased.
                let mid = from + ((to - from) / 2 / 4096) * 4096;
                self.inner.erase(from, mid)?;
                let mut sector = vec![0u8; (to - mid) as usize];
                self.inner.read(mid, &mut sector)?;
                for (i, byte) in sector.iter_mut().enumerate() {
                    if i % 3 == 0 {
                        *byte = 0xFF;
                    }
                }
                self.inner.erase(mid, to)?;
                let mut at = 0;
                while at < sector.len() {
                    // Program back what was not erased (RamFlash only programs erased cells).
                    self.inner.write(mid + at as u32, &sector[at..at + 4])?;
                    at += 4;
                }
                Err(pyrsia_embedded::ram_flash::RamFlashError::OutOfBounds)
            }
        }
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        match self.tick() {
            None => Err(pyrsia_embedded::ram_flash::RamFlashError::OutOfBounds),
            Some(false) => self.inner.write(offset, bytes),
            Some(true) => {
                let mut torn = vec![0xFFu8; bytes.len()];
                for (i, (t, b)) in torn.iter_mut().zip(bytes).enumerate() {
                    let lands = match self.tear {
                        Tear::Prefix => i < bytes.len() / 2,
                        Tear::Scattered => i % 2 == 0,
                    };
                    if lands {
                        *t = *b;
                    }
                }
                self.inner.write(offset, &torn)?;
                Err(pyrsia_embedded::ram_flash::RamFlashError::OutOfBounds)
            }
        }
    }
}

/// A std stream (a socket) as an `embedded-io` stream.
pub struct Stream<S>(pub S);

impl<S> embedded_io::ErrorType for Stream<S> {
    type Error = embedded_io::ErrorKind;
}

impl<S: std::io::Read> embedded_io::Read for Stream<S> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf).map_err(|_| embedded_io::ErrorKind::Other)
    }
}

impl<S: std::io::Write> embedded_io::Write for Stream<S> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf).map_err(|_| embedded_io::ErrorKind::Other)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush().map_err(|_| embedded_io::ErrorKind::Other)
    }
}
