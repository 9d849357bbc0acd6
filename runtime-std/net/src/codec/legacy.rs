//! `/pyrsia/sync/1`, the protocol of nodes built before super-seeding, spoken beside
//! `/pyrsia/sync/2` so a network upgrades one node at a time. The two differ in two places:
//!
//! - A v1 [`SyncRequest::Piece`] has no `insist` field, the last of the variant: its postcard
//!   encoding is the v2 one without the final byte (a `bool`). A v1 asker is always served
//!   (it knows no redirect), so its piece request reads as insisting.
//! - v1 has no [`SyncResponse::Elsewhere`]; it is never sent on v1 (an insisting request is
//!   not redirected), and [`response_for_v1`] turns one into `Busy` should it be.
//!
//! Every other message is encoded alike in both.

use pyrsia_core::wire::WireError;
use pyrsia_core::wire::frame::frame_payload;

use super::{SyncRequest, SyncResponse};

/// The postcard variant index of [`SyncRequest::Piece`] (its first byte on the wire).
const PIECE_REQUEST_VARIANT: u8 = 2;

/// A v1 request payload as its v2 encoding: a piece request gains `insist: true`.
pub fn request_from_v1(mut payload: Vec<u8>) -> Vec<u8> {
    if payload.first() == Some(&PIECE_REQUEST_VARIANT) {
        payload.push(1);
    }
    payload
}

/// `request` as a v1 frame: a piece request loses its `insist` field.
pub fn request_frame_v1(request: &SyncRequest) -> Result<Vec<u8>, WireError> {
    let mut payload = postcard::to_allocvec(request).map_err(|_| WireError::BufferFull)?;
    if matches!(request, SyncRequest::Piece { .. }) {
        payload.pop();
    }
    frame_payload(&payload)
}

/// What a v1 asker understands of `response`.
pub fn response_for_v1(response: SyncResponse) -> SyncResponse {
    match response {
        SyncResponse::Elsewhere(_) => SyncResponse::Busy,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrsia_core::wire::frame::encode_vec;
    use serde::{Deserialize, Serialize};

    /// The v1 piece request as nodes built before super-seeding declared it.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum V1Request {
        Checkpoint,
        Entries {
            start: u64,
            count: u64,
        },
        Piece {
            digest: [u8; 32],
            offset: u64,
            len: u32,
            fetch: Option<(String, String)>,
        },
    }

    #[test]
    fn v1_piece_requests_read_as_insisting_and_are_written_without_the_flag() {
        let old = V1Request::Piece {
            digest: [9; 32],
            offset: 3 << 20,
            len: 1 << 20,
            fetch: Some(("registry".into(), "library/x".into())),
        };
        let payload = postcard::to_allocvec(&old).unwrap();
        let read: SyncRequest = postcard::from_bytes(&request_from_v1(payload.clone())).unwrap();
        let current = SyncRequest::Piece {
            digest: [9; 32],
            offset: 3 << 20,
            len: 1 << 20,
            fetch: Some(("registry".into(), "library/x".into())),
            insist: true,
        };
        assert_eq!(read, current);

        for insist in [true, false] {
            let request = match current.clone() {
                SyncRequest::Piece {
                    insist: _,
                    digest,
                    offset,
                    len,
                    fetch,
                } => SyncRequest::Piece {
                    digest,
                    offset,
                    len,
                    fetch,
                    insist,
                },
                _ => unreachable!(),
            };
            let frame = request_frame_v1(&request).unwrap();
            let back: V1Request = pyrsia_core::wire::frame::decode(&frame, 1024).unwrap();
            assert_eq!(
                back, old,
                "a v1 node reads it whole (header length included)"
            );
        }

        // Other requests are the same bytes in both versions.
        let entries = SyncRequest::Entries { start: 4, count: 9 };
        let frame = request_frame_v1(&entries).unwrap();
        assert_eq!(frame, encode_vec(&entries).unwrap());
        let old_entries =
            postcard::to_allocvec(&V1Request::Entries { start: 4, count: 9 }).unwrap();
        assert_eq!(request_from_v1(old_entries.clone()), old_entries);
    }

    #[test]
    fn a_v1_asker_is_never_sent_elsewhere() {
        assert_eq!(
            response_for_v1(SyncResponse::Elsewhere(vec![vec![1]])),
            SyncResponse::Busy
        );
        assert_eq!(
            response_for_v1(SyncResponse::Missing),
            SyncResponse::Missing
        );
    }
}
