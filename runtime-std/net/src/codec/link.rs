//! Frames on a piece link (`crate::piece_link`): the request's id (8 bytes, big-endian), then
//! the log-sync protocol's own request or answer frame, with the same size limits, one after
//! another on one long-lived stream (nothing is closed after a frame). An answer carries the
//! id of the request it answers. What does not decode, or is over a limit, is `InvalidData`,
//! as on a log-sync stream.

use super::*;

/// Reads the id in front of a frame.
async fn read_id<T>(io: &mut T) -> io::Result<u64>
where
    T: AsyncRead + Unpin + Send,
{
    let mut id = [0u8; 8];
    io.read_exact(&mut id).await?;
    Ok(u64::from_be_bytes(id))
}

/// Reads the next request frame and its id.
pub(crate) async fn read_request<T>(io: &mut T) -> io::Result<(u64, SyncRequest)>
where
    T: AsyncRead + Unpin + Send,
{
    let id = read_id(io).await?;
    Ok((id, read_request_frame(io, &LOG_SYNC_PROTOCOL).await?))
}

/// Writes a request frame under `id`.
pub(crate) async fn write_request<T>(io: &mut T, id: u64, request: &SyncRequest) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let mut frame = id.to_be_bytes().to_vec();
    frame.extend(
        encode_vec(request)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
    );
    io.write_all(&frame).await
}

/// Reads the next answer frame and the id of the request it answers.
pub(crate) async fn read_response<T>(io: &mut T) -> io::Result<(u64, SyncResponse)>
where
    T: AsyncRead + Unpin + Send,
{
    use libp2p::request_response::Codec as _;
    let id = read_id(io).await?;
    Ok((id, SyncCodec.read_response(&LOG_SYNC_PROTOCOL, io).await?))
}

/// Writes the answer to request `id` (piece bytes straight from their buffer, which is then
/// recycled).
pub(crate) async fn write_response<T>(io: &mut T, id: u64, response: SyncResponse) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    match response {
        SyncResponse::Piece { total, bytes } => {
            let written = piece_frame::write_piece_open(io, &id.to_be_bytes(), total, &bytes).await;
            bytes.recycle();
            written
        }
        response => {
            let mut frame = id.to_be_bytes().to_vec();
            frame.extend(
                encode_vec(&response)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
            );
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
            write_request(&mut wire, 0, &request).await.unwrap();
            write_request(&mut wire, 1, &request).await.unwrap();
            write_response(&mut wire, 1, SyncResponse::Busy)
                .await
                .unwrap();
            write_response(&mut wire, 0, SyncResponse::Missing)
                .await
                .unwrap();
        });
        let mut io = Cursor::new(wire);
        smol::block_on(async {
            for id in 0..2 {
                assert!(matches!(
                    read_request(&mut io).await.unwrap(),
                    (read, SyncRequest::Piece { offset, .. }) if read == id && offset == 1 << 20
                ));
            }
            assert!(matches!(
                read_response(&mut io).await.unwrap(),
                (1, SyncResponse::Busy)
            ));
            assert!(matches!(
                read_response(&mut io).await.unwrap(),
                (0, SyncResponse::Missing)
            ));
        });
    }

    #[test]
    fn an_oversized_or_garbled_request_is_invalid_data() {
        for junk in [
            vec![0xff; 64],
            [vec![0; 8], vec![0x01, 0x00, 0x00, 0x00, 0x02, 0xc3, 0x00]].concat(),
        ] {
            let mut io = Cursor::new(junk);
            let error = smol::block_on(read_request(&mut io)).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        }
    }
}
