//! The bytes of one piece as a peer answer carries them, without a copy on the way out.
//!
//! A piece a node serves comes from one of two places: the store (read into a buffer of the
//! answer's own) or the shelf of a download still running here (a piece received and not
//! yet written, held as `Arc<Vec<u8>>` by the download). Serving a shelf piece used to copy
//! its mebibyte into a fresh buffer: 1.5% of a 16-node swarm's CPU (BENCHMARKS.md, "Where a
//! 16-node swarm's CPU goes"). [`PieceBytes`] carries either, and the codec writes it to the
//! stream from where it lies.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::buffers;

/// A piece's bytes: a buffer of the answer's own, or one shared with a download's shelf.
/// Reads as `&[u8]`; on the wire it is the byte string a `Vec<u8>` would be (postcard: the
/// length, then the bytes), so peers see no difference.
#[derive(Clone)]
pub enum PieceBytes {
    /// A buffer of its own (read from the store or the wire; from [`buffers::take`]).
    Owned(Vec<u8>),
    /// A piece on a download's shelf, shared with it.
    Shared(Arc<Vec<u8>>),
}

impl PieceBytes {
    /// The bytes as a vector of their own: moved when owned (or when the shelf let go of
    /// them), copied only when the shelf still holds them. For a reader that keeps the piece.
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            PieceBytes::Owned(bytes) => bytes,
            PieceBytes::Shared(shared) => {
                Arc::try_unwrap(shared).unwrap_or_else(|still_shared| still_shared.to_vec())
            }
        }
    }

    /// Hands the buffer back to [`buffers`] for reuse (a shared one only when this was its
    /// last holder): what the codec does once the piece is written out.
    pub fn recycle(self) {
        match self {
            PieceBytes::Owned(bytes) => buffers::give(bytes),
            PieceBytes::Shared(shared) => buffers::give_shared(shared),
        }
    }
}

impl Deref for PieceBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            PieceBytes::Owned(bytes) => bytes,
            PieceBytes::Shared(shared) => shared,
        }
    }
}

impl AsRef<[u8]> for PieceBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for PieceBytes {
    fn from(bytes: Vec<u8>) -> Self {
        PieceBytes::Owned(bytes)
    }
}

impl From<Arc<Vec<u8>>> for PieceBytes {
    fn from(shared: Arc<Vec<u8>>) -> Self {
        PieceBytes::Shared(shared)
    }
}

impl PartialEq for PieceBytes {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl Eq for PieceBytes {}

impl fmt::Debug for PieceBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self[..], f)
    }
}

impl Serialize for PieceBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self)
    }
}

impl<'de> Deserialize<'de> for PieceBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;

        impl<'de> serde::de::Visitor<'de> for BytesVisitor {
            type Value = PieceBytes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<PieceBytes, E> {
                Ok(PieceBytes::Owned(bytes.to_vec()))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<PieceBytes, E> {
                Ok(PieceBytes::Owned(bytes))
            }
        }

        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_owned_bytes_read_and_compare_alike() {
        let owned = PieceBytes::from(vec![1, 2, 3]);
        let shelf = Arc::new(vec![1, 2, 3]);
        let shared = PieceBytes::from(shelf.clone());
        assert_eq!(owned, shared);
        assert_eq!(&shared[..], &[1, 2, 3]);
        assert_eq!(format!("{shared:?}"), "[1, 2, 3]");
        // The shelf still holds it: a copy; once it let go, the vector itself.
        assert_eq!(shared.clone().into_vec(), vec![1, 2, 3]);
        drop(shelf);
        assert_eq!(shared.into_vec(), vec![1, 2, 3]);
    }

    #[test]
    fn on_the_wire_it_is_the_byte_string_of_a_vector() {
        let bytes: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        // postcard writes a `Vec<u8>` element by element: the length, then each byte.
        let wire = postcard::to_allocvec(&PieceBytes::from(Arc::new(bytes.clone()))).unwrap();
        assert_eq!(wire, postcard::to_allocvec(&bytes).unwrap());
        let back: PieceBytes = postcard::from_bytes(&wire).unwrap();
        assert_eq!(back, PieceBytes::from(bytes));
    }
}
