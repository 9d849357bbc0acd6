//! The edge cache on the host: a parent with a real log (signatures, proofs), RAM-backed flash
//! with NOR rules, power cut at every flash operation, a LAN peer served over a socket.

mod common;

use common::*;
use embedded_storage::nor_flash::NorFlash;
use pyrsia_core::digest::Digest;
use pyrsia_core::edge::{ErrorCode, Request, Response};
use pyrsia_core::light::{Freshness, LightError};
use pyrsia_core::pieces::PIECE_LEN;
use pyrsia_core::tlog::ProofError;
use pyrsia_embedded::store::{Kind, STATE_BANK_LEN, StoreError};
use pyrsia_embedded::{EdgeCache, EdgeError, Link, PeerBuffers, RamFlash, Served};

const FLASH: usize = 2 * STATE_BANK_LEN as usize + 4 * 1024 * 1024;

/// A parent with a small blob and a blob of `large` bytes committed.
fn parent_with(large: usize) -> (Parent, Digest, Digest) {
    let mut parent = Parent::new();
    let digests = parent.commit(
        "docker.io/library/edge",
        vec![blob(3000, 1), blob(large, 2)],
    );
    (parent, digests[0], digests[1])
}

/// Reads a cached blob back from flash, piece by piece.
fn read_back<F: NorFlash>(cache: &mut EdgeCache<'_, F>, digest: &Digest) -> Vec<u8> {
    let first = cache.store().piece(digest, 0).expect("piece 0 cached");
    let count = pyrsia_core::pieces::piece_count(first.size) as u32;
    let mut out = Vec::new();
    for index in 0..count {
        let piece = cache.store().piece(digest, index).expect("piece cached");
        let mut buf = vec![0u8; piece.data_len() as usize];
        cache.store_mut().read(piece.data_at(), &mut buf).unwrap();
        out.extend(buf);
    }
    out
}

#[test]
fn fetches_verifies_and_keeps_it_across_a_reset() {
    let (mut parent, small, large) = parent_with(2 * PIECE_LEN as usize + 5000);
    let mut memory = vec![0xFFu8; FLASH];
    {
        let mut cache = open_cache(RamFlash::new(&mut memory), &parent.genesis).unwrap();
        let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
        cache.hello(&mut link).unwrap();
        assert_eq!(
            cache.refresh(&mut link, NOW + 60).unwrap(),
            Freshness::Fresh
        );
        cache.fetch(&mut link, &small).unwrap();
        cache.fetch(&mut link, &large).unwrap();
        assert!(cache.holds(&small) && cache.holds(&large));
        let bytes = read_back(&mut cache, &large);
        drop(link);
        assert_eq!(bytes, parent.blob(&large));
        assert_eq!(read_back(&mut cache, &small), parent.blob(&small));
    }
    // A reset: everything comes back from flash, trust included, without the parent.
    let mut cache = open_cache(RamFlash::new(&mut memory), &parent.genesis).unwrap();
    assert_eq!(cache.trusted().unwrap().size, parent.size());
    assert!(cache.holds(&small) && cache.holds(&large));
    assert_eq!(read_back(&mut cache, &large), parent.blob(&large));
    // Fetching again asks the parent for nothing.
    parent.piece_requests = 0;
    let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
    cache.fetch(&mut link, &large).unwrap();
    drop(link);
    assert_eq!(parent.piece_requests, 0);
}

#[test]
fn a_forged_checkpoint_is_refused_and_nothing_saved() {
    let (mut parent, small, _) = parent_with(10);
    parent.faults.forged_checkpoint = true;
    let mut memory = vec![0xFFu8; FLASH];
    let mut cache = open_cache(RamFlash::new(&mut memory), &parent.genesis).unwrap();
    let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
    let err = cache.refresh(&mut link, NOW).unwrap_err();
    assert_eq!(
        err,
        EdgeError::Light(LightError::NoQuorum { have: 0, need: 3 })
    );
    assert!(cache.trusted().is_none());
    assert!(cache.store().saved_state().is_none());
    assert_eq!(
        cache.fetch(&mut link, &small).unwrap_err(),
        EdgeError::NoCheckpoint
    );
}

#[test]
fn a_stale_checkpoint_is_refused_online() {
    let (mut parent, _, _) = parent_with(10);
    let mut memory = vec![0xFFu8; FLASH];
    let mut cache = open_cache(RamFlash::new(&mut memory), &parent.genesis).unwrap();
    let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
    let err = cache.refresh(&mut link, NOW + 2 * 24 * 3600).unwrap_err();
    assert_eq!(err, EdgeError::Light(LightError::TooOld));
    assert!(cache.store().saved_state().is_none());
}

#[test]
fn a_bad_inclusion_proof_stores_nothing() {
    let (mut parent, small, _) = parent_with(10);
    let mut memory = vec![0xFFu8; FLASH];
    let mut cache = open_cache(RamFlash::new(&mut memory), &parent.genesis).unwrap();
    {
        let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
        cache.refresh(&mut link, NOW).unwrap();
    }
    parent.faults.bad_inclusion = true;
    let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
    let err = cache.fetch(&mut link, &small).unwrap_err();
    assert!(
        matches!(
            err,
            EdgeError::Light(LightError::Inclusion(ProofError::RootMismatch))
        ),
        "{err:?}"
    );
    assert!(cache.store().objects().is_empty());
    // A digest the log never committed.
    let err = cache
        .fetch(&mut link, &Digest::sha256(b"never"))
        .unwrap_err();
    assert_eq!(err, EdgeError::Refused(ErrorCode::NotFound));
}

#[test]
fn a_corrupted_piece_is_not_sealed_and_the_rest_is_kept() {
    let (mut parent, small, large) = parent_with(2 * PIECE_LEN as usize + 10);
    let mut memory = vec![0xFFu8; FLASH];
    let mut cache = open_cache(RamFlash::new(&mut memory), &parent.genesis).unwrap();
    {
        let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
        cache.refresh(&mut link, NOW).unwrap();
    }
    parent.faults.corrupt_piece = Some(1);
    {
        let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
        assert_eq!(
            cache.fetch(&mut link, &large).unwrap_err(),
            EdgeError::BadPiece
        );
    }
    assert!(cache.store().piece(&large, 0).is_some());
    assert!(cache.store().piece(&large, 1).is_none());
    parent.faults.corrupt_piece = Some(0);
    {
        let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
        // A one-piece blob is checked against its digest.
        assert_eq!(
            cache.fetch(&mut link, &small).unwrap_err(),
            EdgeError::BadPiece
        );
    }
    assert!(cache.store().piece(&small, 0).is_none());
    // The parent heals: only what is missing is fetched again.
    parent.faults.corrupt_piece = None;
    parent.piece_requests = 0;
    let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
    cache.fetch(&mut link, &large).unwrap();
    cache.fetch(&mut link, &small).unwrap();
    drop(link);
    let chunks_per_piece = PIECE_LEN as usize / pyrsia_core::edge::CHUNK_LEN;
    assert_eq!(
        parent.piece_requests,
        chunks_per_piece + 1 + 1,
        "piece 1, piece 2 (10 bytes), the small blob"
    );
    assert_eq!(read_back(&mut cache, &large), parent.blob(&large));
}

#[test]
fn a_full_flash_evicts_the_oldest_and_refuses_what_cannot_fit() {
    let (mut parent, small, large) = parent_with(2 * PIECE_LEN as usize + 10);
    // Room for the journal and 512 sectors: a 1 MiB piece record takes 257 of them.
    let mut memory = vec![0xFFu8; 2 * STATE_BANK_LEN as usize + 2 * PIECE_LEN as usize];
    let mut cache = open_cache(RamFlash::new(&mut memory), &parent.genesis).unwrap();
    let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
    cache.refresh(&mut link, NOW).unwrap();
    cache.fetch(&mut link, &small).unwrap();
    cache.fetch(&mut link, &large).unwrap();
    // Piece 1 did not fit after piece 0: the log wrapped and erased the oldest records (both
    // proofs, the small blob, piece 0). The newest pieces are whole and verified.
    assert!(cache.store().piece(&large, 2).is_some());
    assert!(cache.store().piece(&large, 1).is_some());
    assert!(!cache.holds(&large));
    drop(link);
    for object in cache.store().objects().to_vec() {
        if object.kind == Kind::Piece {
            let mut buf = vec![0u8; object.data_len() as usize];
            cache.store_mut().read(object.data_at(), &mut buf).unwrap();
            let start = object.piece as usize * PIECE_LEN as usize;
            assert_eq!(buf, parent.blob(&object.digest)[start..start + buf.len()]);
        }
    }
    // A flash smaller than one piece refuses it cleanly.
    let mut tiny = vec![0xFFu8; 2 * STATE_BANK_LEN as usize + 512 * 1024];
    let mut cache = open_cache(RamFlash::new(&mut tiny), &parent.genesis).unwrap();
    let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
    cache.refresh(&mut link, NOW).unwrap();
    assert_eq!(
        cache.fetch(&mut link, &large).unwrap_err(),
        EdgeError::Store(StoreError::TooLarge)
    );
    assert!(cache.store().piece(&large, 0).is_none());
    cache.fetch(&mut link, &small).unwrap();
}

/// The whole job on `flash`: refresh, fetch both blobs. The cache is `None` if it did not open.
fn run<'m, F: NorFlash + 'm>(
    flash: F,
    parent: &mut Parent,
    small: &Digest,
    large: &Digest,
) -> (Option<EdgeCache<'m, F>>, Result<(), EdgeError>) {
    let genesis = parent.genesis.clone();
    let mut cache = match open_cache(flash, &genesis) {
        Ok(cache) => cache,
        Err(e) => return (None, Err(e)),
    };
    let mut link = Link::new(Loopback::new(parent), parent_buffers());
    let result = cache
        .refresh(&mut link, NOW)
        .map(|_| ())
        .and_then(|_| cache.fetch(&mut link, small))
        .and_then(|_| cache.fetch(&mut link, large));
    (Some(cache), result)
}

#[test]
fn power_loss_at_every_flash_operation_loses_nothing_verified() {
    let (mut parent, small, large) = parent_with(PIECE_LEN as usize + 3000);
    // A first run with a checkpoint already trusted, so cuts also hit a journal update.
    let mut base = vec![0xFFu8; 2 * STATE_BANK_LEN as usize + 3 * 1024 * 1024];
    {
        let mut cache = open_cache(RamFlash::new(&mut base), &parent.genesis).unwrap();
        let mut link = Link::new(Loopback::new(&mut parent), parent_buffers());
        cache.refresh(&mut link, NOW).unwrap();
    }
    let old = parent.size();
    let digests = parent.commit("docker.io/library/more", vec![blob(10, 3)]);
    let _ = digests;
    let new = parent.size();
    // Count the operations of a clean run.
    let mut clean = base.clone();
    let ops = {
        let flash = PowerCut::new(&mut clean, None, Tear::Prefix);
        let counter = flash.ops.clone();
        let (_, result) = run(flash, &mut parent, &small, &large);
        result.expect("clean run");
        counter.get()
    };
    assert!(ops > 10, "{ops} flash operations");
    for cut in 0..ops {
        // Alternate how the cut operation tears; every operation is cut once.
        {
            let tear = if cut % 2 == 0 {
                Tear::Prefix
            } else {
                Tear::Scattered
            };
            let mut memory = base.clone();
            let (_, outcome) = run(
                PowerCut::new(&mut memory, Some(cut), tear),
                &mut parent,
                &small,
                &large,
            );
            assert!(outcome.is_err(), "cut at {cut} must interrupt the run");
            // Power comes back.
            let mut cache = open_cache(RamFlash::new(&mut memory), &parent.genesis)
                .unwrap_or_else(|e| panic!("cut at {cut} ({tear:?}): open failed: {e:?}"));
            let size = cache.trusted().map(|t| t.size);
            assert!(
                size == Some(old) || size == Some(new),
                "cut at {cut}: trusted {size:?}"
            );
            for object in cache.store().objects().to_vec() {
                let mut buf = vec![0u8; object.data_len() as usize];
                cache.store_mut().read(object.data_at(), &mut buf).unwrap();
                match object.kind {
                    Kind::Piece => {
                        let start = object.piece as usize * PIECE_LEN as usize;
                        assert_eq!(
                            buf,
                            parent.blob(&object.digest)[start..start + buf.len()],
                            "cut at {cut}: piece"
                        );
                    }
                    Kind::Proof => assert_eq!(object.size, new, "cut at {cut}: proof"),
                }
            }
            // And the job completes on the same flash.
            // The reopened cache is done with; the run below opens the same flash again.
            let (cache, resumed) = run(RamFlash::new(&mut memory), &mut parent, &small, &large);
            resumed.unwrap_or_else(|e| panic!("cut at {cut} ({tear:?}): resume failed: {e:?}"));
            let mut cache = cache.expect("opened");
            assert!(cache.holds(&small) && cache.holds(&large), "cut at {cut}");
            assert_eq!(read_back(&mut cache, &large), parent.blob(&large));
        }
    }
}

#[test]
fn serves_a_lan_peer_with_the_same_protocol_pulling_through_on_a_miss() {
    let (parent, small, large) = parent_with(PIECE_LEN as usize + 77);
    let genesis = parent.genesis.clone();
    let expected = (parent.blob(&small).to_vec(), parent.blob(&large).to_vec());
    let (edge_side, peer_side) = std::os::unix::net::UnixStream::pair().unwrap();
    let edge = std::thread::spawn(move || {
        let mut parent = parent;
        let mut memory = vec![0xFFu8; FLASH];
        let mut cache = open_cache(RamFlash::new(&mut memory), &parent.genesis.clone()).unwrap();
        let mut up = Link::new(Loopback::new(&mut parent), parent_buffers());
        cache.refresh(&mut up, NOW).unwrap();
        // Cached before the peer asks: the small blob. The large one is pulled through.
        cache.fetch(&mut up, &small).unwrap();
        let mut peer = Link::new(Stream(edge_side), Box::leak(Box::<PeerBuffers>::default()));
        let mut answered = 0;
        while cache.serve(&mut peer, Some(&mut up)).unwrap() == Served::Answered {
            answered += 1;
        }
        (answered, cache.holds(&large))
    });
    let mut memory = vec![0xFFu8; FLASH];
    let mut child = open_cache(RamFlash::new(&mut memory), &genesis).unwrap();
    let mut link = Link::new(Stream(peer_side.try_clone().unwrap()), parent_buffers());
    child.hello(&mut link).unwrap();
    child.refresh(&mut link, NOW).unwrap();
    child.fetch(&mut link, &small).unwrap();
    child.fetch(&mut link, &large).unwrap();
    assert_eq!(read_back(&mut child, &small), expected.0);
    assert_eq!(read_back(&mut child, &large), expected.1);
    // A malformed frame is answered, not fatal.
    use std::io::Write;
    (&peer_side).write_all(&[0x05, 0xFF, 0x00]).unwrap();
    let answer: Response<'_> = link.receive().unwrap();
    assert_eq!(answer, Response::Error(ErrorCode::BadRequest));
    assert_eq!(link.call(&Request::Goodbye).unwrap(), Response::Goodbye);
    let (answered, edge_holds_large) = edge.join().unwrap();
    assert!(answered > 10, "{answered} requests answered");
    assert!(edge_holds_large, "the edge kept what it pulled through");
}
