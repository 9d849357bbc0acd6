//! The piece answer's frame, written and read without passing its bytes through postcard:
//! the same wire format as any [`SyncResponse`] frame (header, then postcard's variant index,
//! the blob's size and the byte string's length as varints, then the bytes), but the bytes go
//! from the answer's buffer to the stream, and from the stream into the answer's buffer, in
//! one copy each way. Encoding a 1 MiB piece through postcard copied it three times on the
//! sender (a growing vector, then the frame) and twice on the receiver (the payload, then the
//! decoded vector): copies that cost as much CPU as the encryption of the piece.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use pyrsia_core::wire::{FRAME_HEADER_LEN, FRAME_LEN_MAX, WIRE_VERSION};

use super::SyncResponse;

/// Postcard's variant index of [`SyncResponse::Piece`] (checked against postcard in the tests).
pub(super) const PIECE_VARIANT: u8 = 2;

/// The longest varint of a `u64` in postcard's encoding.
const VARINT_MAX: usize = 10;

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The frame header and payload prefix of a piece answer of `len` bytes.
fn piece_prefix(total: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(FRAME_HEADER_LEN + 1 + 2 * VARINT_MAX);
    prefix.push(WIRE_VERSION);
    prefix.extend_from_slice(&[0; 4]);
    prefix.push(PIECE_VARIANT);
    push_varint(&mut prefix, total);
    push_varint(&mut prefix, len as u64);
    let payload = (prefix.len() - FRAME_HEADER_LEN)
        .checked_add(len)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n <= FRAME_LEN_MAX)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "piece too large"))?;
    prefix[1..FRAME_HEADER_LEN].copy_from_slice(&payload.to_le_bytes());
    Ok(prefix)
}

/// Writes a piece answer: the frame's header and prefix, then `bytes` straight from the
/// answer's buffer.
pub(super) async fn write_piece<T>(io: &mut T, total: u64, bytes: &[u8]) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    write_piece_open(io, &[], total, bytes).await?;
    io.close().await
}

/// Writes `lead` (a piece link's request id), then a piece answer, and leaves the stream open
/// (a piece link carries one answer after another).
pub(super) async fn write_piece_open<T>(
    io: &mut T,
    lead: &[u8],
    total: u64,
    bytes: &[u8],
) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let mut head = lead.to_vec();
    head.extend_from_slice(&piece_prefix(total, bytes.len())?);
    io.write_all(&head).await?;
    io.write_all(bytes).await
}

fn malformed(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed piece: {why}"),
    )
}

/// Reads a varint of at most `left` bytes; returns it and the bytes it took.
async fn read_varint<T>(io: &mut T, left: usize) -> io::Result<(u64, usize)>
where
    T: AsyncRead + Unpin + Send,
{
    let mut value = 0u64;
    for i in 0..VARINT_MAX.min(left) {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        let bits = u64::from(byte[0] & 0x7f);
        if i == VARINT_MAX - 1 && bits > 1 {
            return Err(malformed("varint beyond 64 bits"));
        }
        value |= bits << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(malformed("varint runs past the frame"))
}

/// Reads the rest of a piece answer's payload of `payload_len` bytes, its variant index
/// already read: the size, the length, then the bytes into a buffer of exactly that length.
/// The length must fill the payload exactly (as postcard's decoding requires).
pub(super) async fn read_piece_rest<T>(io: &mut T, payload_len: usize) -> io::Result<SyncResponse>
where
    T: AsyncRead + Unpin + Send,
{
    let mut left = payload_len - 1;
    let (total, used) = read_varint(io, left).await?;
    left -= used;
    let (len, used) = read_varint(io, left).await?;
    left -= used;
    if len != left as u64 {
        return Err(malformed("its length does not fill the frame"));
    }
    // A recycled buffer (its old bytes all overwritten here): the reader gives it back.
    let mut bytes = pyrsia_std::buffers::take(left);
    io.read_exact(&mut bytes).await?;
    Ok(SyncResponse::Piece {
        total,
        bytes: bytes.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrsia_core::wire::frame::encode_vec;

    fn read(frame: &[u8]) -> io::Result<SyncResponse> {
        smol::block_on(async {
            let mut io = futures::io::Cursor::new(frame);
            let mut header = [0u8; FRAME_HEADER_LEN + 1];
            io.read_exact(&mut header).await?;
            assert_eq!(header[FRAME_HEADER_LEN], PIECE_VARIANT);
            let len = u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize;
            read_piece_rest(&mut io, len).await
        })
    }

    #[test]
    fn a_piece_frame_is_the_frame_postcard_writes_and_reads_back() {
        for (total, len) in [(0, 0), (5, 3), (300, 200), (u64::MAX, 1 << 20)] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let message = SyncResponse::Piece {
                total,
                bytes: bytes.clone().into(),
            };
            let mut wire = Vec::new();
            smol::block_on(write_piece(
                &mut futures::io::Cursor::new(&mut wire),
                total,
                &bytes,
            ))
            .unwrap();
            assert_eq!(
                wire,
                encode_vec(&message).unwrap(),
                "total {total}, {len} bytes"
            );
            assert_eq!(read(&wire).unwrap(), message);
        }
    }

    #[test]
    fn a_piece_whose_length_does_not_fill_its_frame_is_malformed() {
        let mut wire = encode_vec(&SyncResponse::Piece {
            total: 9,
            bytes: vec![1, 2, 3].into(),
        })
        .unwrap();
        // One byte more in the frame than the piece says.
        wire.push(0);
        let len = (wire.len() - FRAME_HEADER_LEN) as u32;
        wire[1..5].copy_from_slice(&len.to_le_bytes());
        let error = read(&wire).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        // A varint that never ends within the frame.
        let mut endless = vec![WIRE_VERSION, 4, 0, 0, 0, PIECE_VARIANT, 0xff, 0xff, 0xff];
        endless.truncate(9);
        let error = read(&endless).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    }
}
