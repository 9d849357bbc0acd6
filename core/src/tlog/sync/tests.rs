//! The catch-up's decisions, driven with a fake log view and fabricated checkpoints (the
//! log's own checks are `LogState`'s, tested with it; runtime-std's tests run them together).

use alloc::vec;

use super::*;
use crate::tlog::checkpoint::Checkpoint;

/// A log view whose checks say what the test wants.
struct View {
    size: u64,
    refuse: Option<LogRejection>,
}

fn view(size: u64) -> View {
    View { size, refuse: None }
}

impl LogView for View {
    fn check_note(&self, _: &SignedCheckpoint) -> Result<(), LogRejection> {
        self.refuse.clone().map_or(Ok(()), Err)
    }

    fn tree_size(&self) -> u64 {
        self.size
    }
}

fn note(size: u64) -> SignedCheckpoint {
    SignedCheckpoint::unsigned(Checkpoint {
        origin: heapless::String::try_from("test.invalid/sync").unwrap(),
        size,
        root: [size as u8; 32],
        timestamp: 1_795_694_400 + size,
    })
}

fn entries(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8]).collect()
}

fn at(secs: u64) -> Instant {
    Instant::ZERO
        .checked_add(Duration::from_secs(secs))
        .unwrap()
}

const A: u8 = 1;
const B: u8 = 2;

fn entries_request(peer: u8, start: u64, count: u64) -> SyncAction<u8> {
    SyncAction::Request(peer, CatchUpRequest::Entries { start, count })
}

#[test]
fn a_note_off_the_wire_that_is_not_a_signed_note_strikes_its_sender() {
    let log = view(0);
    let mut sync: LogSync<u8, u32> = LogSync::new();
    for junk in [&b"\xff\xfe not text"[..], b"", b"test.invalid/sync\nfour\n"] {
        assert!(
            matches!(
                sync.on_note_bytes(&log, A, junk, at(0))[..],
                [SyncAction::Strike(A, _)]
            ),
            "{junk:?}"
        );
    }
    assert!(!sync.is_fetching());
    // A signed note as text goes on as `on_note` (the view here takes its quorum): its
    // entries are asked for.
    let mut signed = note(4);
    let key = crate::identity::SecretKey::from_seed([7; 32]);
    signed.add(signed.checkpoint.sign(&key)).unwrap();
    let text = alloc::format!("{signed}");
    assert_eq!(
        sync.on_note_bytes(&log, B, text.as_bytes(), at(1)),
        vec![entries_request(B, 0, 4)]
    );
}

#[test]
fn entries_come_in_batches_and_a_peer_that_lies_about_them_is_struck() {
    let log = view(0);
    let mut sync: LogSync<u8, u32> = LogSync::new();

    // Without its quorum: struck, nothing fetched. Of another log: ignored, nobody struck.
    let forged = View {
        size: 0,
        refuse: Some(LogRejection::TooFewSignatures {
            signers: 1,
            needed: 3,
        }),
    };
    assert!(matches!(
        sync.on_note(&forged, A, note(4), at(0))[..],
        [SyncAction::Strike(A, _)]
    ));
    let other = View {
        size: 0,
        refuse: Some(LogRejection::OtherLog),
    };
    assert!(sync.on_note(&other, A, note(4), at(0)).is_empty());
    assert!(!sync.is_fetching());

    // The missing entries are asked for; an answer to another request changes nothing.
    assert_eq!(
        sync.on_note(&log, A, note(4), at(0)),
        vec![entries_request(A, 0, 4)]
    );
    sync.sent(1, at(0));
    assert!(sync.on_entries(&log, 7, entries(1)).is_empty());
    // More than asked: struck, the fetch ends.
    assert!(matches!(
        sync.on_entries(&log, 1, entries(5))[..],
        [SyncAction::Strike(A, _)]
    ));
    assert!(!sync.is_fetching());
    // None at all: the same.
    sync.on_note(&log, A, note(4), at(1));
    sync.sent(2, at(1));
    assert!(matches!(
        sync.on_entries(&log, 2, Vec::new())[..],
        [SyncAction::Strike(A, _)]
    ));

    // Honest entries in two batches (a peer may send fewer than asked), then stored.
    sync.on_note(&log, A, note(4), at(2));
    sync.sent(3, at(2));
    assert_eq!(
        sync.on_entries(&log, 3, entries(1)),
        vec![entries_request(A, 1, 3)]
    );
    sync.sent(4, at(2));
    let actions = sync.on_entries(&log, 4, entries(4)[1..].to_vec());
    assert_eq!(
        actions,
        vec![SyncAction::Apply {
            peer: A,
            note: note(4),
            entries: entries(4)
        }]
    );
    // The log refuses them (a wrong root): the sender is struck.
    let refused = sync.applied(&log, A, Stored::Refused("root".into()));
    assert!(matches!(refused[..], [SyncAction::Strike(A, _)]));
    // Stored: nobody is struck.
    assert!(sync.applied(&view(4), A, Stored::Grew(4)).is_empty());
}

#[test]
fn a_checkpoint_not_ahead_goes_to_the_log_as_a_refresh() {
    let mut sync: LogSync<u8, u32> = LogSync::new();
    assert_eq!(
        sync.on_note(&view(4), A, note(4), at(0)),
        vec![SyncAction::Apply {
            peer: A,
            note: note(4),
            entries: Vec::new()
        }]
    );
    assert!(!sync.is_fetching());
}

#[test]
fn a_long_gap_is_taken_in_chunks_each_proven_a_prefix() {
    let mut sync: LogSync<u8, u32> = LogSync::with_chunk(3);
    let size = 7;
    assert_eq!(
        sync.on_note(&view(0), A, note(size), at(0)),
        vec![entries_request(A, 0, 3)]
    );
    sync.sent(1, at(0));
    assert_eq!(
        sync.on_entries(&view(0), 1, entries(3)),
        vec![SyncAction::Request(
            A,
            CatchUpRequest::Consistency { from: 3, to: size }
        )]
    );
    sync.sent(2, at(0));
    // The proof goes to the log with the chunk.
    assert_eq!(
        sync.on_consistency(&view(0), 2, vec![[9; 32]]),
        vec![SyncAction::ApplyPrefix {
            peer: A,
            note: note(size),
            entries: entries(3),
            proof: vec![[9; 32]],
        }]
    );
    // The log refuses the proof: struck, nothing more asked.
    assert!(matches!(
        sync.prefix_applied(&view(0), Stored::Refused("not a prefix".into()))[..],
        [SyncAction::Strike(A, _)]
    ));
    assert!(!sync.is_fetching());

    // Honest chunks: each proven and stored, then the last with the checkpoint.
    let mut held = 0;
    let mut id = 10;
    let mut actions = sync.on_note(&view(held), A, note(size), at(1));
    let mut applied = false;
    while let Some(action) = actions.pop() {
        actions = match action {
            SyncAction::Request(A, CatchUpRequest::Entries { start, count }) => {
                assert_eq!(start, held);
                sync.sent(id, at(1));
                id += 1;
                sync.on_entries(&view(held), id - 1, entries(count as usize))
            }
            SyncAction::Request(A, CatchUpRequest::Consistency { from, to }) => {
                assert_eq!((from, to), (held + 3, size));
                sync.sent(id, at(1));
                id += 1;
                sync.on_consistency(&view(held), id - 1, Vec::new())
            }
            SyncAction::ApplyPrefix { entries, .. } => {
                held += entries.len() as u64;
                sync.prefix_applied(&view(held), Stored::Grew(held))
            }
            SyncAction::Apply {
                entries, note: n, ..
            } => {
                assert_eq!(held + entries.len() as u64, n.checkpoint.size);
                applied = true;
                sync.applied(&view(size), A, Stored::Grew(size))
            }
            other => panic!("unexpected {other:?}"),
        };
    }
    assert!(applied);
    assert_eq!(held, 6, "two proven chunks of three, then the last entry");
}

#[test]
fn a_fetch_that_gets_no_answer_ends_at_its_deadline_and_the_waiting_checkpoint_is_fetched() {
    let log = view(0);
    let mut sync: LogSync<u8, u32> = LogSync::new();
    sync.on_note(&log, A, note(4), at(0));
    sync.sent(1, at(0));
    // A newer checkpoint from another peer waits; an older one does not replace it.
    assert!(sync.on_note(&log, B, note(6), at(1)).is_empty());
    assert!(sync.on_note(&log, A, note(5), at(2)).is_empty());

    // Neither an answer nor a failure ever comes for request 1 (the CI stall: a member
    // stayed at height 0 while every pull's checkpoint waited behind it).
    assert!(sync.on_tick(&log, at(19)).is_empty());
    assert_eq!(sync.late_peer(at(19)), None);
    assert_eq!(sync.late_peer(at(20)), Some(A));
    // The same checkpoint from the fetch's own peer does not displace it.
    assert!(sync.on_note(&log, A, note(6), at(3)).is_empty());
    // Ended without blame; the newest waiting checkpoint is fetched from its peer.
    assert_eq!(sync.on_tick(&log, at(20)), vec![entries_request(B, 0, 6)]);
    sync.sent(2, at(20));
    // The deadline counts from the new request.
    assert!(sync.on_tick(&log, at(39)).is_empty());
    // A late answer to the abandoned request changes nothing.
    assert!(sync.on_entries(&log, 1, entries(4)).is_empty());
    assert_eq!(
        sync.on_entries(&log, 2, entries(6)),
        vec![SyncAction::Apply {
            peer: B,
            note: note(6),
            entries: entries(6)
        }]
    );
}

#[test]
fn of_two_equal_checkpoints_the_one_from_another_peer_than_the_running_fetch_waits() {
    let log = view(0);
    let mut sync: LogSync<u8, u32> = LogSync::new();
    sync.on_note(&log, A, note(4), at(0));
    sync.sent(1, at(0));
    // The slow peer's own checkpoint waits first, then another peer's as new replaces it.
    sync.on_note(&log, A, note(4), at(1));
    sync.on_note(&log, B, note(4), at(2));
    assert_eq!(sync.on_failure(&log, 1), vec![entries_request(B, 0, 4)]);
}

#[test]
fn a_failed_request_or_a_local_failure_blames_nobody() {
    let log = view(0);
    let mut sync: LogSync<u8, u32> = LogSync::with_chunk(2);
    sync.on_note(&log, A, note(4), at(0));
    sync.sent(1, at(0));
    sync.on_note(&log, B, note(4), at(0));
    // A failure of another request is not this fetch's.
    assert!(sync.on_failure(&log, 9).is_empty());
    assert!(sync.is_fetching());
    // This one's: ended, and the waiting checkpoint is fetched, nobody struck.
    assert_eq!(sync.on_failure(&log, 1), vec![entries_request(B, 0, 2)]);
    sync.sent(2, at(0));
    sync.on_entries(&log, 2, entries(2));
    sync.sent(3, at(0));
    sync.on_consistency(&log, 3, Vec::new());
    // The disk is full: the fetch ends, nobody is struck.
    assert!(
        sync.prefix_applied(&log, Stored::LocalFailure("disk full".into()))
            .is_empty()
    );
    assert!(!sync.is_fetching());
    assert!(
        sync.applied(&log, A, Stored::LocalFailure("disk full".into()))
            .is_empty()
    );
}

#[test]
fn an_answer_of_the_wrong_kind_strikes_the_peer_and_frees_the_fetch() {
    let log = view(0);
    let mut sync: LogSync<u8, u32> = LogSync::new();
    sync.on_note(&log, A, note(4), at(0));
    sync.sent(1, at(0));
    sync.on_note(&log, B, note(4), at(0));
    // A proof for an entries request.
    let actions = sync.on_consistency(&log, 1, Vec::new());
    assert!(matches!(actions[0], SyncAction::Strike(A, _)));
    assert_eq!(actions[1], entries_request(B, 0, 4));
    sync.sent(2, at(0));
    // A checkpoint (or a piece) for it.
    assert!(matches!(
        sync.on_wrong_answer(&log, 2)[..],
        [SyncAction::Strike(B, _)]
    ));
    assert!(!sync.is_fetching());
    // Entries for a proof request.
    let mut sync: LogSync<u8, u32> = LogSync::with_chunk(2);
    sync.on_note(&log, A, note(4), at(0));
    sync.sent(1, at(0));
    sync.on_entries(&log, 1, entries(2));
    sync.sent(2, at(0));
    assert!(matches!(
        sync.on_entries(&log, 2, entries(1))[..],
        [SyncAction::Strike(A, _)]
    ));
}
