use std::io::{Read, Write};

use super::*;

fn blob(byte: u8, len: usize) -> (Vec<u8>, Digest) {
    let data = vec![byte; len];
    let digest = Digest::sha256(&data);
    (data, digest)
}

fn read_all(store: &Store, digest: &Digest) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .open_blob(digest)
        .expect("stored")
        .file
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn stores_verified_blobs_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (data, digest) = blob(7, 10_000);
    {
        let store = Store::open(dir.path(), None).unwrap();
        let mut w = store.writer(digest, BlobKind::Blob).unwrap();
        w.write_all(&data[..5000]).unwrap();
        w.write_all(&data[5000..]).unwrap();
        w.commit().unwrap();
        assert_eq!(read_all(&store, &digest), data);
        store
            .record_tag(
                "docker.io/library/a:1",
                TagObservation {
                    digest,
                    observed_ms: 5,
                },
            )
            .unwrap();
    }
    let store = Store::open(dir.path(), None).unwrap();
    assert_eq!(read_all(&store, &digest), data);
    assert_eq!(store.record(&digest).unwrap().size, 10_000);
    assert_eq!(store.tag("docker.io/library/a:1").unwrap().digest, digest);
    assert_eq!(store.observed_tags("docker.io", "library/a"), ["1"]);
    assert_eq!(store.stats().blobs, 1);
}

#[test]
fn mismatched_bytes_are_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), None).unwrap();
    let (_, digest) = blob(1, 100);
    let mut w = store.writer(digest, BlobKind::Blob).unwrap();
    w.write_all(&[2u8; 100]).unwrap();
    let temp = w.temp_path().to_path_buf();
    assert!(matches!(w.commit(), Err(StoreError::Mismatch { .. })));
    assert!(store.open_blob(&digest).is_none());
    assert!(!store.blob_path(&digest).exists());
    assert!(!temp.exists(), "temp file removed");
}

#[test]
fn shared_buffers_are_written_and_hashed_like_copied_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), None).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256(&data);
    let mut w = store.writer(digest, BlobKind::Blob).unwrap();
    // A piece used from its middle (a resumed download), then the rest, then copied bytes.
    let shared = std::sync::Arc::new(data[..200_000].to_vec());
    w.write_shared(shared.clone(), 0..50_000).unwrap();
    w.write_shared(shared, 50_000..200_000).unwrap();
    w.write_all(&data[200_000..]).unwrap();
    assert_eq!(w.written(), 300_000);
    assert!(
        w.write_shared(std::sync::Arc::new(vec![0; 10]), 5..20)
            .is_err(),
        "a range outside its buffer is refused"
    );
    w.commit().unwrap();
    assert_eq!(read_all(&store, &digest), data);

    let mut w = store.writer(digest, BlobKind::Blob).unwrap();
    w.write_shared(std::sync::Arc::new(vec![9; 300_000]), 0..300_000)
        .unwrap();
    assert!(matches!(w.commit(), Err(StoreError::Mismatch { .. })));
}

#[test]
fn a_shared_range_longer_than_one_page_cache_write_lands_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), None).unwrap();
    // A 1 MiB piece and then some, from an odd offset: written in several slices.
    let data: Vec<u8> = (0..(1u32 << 20) + 70_001)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let digest = Digest::sha256(&data[3..]);
    let mut w = store.writer(digest, BlobKind::Blob).unwrap();
    w.write_shared(std::sync::Arc::new(data.clone()), 3..data.len())
        .unwrap();
    assert_eq!(w.written(), data.len() as u64 - 3);
    w.commit().unwrap();
    assert_eq!(read_all(&store, &digest), data[3..]);

    // Copied bytes too: one `write` takes a slice, and `write_all` still lands them all.
    let mut w = store.writer(digest, BlobKind::Blob).unwrap();
    let taken = w.write(&data[3..]).unwrap();
    assert!(
        taken > 0 && taken < data.len() - 3,
        "one write took {taken}"
    );
    w.write_all(&data[3 + taken..]).unwrap();
    w.commit().unwrap();
    assert_eq!(read_all(&store, &digest), data[3..]);
}

#[test]
fn abandoned_writes_leave_nothing_and_partials_are_cleaned_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let (data, digest) = blob(3, 100);
    {
        let store = Store::open(dir.path(), None).unwrap();
        let mut w = store.writer(digest, BlobKind::Blob).unwrap();
        w.write_all(&data[..50]).unwrap();
        let temp = w.temp_path().to_path_buf();
        drop(w);
        assert!(!temp.exists());
        // What a kill -9 leaves: a partial in tmp/.
        std::fs::write(dir.path().join("tmp/partial.part"), b"half").unwrap();
    }
    let store = Store::open(dir.path(), None).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    assert!(store.open_blob(&digest).is_none());
}

#[test]
fn adopts_verified_files_whose_record_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (data, digest) = blob(9, 64);
    {
        let store = Store::open(dir.path(), None).unwrap();
        // A crash after rename but before the record: the file is there, the record is not.
        std::fs::write(store.blob_path(&digest), &data).unwrap();
    }
    let store = Store::open(dir.path(), None).unwrap();
    assert_eq!(read_all(&store, &digest), data);
}

#[test]
fn evicts_least_recently_used_but_never_a_pinned_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(2_500)).unwrap();
    let (a, da) = blob(1, 1000);
    let (b, db) = blob(2, 1000);
    let (c, dc) = blob(3, 1000);
    store.put_bytes(da, &a, BlobKind::Blob).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    store.put_bytes(db, &b, BlobKind::Blob).unwrap();
    // `a` is being served: pinned.
    let serving = store.open_blob(&da).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    store.put_bytes(dc, &c, BlobKind::Blob).unwrap();
    assert!(store.record(&da).is_some(), "pinned blob kept");
    assert!(
        store.record(&db).is_none(),
        "least recently used unpinned blob evicted"
    );
    assert!(!store.blob_path(&db).exists());
    assert!(store.record(&dc).is_some());
    drop(serving);
    assert_eq!(store.stats().bytes, 2000);
}

#[test]
fn scrubbing_quarantines_a_rotten_blob_and_keeps_intact_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), None).unwrap();
    let events = store.watch();
    let (good, good_digest) = blob(1, 300_000);
    let (bad, bad_digest) = blob(2, 300_000);
    store.put_bytes(good_digest, &good, BlobKind::Blob).unwrap();
    store.put_bytes(bad_digest, &bad, BlobKind::Blob).unwrap();
    let mut rotten = bad.clone();
    rotten[123_456] ^= 0x01;
    std::fs::write(store.blob_path(&bad_digest), &rotten).unwrap();

    let mut pace = Pace::new(0);
    assert_eq!(
        store.scrub_one(&good_digest, &mut pace),
        ScrubOutcome::Intact
    );
    assert_eq!(
        store.scrub_one(&bad_digest, &mut pace),
        ScrubOutcome::Quarantined
    );
    assert!(store.open_blob(&bad_digest).is_none(), "never served again");
    assert!(!store.blob_path(&bad_digest).exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join("quarantine"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(read_all(&store, &good_digest), good);
    let evicted: Vec<StoreEvent> = events.try_iter().collect();
    assert!(
        evicted.contains(&StoreEvent::Evicted(bad_digest)),
        "{evicted:?}"
    );
    // Stored again (fetched anew), it is served again.
    store.put_bytes(bad_digest, &bad, BlobKind::Blob).unwrap();
    assert_eq!(read_all(&store, &bad_digest), bad);
    assert_eq!(
        store.scrub_one(&bad_digest, &mut pace),
        ScrubOutcome::Intact
    );
}

#[test]
fn the_scrub_pace_holds_its_rate() {
    let mut pace = Pace::new(10 << 20);
    let started = std::time::Instant::now();
    for _ in 0..4 {
        pace.account(1 << 20);
    }
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(390), "{took:?}");
}

#[test]
fn downloads_count_against_the_budget_evicting_old_blobs_or_failing_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(1 << 20)).unwrap();
    let (old, old_digest) = blob(1, 800 << 10);
    store.put_bytes(old_digest, &old, BlobKind::Blob).unwrap();

    // 500 KiB more does not fit beside 800 KiB: the old blob makes room while it downloads.
    let (new, new_digest) = blob(2, 500 << 10);
    let mut w = store.writer(new_digest, BlobKind::Blob).unwrap();
    w.write_all(&new).unwrap();
    assert!(
        store.record(&old_digest).is_none(),
        "evicted for the download"
    );
    assert_eq!(store.downloading_bytes(), 500 << 10);
    w.commit().unwrap();
    assert_eq!(store.downloading_bytes(), 0);
    assert_eq!(read_all(&store, &new_digest), new);

    // A download larger than the budget fails and leaves nothing behind.
    let (big, big_digest) = blob(3, 2 << 20);
    let mut w = store.writer(big_digest, BlobKind::Blob).unwrap();
    let err = w.write_all(&big).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
    drop(w);
    assert_eq!(store.downloading_bytes(), 0);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn a_blob_of_unknown_digest_is_stored_under_its_sha256_only_when_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), None).unwrap();
    let (data, digest) = blob(3, 70_000);
    let mut w = store.writer_computing(BlobKind::Blob).unwrap();
    w.write_all(&data).unwrap();
    assert_eq!(w.commit_computed(true).unwrap(), digest);
    assert_eq!(read_all(&store, &digest), data);

    let (other, other_digest) = blob(4, 1000);
    let mut w = store.writer_computing(BlobKind::Blob).unwrap();
    w.write_all(&other).unwrap();
    assert!(w.commit_computed(false).is_err());
    assert!(store.open_blob(&other_digest).is_none(), "nothing stored");
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}
