//! Edge-protocol decoding: COBS frames and postcard messages from arbitrary bytes, and the
//! stream splitter with a small buffer. Errors only, never a panic; a decoded message encodes
//! back to a frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_core::edge::{
    FrameReader, MAX_FRAME_LEN, MAX_REQUEST_LEN, Push, Request, Response, decode, encode,
};

fuzz_target!(|data: &[u8]| {
    let mut copy = data.to_vec();
    if let Ok(request) = decode::<Request>(&mut copy) {
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let len = encode(&request, &mut buf)
            .expect("a decoded request encodes")
            .len();
        assert_eq!(decode::<Request>(&mut buf[..len - 1]).ok(), Some(request));
    }
    let mut copy = data.to_vec();
    if let Ok(response) = decode::<Response<'_>>(&mut copy) {
        if let Response::Checkpoint { link, .. } | Response::Piece { proof: link, .. } = response {
            let _ = link.as_hashes();
        }
    }
    let mut buf = [0u8; MAX_REQUEST_LEN];
    let mut reader = FrameReader::new(&mut buf);
    let mut rest = data;
    while !rest.is_empty() {
        match reader.push(rest) {
            Push::More => break,
            Push::Frame { consumed } => {
                assert!(consumed <= rest.len());
                let frame = reader.frame();
                assert!(frame.len() <= MAX_REQUEST_LEN);
                let _ = decode::<Request>(frame);
                rest = &rest[consumed..];
            }
            Push::TooLong { consumed } => rest = &rest[consumed..],
        }
    }
});
