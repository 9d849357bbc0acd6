//! The registry protocol, sans IO: [`route`] turns a request's method, path and query into a
//! validated [`Route`] or an [`OciError`]; [`AcceptSet`] negotiates manifest media types;
//! [`range`] decides 200/206/416 for blobs. No blob byte ever passes through here: only names,
//! digests, sizes and ranges.

mod accept;
mod challenge;
mod error;
pub mod range;
mod route;

pub use accept::AcceptSet;
pub use challenge::{BearerChallenge, ChallengeError};
pub use error::{Code, ErrorBody, OciError};
pub use range::{ByteRange, ContentRange, RangeOutcome};
pub use route::{Endpoint, Method, Route, route, split_target};
