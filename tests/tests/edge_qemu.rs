//! The edge cache on an emulated Cortex-M4 (qemu mps2-an386): a real node serves the edge
//! protocol; the firmware refreshes trust from it over UART0, fetches and verifies a committed
//! image into its flash, then serves it on UART1 to a LAN peer (the same edge-cache code on
//! the host), which verifies it again against the genesis. The firmware's exit code comes
//! through semihosting. A firmware provisioned with another network's genesis refuses the
//! node's checkpoint and exits with 1.
//!
//! The UART moves about 15 KB/s under qemu, so this test fetches a small image; the
//! benchmark (`pyrsia-bench-edge`) fetches a two-piece layer under `-icount shift=0`.

use std::time::Duration;

use pyrsia_core::identity::SecretKey;
use pyrsia_core::tlog::entry::{Entry, Genesis, KeyList};
use pyrsia_tests::edge::{
    EXIT_AFTER_SESSION, node_with_committed_image, run_firmware, start_qemu, unix_now,
    write_provisioning,
};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::process::free_port;
use pyrsia_tests::registry::Registry;

/// The node's edge port answers a frame that is not a request with BAD_REQUEST, a digest the
/// log never committed with NOT_FOUND, and closes a session after three malformed frames.
fn node_refuses_malformed_edge_frames(edge_port: u16) {
    use pyrsia_core::edge::{ErrorCode, Request, Response, decode};
    use pyrsia_tests::edge::{edge_call, read_edge_frame};
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", edge_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let lookup = Request::Lookup {
        digest: pyrsia_core::digest::Digest::sha256(b"never"),
        tree_size: 1,
    };
    let mut frame = edge_call(&mut stream, &lookup).expect("an answer");
    assert_eq!(
        decode::<Response<'_>>(&mut frame).unwrap(),
        Response::Error(ErrorCode::NotFound)
    );
    for _ in 0..3 {
        stream.write_all(&[0x05, 0xFF, 0x00]).unwrap();
        let mut frame = read_edge_frame(&mut stream).expect("an answer");
        assert_eq!(
            decode::<Response<'_>>(&mut frame).unwrap(),
            Response::Error(ErrorCode::BadRequest)
        );
    }
    assert_eq!(
        read_edge_frame(&mut stream),
        None,
        "closed after three malformed frames"
    );
}

#[test]
fn emulated_edge_cache_fetches_verifies_and_serves_an_image() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let image = &images[0];
    let layer = image.layers[0].blob.digest;
    let (_node, edge_port, genesis) =
        node_with_committed_image(work.path(), &registry, image, "docker.io/library/small");
    node_refuses_malformed_edge_frames(edge_port);

    let log = run_firmware(
        work.path(),
        edge_port,
        &genesis,
        &[image.digest, layer],
        false,
    );
    assert!(log.contains("edge: trusted checkpoint size="), "{log}");
    for digest in [image.digest, layer] {
        assert!(
            log.contains(&format!("edge: verified {}", digest.hex().as_str())),
            "{log}"
        );
    }
    assert!(log.contains("edge: fetched 2 artifacts, 2 pieces"), "{log}");

    // Provisioned with another network's genesis, the firmware refuses the node's checkpoint.
    let stranger = SecretKey::from_seed([9; 32]).public().to_bytes();
    let foreign = Entry::Genesis(Genesis {
        origin: "pyrsia/another-network",
        faults: 0,
        members: KeyList(&stranger),
        created: 1,
    })
    .encode();
    let provisioning = work.path().join("foreign.bin");
    write_provisioning(
        &provisioning,
        unix_now(),
        EXIT_AFTER_SESSION,
        &[layer],
        &foreign,
    );
    let log_path = work.path().join("qemu-foreign.log");
    let mut qemu = start_qemu(&provisioning, edge_port, free_port(), false, &log_path);
    let status = qemu
        .wait_exit(Duration::from_secs(120))
        .expect("firmware exits");
    let log = qemu.log_text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("edge: refresh refused: checkpoint is for another log"),
        "{log}"
    );
}
