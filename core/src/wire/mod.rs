//! Messages between nodes: versioned postcard [`frame`]s whose size is checked before anything
//! is allocated, and signed [`envelope`]s over canonical bytes.

pub mod envelope;
pub mod frame;

pub use envelope::Envelope;
pub use frame::{FRAME_HEADER_LEN, FRAME_LEN_MAX, FrameHeader, Split, WIRE_VERSION, WireError};
