//! What can go wrong in the edge cache, by layer.

use pyrsia_core::edge::ErrorCode;
use pyrsia_core::light::LightError;

use crate::link::LinkError;
use crate::store::StoreError;

/// Why an edge-cache operation failed. Nothing is stored or trusted after an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EdgeError {
    /// The link to the parent or the peer failed.
    Link(LinkError),
    /// The flash failed or is too small.
    Store(StoreError),
    /// The light-client check refused a checkpoint or a proof.
    Light(LightError),
    /// The parent answered with an error.
    Refused(ErrorCode),
    /// The parent answered another message than the one asked for, or one that contradicts
    /// what it said before (a blob size, a tree size, an offset).
    Unexpected,
    /// The checkpoint note does not parse.
    BadNote,
    /// A proof is malformed (not whole hashes, too many).
    BadProof,
    /// A piece's bytes do not hash to what the log commits: nothing was stored.
    BadPiece,
    /// A blob of several pieces whose commit lists no piece root: it cannot be verified piece
    /// by piece.
    NoPieceRoot,
    /// No checkpoint trusted yet (refresh first).
    NoCheckpoint,
}

impl EdgeError {
    /// What an answer other than the expected one means: the parent's refusal, or
    /// [`EdgeError::Unexpected`].
    pub fn answered(answer: &pyrsia_core::edge::Response<'_>) -> Self {
        match answer {
            pyrsia_core::edge::Response::Error(code) => EdgeError::Refused(*code),
            _ => EdgeError::Unexpected,
        }
    }
}

impl From<LinkError> for EdgeError {
    fn from(e: LinkError) -> Self {
        EdgeError::Link(e)
    }
}

impl From<StoreError> for EdgeError {
    fn from(e: StoreError) -> Self {
        EdgeError::Store(e)
    }
}

impl From<LightError> for EdgeError {
    fn from(e: LightError) -> Self {
        EdgeError::Light(e)
    }
}

impl core::fmt::Display for EdgeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EdgeError::Link(e) => write!(f, "{e}"),
            EdgeError::Store(e) => write!(f, "{e}"),
            EdgeError::Light(e) => write!(f, "{e}"),
            EdgeError::Refused(code) => write!(f, "parent refused: {}", code.as_str()),
            EdgeError::Unexpected => f.write_str("parent answered out of protocol"),
            EdgeError::BadNote => f.write_str("checkpoint note does not parse"),
            EdgeError::BadProof => f.write_str("malformed proof"),
            EdgeError::BadPiece => f.write_str("piece does not match the log"),
            EdgeError::NoPieceRoot => {
                f.write_str("multi-piece blob without a committed piece root")
            }
            EdgeError::NoCheckpoint => f.write_str("no trusted checkpoint"),
        }
    }
}
