//! Frames on a piece link (`crate::piece_link`): the log-sync protocol's own request and
//! answer frames, with the same size limits, one after another on one long-lived stream
//! (nothing is closed after a frame). What does not decode, or is over a limit, is
//! `InvalidData`, as on a log-sync stream.

use super::*;

/// Reads the next request frame.
pub(crate) async fn read_request<T>(io: &mut T) -> io::Result<SyncRequest>
where
    T: AsyncRead + Unpin + Send,
{
    read_request_frame(io, &LOG_SYNC_PROTOCOL).await
}

/// Writes a request frame.
pub(crate) async fn write_request<T>(io: &mut T, request: &SyncRequest) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let frame = encode_vec(request)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    io.write_all(&frame).await
}

/// Reads the next answer frame.
pub(crate) async fn read_response<T>(io: &mut T) -> io::Result<SyncResponse>
where
    T: AsyncRead + Unpin + Send,
{
    use libp2p::request_response::Codec as _;
    SyncCodec.read_response(&LOG_SYNC_PROTOCOL, io).await
}

/// Writes an answer frame (piece bytes straight from their buffer, which is then recycled).
pub(crate) async fn write_response<T>(io: &mut T, response: SyncResponse) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    match response {
        SyncResponse::Piece { total, bytes } => {
            let written = piece_frame::write_piece_open(io, total, &bytes).await;
            bytes.recycle();
            written
        }
        response => {
            let frame = encode_vec(&response)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            io.write_all(&frame).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[test]
    fn requests_and_answers_follow_each_other_on_one_stream() {
        let request = SyncRequest::Piece {
            digest: [7; 32],
            offset: 1 << 20,
            len: 1 << 20,
            fetch: None,
            insist: false,
        };
        let mut wire = Vec::new();
        smol::block_on(async {
            write_request(&mut wire, &request).await.unwrap();
            write_request(&mut wire, &request).await.unwrap();
            write_response(&mut wire, SyncResponse::Busy).await.unwrap();
            write_response(&mut wire, SyncResponse::Missing)
                .await
                .unwrap();
        });
        let mut io = Cursor::new(wire);
        smol::block_on(async {
            for _ in 0..2 {
                assert!(matches!(
                    read_request(&mut io).await.unwrap(),
                    SyncRequest::Piece { offset, .. } if offset == 1 << 20
                ));
            }
            assert!(matches!(
                read_response(&mut io).await.unwrap(),
                SyncResponse::Busy
            ));
            assert!(matches!(
                read_response(&mut io).await.unwrap(),
                SyncResponse::Missing
            ));
        });
    }

    #[test]
    fn an_oversized_or_garbled_request_is_invalid_data() {
        for junk in [
            vec![0xff; 64],
            vec![0x01, 0x00, 0x00, 0x00, 0x02, 0xc3, 0x00],
        ] {
            let mut io = Cursor::new(junk);
            let error = smol::block_on(read_request(&mut io)).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        }
    }
}
