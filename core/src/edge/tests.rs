use super::*;
use proptest::prelude::*;

fn round_trip<'f, T>(message: &T, buf: &'f mut [u8]) -> T
where
    T: Serialize + Deserialize<'f>,
{
    let len = encode(message, buf).unwrap().len();
    assert_eq!(buf[len - 1], 0, "frames end in 0x00");
    assert!(
        !buf[..len - 1].contains(&0),
        "COBS leaves no 0x00 inside a frame"
    );
    decode(&mut buf[..len - 1]).unwrap()
}

#[test]
fn every_message_round_trips() {
    let digest = Digest::sha256(b"layer");
    let requests = [
        Request::Hello {
            version: EDGE_VERSION,
        },
        Request::Checkpoint { have: 7 },
        Request::Membership { epoch: 2 },
        Request::Lookup {
            digest,
            tree_size: 9,
        },
        Request::Piece {
            digest,
            index: 3,
            offset: 8192,
        },
        Request::Goodbye,
    ];
    for request in requests {
        let mut buf = [0u8; MAX_REQUEST_FRAME_LEN];
        assert_eq!(round_trip(&request, &mut buf), request);
    }
    let hashes = [[7u8; 32], [9u8; 32]];
    let data = [0u8; CHUNK_LEN];
    let responses = [
        Response::Hello {
            version: EDGE_VERSION,
        },
        Response::Checkpoint {
            note: "origin\n1\n",
            link: Hashes::from_hashes(&hashes),
        },
        Response::Membership {
            entry: Some(b"entry"),
        },
        Response::Membership { entry: None },
        Response::Committed {
            index: 4,
            tree_size: 9,
            entry: b"commit",
            proof: Hashes::EMPTY,
        },
        Response::Piece {
            blob_size: 99,
            offset: 0,
            data: &data,
            proof: Hashes::from_hashes(&hashes),
        },
        Response::Goodbye,
        Response::Error(ErrorCode::Unavailable),
    ];
    for response in responses {
        let mut buf = [0u8; MAX_FRAME_LEN];
        assert_eq!(round_trip(&response, &mut buf), response);
    }
}

#[test]
fn the_largest_messages_fit_their_frames() {
    let note = "n".repeat(MAX_NOTE_LEN);
    let link = [[0u8; 32]; MAX_PROOF_HASHES];
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let checkpoint = Response::Checkpoint {
        note: &note,
        link: Hashes::from_hashes(&link),
    };
    assert!(encode(&checkpoint, &mut buf).is_ok());
    let entry = vec![0u8; MAX_EDGE_ENTRY_LEN];
    let committed = Response::Committed {
        index: u64::MAX,
        tree_size: u64::MAX,
        entry: &entry,
        proof: Hashes::from_hashes(&link),
    };
    assert!(encode(&committed, &mut buf).is_ok());
    let digest = Digest::sha256(b"x");
    let mut small = [0u8; MAX_REQUEST_FRAME_LEN];
    let piece = Request::Piece {
        digest,
        index: u32::MAX,
        offset: u32::MAX,
    };
    assert!(encode(&piece, &mut small).is_ok());
    let lookup = Request::Lookup {
        digest,
        tree_size: u64::MAX,
    };
    assert!(encode(&lookup, &mut small).is_ok());
}

#[test]
fn a_message_larger_than_the_buffer_is_refused() {
    let data = [1u8; 100];
    let piece = Response::Piece {
        blob_size: 1,
        offset: 0,
        data: &data,
        proof: Hashes::EMPTY,
    };
    let mut buf = [0u8; 64];
    assert_eq!(encode(&piece, &mut buf).unwrap_err(), FrameError::TooLong);
}

#[test]
fn malformed_frames_are_errors() {
    // Not COBS: a code byte pointing past the end.
    let mut bad = [0x09u8, 1, 2];
    assert_eq!(
        decode::<Request>(&mut bad).unwrap_err(),
        FrameError::Malformed
    );
    // Valid COBS, unknown variant.
    let mut buf = [0u8; 16];
    let len = encode(&200u8, &mut buf).unwrap().len();
    assert_eq!(
        decode::<Request>(&mut buf[..len - 1]).unwrap_err(),
        FrameError::Malformed
    );
    // A message followed by trailing bytes.
    let mut buf = [0u8; 16];
    let len = encode(&(Request::Goodbye, 5u8), &mut buf).unwrap().len();
    assert_eq!(
        decode::<Request>(&mut buf[..len - 1]).unwrap_err(),
        FrameError::Malformed
    );
    // Hash lists that are not whole hashes, or too many.
    assert!(Hashes(&[0u8; 33]).to_vec().is_none());
    let many = [0u8; 32 * (MAX_PROOF_HASHES + 1)];
    assert!(Hashes(&many).to_vec().is_none());
    assert_eq!(Hashes(&[5u8; 64]).to_vec().unwrap().len(), 2);
    assert_eq!(Hashes(&[5u8; 64]).as_hashes().unwrap(), &[[5u8; 32]; 2]);
    assert!(Hashes(&[0u8; 33]).as_hashes().is_none());
    assert!(Hashes(&many).as_hashes().is_none());
}

#[test]
fn the_frame_reader_splits_a_stream_and_drops_long_frames() {
    let mut wire = [0u8; 256];
    let mut at = 0;
    for request in [Request::Checkpoint { have: 1 }, Request::Goodbye] {
        at += encode(&request, &mut wire[at..]).unwrap().len();
    }
    let mut buf = [0u8; MAX_REQUEST_LEN];
    let mut reader = FrameReader::new(&mut buf);
    // Byte by byte across the first frame.
    let mut consumed_total = 0;
    let first = loop {
        match reader.push(&wire[consumed_total..consumed_total + 1]) {
            Push::More => consumed_total += 1,
            Push::Frame { consumed } => {
                consumed_total += consumed;
                break decode::<Request>(reader.frame()).unwrap();
            }
            Push::TooLong { .. } => panic!("short frame dropped"),
        }
    };
    assert_eq!(first, Request::Checkpoint { have: 1 });
    let Push::Frame { consumed } = reader.push(&wire[consumed_total..at]) else {
        panic!("second frame not found")
    };
    assert_eq!(consumed_total + consumed, at);
    assert_eq!(decode::<Request>(reader.frame()).unwrap(), Request::Goodbye);

    let mut small = [0u8; 4];
    let mut tiny = FrameReader::new(&mut small);
    let long = [1u8, 2, 3, 4, 5, 6, 0, 9];
    assert_eq!(tiny.push(&long), Push::TooLong { consumed: 7 });
    assert_eq!(tiny.push(&[0x01, 0x00]), Push::Frame { consumed: 2 });
    assert_eq!(tiny.frame(), &[0x01]);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<Request>(&mut bytes.clone());
        let _ = decode::<Response<'_>>(&mut bytes);
        let mut buf = [0u8; 64];
        let mut reader = FrameReader::new(&mut buf);
        let _ = reader.push(&bytes);
    }
}
