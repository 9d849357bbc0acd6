use super::*;
use crate::tlog::leaf_hash;

pub(super) const MIB: u64 = PIECE_LEN as u64;

/// A small schedule's settings: a window of 8, 3 per peer, a 5 s timeout.
pub(super) fn config() -> ScheduleConfig {
    ScheduleConfig {
        window: 8,
        max_window: 8,
        per_peer: 3,
        max_per_peer: 3,
        timeout: Duration::from_secs(5),
        have_poll: Duration::from_millis(250),
        polls_per_round: 4,
        busy_backoff: Duration::from_millis(100),
    }
}

/// The instant `ms` milliseconds in.
pub(super) fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn good(schedule: &PieceSchedule, piece: u32) -> PieceAnswer {
    PieceAnswer {
        total: schedule.total(),
        len: u64::from(schedule.piece_len(piece)),
        leaf: leaf_hash(&[piece as u8]),
    }
}

fn answer_all(schedule: &mut PieceSchedule, requests: &[PieceRequest]) {
    for r in requests {
        let answer = good(schedule, r.piece);
        assert!(matches!(
            schedule.handle_piece(r.tag, answer, at(0)),
            Filed::Accepted { .. }
        ));
    }
}

#[test]
fn pieces_are_asked_in_order_within_the_window_and_each_peers_pipeline() {
    let mut schedule = PieceSchedule::new(
        20 * MIB,
        0,
        alloc::vec![Have::All, Have::All],
        None,
        config(),
    );
    let requests = schedule.next_requests(at(0));
    assert_eq!(
        requests.len(),
        6,
        "two peers, three each, under the window of eight"
    );
    let pieces: Vec<u32> = requests.iter().map(|r| r.piece).collect();
    assert_eq!(pieces, [0, 1, 2, 3, 4, 5]);
    let per_peer = |peer| requests.iter().filter(|r| r.peer == peer).count();
    assert_eq!(
        (per_peer(0), per_peer(1)),
        (3, 3),
        "the least busy peer is asked"
    );
    assert_eq!(requests[0].offset, 0);
    assert_eq!(requests[5].offset, 5 * MIB);
    assert!(schedule.next_requests(at(0)).is_empty(), "pipelines full");
}

#[test]
fn pieces_are_read_in_order_whatever_order_they_arrive_in() {
    let mut schedule = PieceSchedule::new(3 * MIB + 10, 0, alloc::vec![Have::All], None, config());
    let requests = schedule.next_requests(at(0));
    assert_eq!(requests.len(), 3);
    assert_eq!(schedule.take_deliverable(), None);
    answer_all(&mut schedule, &requests[1..]);
    assert_eq!(schedule.take_deliverable(), None, "piece 0 is not in yet");
    answer_all(&mut schedule, &requests[..1]);
    assert_eq!(schedule.take_deliverable(), Some(0));
    assert_eq!(schedule.take_deliverable(), Some(1));
    assert_eq!(schedule.take_deliverable(), Some(2));
    let last = schedule.next_requests(at(1));
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].len, 10, "the last piece is short");
    answer_all(&mut schedule, &last);
    assert_eq!(schedule.take_deliverable(), Some(3));
    assert!(schedule.is_complete());
}

#[test]
fn a_wrong_length_or_hash_blames_the_peer_and_the_piece_is_asked_elsewhere_first() {
    let list: Vec<Hash> = (0..4u8).map(|i| leaf_hash(&[i])).collect();
    let mut schedule = PieceSchedule::new(
        4 * MIB,
        0,
        alloc::vec![Have::All, Have::All],
        Some(list),
        config(),
    );
    let requests = schedule.next_requests(at(0));
    let r0 = requests.iter().find(|r| r.piece == 0).unwrap();
    let bad_hash = PieceAnswer {
        leaf: leaf_hash(b"junk"),
        ..good(&schedule, 0)
    };
    assert_eq!(
        schedule.handle_piece(r0.tag, bad_hash, at(0)),
        Filed::Rejected {
            peer: r0.peer,
            blame: Some("piece does not match its hash")
        }
    );
    let r1 = requests.iter().find(|r| r.piece == 1).unwrap();
    let short = PieceAnswer {
        len: 5,
        ..good(&schedule, 1)
    };
    assert_eq!(
        schedule.handle_piece(r1.tag, short, at(0)),
        Filed::Rejected {
            peer: r1.peer,
            blame: Some("piece of the wrong size")
        }
    );
    // Both peers were blamed and dropped: nobody is left for pieces 0 and 1.
    assert!(schedule.next_requests(at(1)).is_empty());
    assert!(!schedule.has_peers());
}

#[test]
fn a_peer_claiming_another_size_is_blamed_only_when_a_piece_list_proves_the_size() {
    let mut schedule = PieceSchedule::new(
        2 * MIB,
        0,
        alloc::vec![Have::All, Have::All],
        None,
        config(),
    );
    let requests = schedule.next_requests(at(0));
    let liar = PieceAnswer {
        total: 3 * MIB,
        ..good(&schedule, 0)
    };
    assert_eq!(
        schedule.handle_piece(requests[0].tag, liar, at(0)),
        Filed::Rejected {
            peer: requests[0].peer,
            blame: None
        }
    );
    let again = schedule.next_requests(at(1));
    assert_eq!(again.len(), 1, "piece 0 again, from the other peer");
    assert_eq!(again[0].piece, 0);
    assert_ne!(again[0].peer, requests[0].peer);

    let list: Vec<Hash> = (0..2u8).map(|i| leaf_hash(&[i])).collect();
    let mut schedule = PieceSchedule::new(2 * MIB, 0, alloc::vec![Have::All], Some(list), config());
    let requests = schedule.next_requests(at(0));
    let liar = PieceAnswer {
        total: 3 * MIB,
        ..good(&schedule, 0)
    };
    assert_eq!(
        schedule.handle_piece(requests[0].tag, liar, at(0)),
        Filed::Rejected {
            peer: 0,
            blame: Some("claims another blob size")
        }
    );
}

#[test]
fn missing_and_stalled_peers_are_given_up_unblamed_and_their_pieces_retried() {
    let mut schedule = PieceSchedule::new(
        6 * MIB,
        0,
        alloc::vec![Have::All, Have::All],
        None,
        config(),
    );
    let requests = schedule.next_requests(at(0));
    let from0: Vec<&PieceRequest> = requests.iter().filter(|r| r.peer == 0).collect();
    schedule.handle_missing(from0[0].tag);
    // The piece at the read position is late at a quarter of the timeout (no answer yet to
    // tell otherwise), but nobody else holds it: nothing more to send, the timeout next.
    assert_eq!(schedule.next_deadline(), Some(at(1250)));
    assert!(schedule.next_requests(at(1250)).is_empty());
    assert_eq!(schedule.next_deadline(), Some(at(5000)));
    // A request that waited for the local download budget counts from when it left.
    let later = requests.iter().find(|r| r.tag != from0[0].tag).unwrap();
    schedule.sent(later.tag, at(3000));
    assert_eq!(schedule.handle_timeout(at(5000)).len(), 4);
    assert_eq!(schedule.next_deadline(), Some(at(8000)));
    assert!(schedule.handle_timeout(at(7999)).is_empty());
    assert_eq!(schedule.handle_timeout(at(8000)).len(), 1);
    assert!(!schedule.has_peers(), "both peers given up");
    assert!(schedule.is_stuck());
}

#[test]
fn transport_errors_count_and_drop_a_peer_after_the_third() {
    let config = ScheduleConfig {
        window: 1,
        max_window: 1,
        per_peer: 1,
        max_per_peer: 1,
        ..config()
    };
    let mut schedule = PieceSchedule::new(10 * MIB, 0, alloc::vec![Have::All], None, config);
    for round in 0..MAX_FAILURES {
        assert!(schedule.has_peers(), "round {round}: still asked");
        let requests = schedule.next_requests(at(u64::from(round)));
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].piece, 0, "the failed piece again");
        assert_eq!(schedule.handle_failure(requests[0].tag, false), Some(0));
    }
    assert!(!schedule.has_peers(), "dropped after the third failure");
    assert!(schedule.is_stuck());
}

#[test]
fn partial_holders_serve_what_they_hold_and_the_rarest_piece_goes_first() {
    // Peer 0 holds pieces 1 and 2; peer 1 holds only piece 2 and 3. Nobody holds piece 0 yet.
    let p0 = Have::Pieces(alloc::vec![false, true, true, false]);
    let p1 = Have::Pieces(alloc::vec![false, false, true, true]);
    let config = ScheduleConfig {
        window: 8,
        max_window: 8,
        per_peer: 1,
        max_per_peer: 1,
        ..config()
    };
    let mut schedule = PieceSchedule::new(4 * MIB, 0, alloc::vec![p0, p1], None, config);
    let requests = schedule.next_requests(at(0));
    let mut asked: Vec<(usize, u32)> = requests.iter().map(|r| (r.peer, r.piece)).collect();
    asked.sort();
    // Piece 1 (one holder) and piece 3 (one holder) before piece 2 (two holders); which of
    // the two first is the random first piece.
    assert_eq!(asked, [(0, 1), (1, 3)]);
    answer_all(&mut schedule, &requests);
    // Someone announces piece 0 as it verifies it.
    schedule.handle_have(1, Have::All);
    let requests = schedule.next_requests(at(1));
    let asked: Vec<(usize, u32)> = requests.iter().map(|r| (r.peer, r.piece)).collect();
    assert_eq!(
        asked,
        [(1, 0), (0, 2)],
        "the read position first, then the rest"
    );
}

#[test]
fn endgame_asks_an_idle_peer_for_the_last_piece_and_cancels_the_loser() {
    let mut schedule = PieceSchedule::new(
        2 * MIB,
        0,
        alloc::vec![Have::All, Have::All],
        None,
        config(),
    );
    let requests = schedule.next_requests(at(0));
    assert_eq!(requests.len(), 2, "one piece each: both peers busy");
    // The peer asked for piece 0 answers fast; the other is slow with piece 1 (not the
    // piece holding the reader up: that one is asked elsewhere sooner).
    let fast = requests.iter().find(|r| r.piece == 0).unwrap();
    let slow = *requests.iter().find(|r| r.piece == 1).unwrap();
    answer_all(&mut schedule, core::slice::from_ref(fast));
    assert!(
        schedule.next_requests(at(10)).is_empty(),
        "not yet: a quarter of the timeout first"
    );
    assert_eq!(schedule.next_deadline(), Some(at(1250)));
    let dup = schedule.next_requests(at(1250));
    assert_eq!(
        dup.len(),
        1,
        "peer 0 is idle: it duplicates the slow last piece"
    );
    assert_eq!((dup[0].peer, dup[0].piece), (fast.peer, slow.piece));
    let answer = good(&schedule, slow.piece);
    assert_eq!(
        schedule.handle_piece(dup[0].tag, answer, at(1260)),
        Filed::Accepted {
            piece: slow.piece,
            peer: fast.peer,
            cancelled: alloc::vec![slow.tag],
            in_time: true,
        }
    );
    assert_eq!(
        schedule.handle_piece(slow.tag, answer, at(0)),
        Filed::Unknown,
        "the loser is dropped unblamed"
    );
    assert_eq!(schedule.take_deliverable(), Some(0));
    assert_eq!(schedule.take_deliverable(), Some(1));
    assert!(schedule.is_complete());
}

#[test]
fn a_schedule_started_mid_blob_reads_from_there() {
    let mut schedule = PieceSchedule::new(4 * MIB, 2, alloc::vec![Have::All], None, config());
    let requests = schedule.next_requests(at(0));
    let pieces: Vec<u32> = requests.iter().map(|r| r.piece).collect();
    assert_eq!(pieces, [2, 3]);
    schedule.accept_outside(2);
    assert_eq!(schedule.take_deliverable(), Some(2));
}

#[test]
fn the_first_piece_is_judged_by_the_same_rule_before_the_size_is_known() {
    let list: Vec<Hash> = (0..2u8).map(|i| leaf_hash(&[i])).collect();
    let answer = |total: u64, len: u64, leaf: u8| PieceAnswer {
        total,
        len,
        leaf: leaf_hash(&[leaf]),
    };
    assert_eq!(
        answer_fault(0, None, &answer(2 * MIB, MIB, 0), Some(&list)),
        None
    );
    assert_eq!(answer_fault(1, None, &answer(MIB + 5, 5, 1), None), None);
    let size = answer_fault(0, None, &answer(3 * MIB, MIB, 0), Some(&list)).unwrap();
    assert_eq!((size.why, size.blame), ("claims another blob size", true));
    let unproven = answer_fault(1, None, &answer(MIB, 0, 1), None).unwrap();
    assert_eq!(
        (unproven.why, unproven.blame),
        ("claims another blob size", false),
        "a size the piece does not reach into, with no list to prove it"
    );
    let short = answer_fault(0, None, &answer(2 * MIB, 7, 0), None).unwrap();
    assert_eq!((short.why, short.blame), ("piece of the wrong size", true));
    let hash = answer_fault(1, None, &answer(2 * MIB, MIB, 0), Some(&list)).unwrap();
    assert_eq!(
        (hash.why, hash.blame),
        ("piece does not match its hash", true)
    );
}

#[test]
fn a_partial_holder_missing_a_piece_is_asked_again_once_it_says_it_holds_it() {
    // Peer 0 holds everything but is busy serving others; peer 1 holds the first two pieces.
    let config = ScheduleConfig {
        window: 4,
        max_window: 4,
        per_peer: 2,
        max_per_peer: 2,
        ..config()
    };
    let partial = Have::Pieces(alloc::vec![true, true, false, false]);
    let mut schedule =
        PieceSchedule::new(4 * MIB, 0, alloc::vec![Have::All, partial], None, config);
    schedule.handle_load(0, 10);
    let requests = schedule.next_requests(at(0));
    assert_eq!(requests.len(), 4);
    assert!(
        requests.iter().all(|r| (r.piece < 2) == (r.peer == 1)),
        "pieces both hold go to the idle partial holder, not the busy complete one: {requests:?}"
    );
    // It answers Missing for piece 1 (it lost it): not dropped, just not asked for that piece.
    let piece1 = requests.iter().find(|r| r.piece == 1).unwrap();
    schedule.handle_missing(piece1.tag);
    assert!(schedule.has_peers());
    let piece0 = requests.iter().find(|r| r.piece == 0).unwrap();
    let answer = good(&schedule, 0);
    assert!(matches!(
        schedule.handle_piece(piece0.tag, answer, at(0)),
        Filed::Accepted { .. }
    ));
    let piece2 = requests.iter().find(|r| r.piece == 2).unwrap();
    let answer = good(&schedule, 2);
    assert!(matches!(
        schedule.handle_piece(piece2.tag, answer, at(0)),
        Filed::Accepted { .. }
    ));
    let again = schedule.next_requests(at(10));
    assert!(
        again.iter().any(|r| r.piece == 1 && r.peer == 0),
        "piece 1 goes to the complete holder: {again:?}"
    );
    // Polls: both peers are due now, then not before the poll interval.
    assert_eq!(schedule.have_polls(at(10)), [0, 1]);
    assert!(schedule.have_polls(at(100)).is_empty());
    assert_eq!(
        schedule.next_deadline(),
        Some(at(260)),
        "the next poll, before any timeout"
    );
    assert_eq!(schedule.have_polls(at(260)), [0, 1]);
    // It now holds everything and is idle: asked for piece 3 rather than the busy peer.
    schedule.handle_have(1, Have::Pieces(alloc::vec![true; 4]));
    schedule.handle_load(1, 0);
    let piece3 = requests.iter().find(|r| r.piece == 3).unwrap();
    schedule.handle_missing(piece3.tag);
    let last = schedule.next_requests(at(300));
    assert!(last.iter().any(|r| r.piece == 3 && r.peer == 1), "{last:?}");
}

#[test]
fn a_peer_found_during_the_fetch_is_asked_too() {
    let config = ScheduleConfig {
        window: 4,
        max_window: 4,
        per_peer: 1,
        max_per_peer: 1,
        ..config()
    };
    let mut schedule = PieceSchedule::new(4 * MIB, 0, alloc::vec![Have::All], None, config);
    assert_eq!(
        schedule.next_requests(at(0)).len(),
        1,
        "the one peer's pipeline is full"
    );
    let added = schedule.add_peer(Have::Pieces(alloc::vec![true; 4]));
    assert_eq!(added, 1);
    let requests = schedule.next_requests(at(1));
    assert!(requests.iter().any(|r| r.peer == 1), "{requests:?}");
}

#[test]
fn a_streaming_holder_is_asked_for_the_next_pieces_to_arrive_and_others_for_what_they_hold() {
    // Peer 0 fetches the blob from the upstream for the network and has its first piece in;
    // peers 1 and 2 are downloading alongside and hold nothing yet.
    let no_pieces = || Have::Pieces(alloc::vec![false; 40]);
    let mut schedule = PieceSchedule::new(
        40 * MIB,
        1,
        alloc::vec![Have::All, no_pieces(), no_pieces()],
        None,
        config(),
    )
    .with_seed(7);
    schedule.handle_stream(0, 1);
    let requests = schedule.next_requests(at(0));
    let pieces: Vec<u32> = requests.iter().map(|r| r.piece).collect();
    assert_eq!(
        pieces,
        [1, 2, 3],
        "the next pieces to arrive, in order, never a random one further on"
    );
    assert!(requests.iter().all(|r| r.peer == 0));
    answer_all(&mut schedule, &requests);
    while schedule.take_deliverable().is_some() {}

    // Peer 1 now holds pieces 4 to 9, which the streaming peer has not received yet: those
    // are asked of peer 1; the streaming peer is asked for what nobody else holds.
    let mut held = alloc::vec![false; 40];
    for bit in held.iter_mut().take(10).skip(4) {
        *bit = true;
    }
    schedule.handle_have(1, Have::Pieces(held));
    schedule.handle_stream(0, 4);
    let requests = schedule.next_requests(at(10));
    let from = |peer| {
        let mut pieces: Vec<u32> = requests
            .iter()
            .filter(|r| r.peer == peer)
            .map(|r| r.piece)
            .collect();
        pieces.sort();
        pieces
    };
    let asked_of_holder = from(1);
    assert_eq!(
        asked_of_holder.len(),
        3,
        "the partial holder's pipeline is full"
    );
    assert!(
        asked_of_holder.iter().all(|p| (4..10).contains(p)),
        "only what it holds now is asked of it: {asked_of_holder:?}"
    );
    let next_in_order: Vec<u32> = (4..40)
        .filter(|p| !asked_of_holder.contains(p))
        .take(3)
        .collect();
    assert_eq!(
        from(0),
        next_in_order,
        "the streaming peer is asked for the rest in order, the next to arrive first"
    );
}

#[test]
fn a_busy_peer_is_left_alone_for_the_backoff_and_its_piece_goes_to_another_holder() {
    let config = ScheduleConfig {
        window: 2,
        max_window: 2,
        per_peer: 1,
        max_per_peer: 1,
        ..config()
    };
    // Peer 0 holds every piece; peer 1 only piece 0.
    let partial = Have::Pieces(alloc::vec![true, false, false, false]);
    let mut schedule =
        PieceSchedule::new(4 * MIB, 0, alloc::vec![Have::All, partial], None, config);
    let requests = schedule.next_requests(at(0));
    let to0 = requests.iter().find(|r| r.peer == 0).unwrap();
    schedule.handle_busy(to0.tag, at(10));
    // Not blamed, not dropped, not failed: only resting until 10 + 100 ms.
    assert!(schedule.has_peers());
    assert_eq!(schedule.next_deadline(), Some(at(110)));
    let again = schedule.next_requests(at(50));
    assert!(
        again.iter().all(|r| r.peer != 0),
        "a resting peer is not asked: {again:?}"
    );
    let after = schedule.next_requests(at(110));
    assert!(
        after.iter().any(|r| r.peer == 0 && r.piece == to0.piece),
        "asked again once the rest is over: {after:?}"
    );
    assert!(!schedule.is_stuck());
    assert!(serves_now(ANSWERS_AT_ONCE - 1) && !serves_now(ANSWERS_AT_ONCE));
}

#[test]
fn an_insisting_request_for_a_piece_sent_twice_lately_gets_half_the_answer_slots() {
    let copies = recent_sends::COPIES_BEFORE_REDIRECT;
    // Not sent as often as the rule allows yet: as any request.
    for sent in 0..copies {
        assert!(serves_insisting_now(ANSWERS_AT_ONCE - 1, sent));
        assert!(!serves_insisting_now(ANSWERS_AT_ONCE, sent));
    }
    // Sent that often: half the slots stay for pieces nobody else holds yet.
    assert!(serves_insisting_now(ANSWERS_AT_ONCE / 2 - 1, copies));
    assert!(!serves_insisting_now(ANSWERS_AT_ONCE / 2, copies));
    assert!(serves_now(ANSWERS_AT_ONCE / 2), "others still are served");
}

#[test]
fn a_peer_that_keeps_up_gets_a_longer_pipeline_and_one_that_is_busy_a_shorter_one() {
    let config = ScheduleConfig {
        window: 4,
        max_window: 16,
        per_peer: 2,
        max_per_peer: 8,
        ..config()
    };
    let mut schedule = PieceSchedule::new(64 * MIB, 0, alloc::vec![Have::All], None, config);
    let in_flight = |requests: &[PieceRequest]| requests.len();
    let first = schedule.next_requests(at(0));
    assert_eq!(in_flight(&first), 2, "two at first");
    // Each round the peer answers everything while its pipeline is full: it grows by one
    // per piece answered (doubling per round trip) up to its maximum.
    let mut outstanding = first;
    let mut sizes = Vec::new();
    for round in 1..6 {
        answer_all(&mut schedule, &outstanding);
        while schedule.take_deliverable().is_some() {}
        outstanding = schedule.next_requests(at(round * 10));
        sizes.push(outstanding.len());
    }
    assert_eq!(sizes, [4, 8, 8, 8, 8], "slow start, capped at max_per_peer");
    // Busy: halved, down to the start, and rested.
    let tag = outstanding[0].tag;
    schedule.handle_busy(tag, at(100));
    assert!(
        schedule.next_requests(at(300)).is_empty(),
        "7 in flight still"
    );
    let rest: Vec<PieceRequest> = outstanding[1..].to_vec();
    answer_all(&mut schedule, &rest);
    while schedule.take_deliverable().is_some() {}
    // The busy piece first, then up to the halved pipeline (answers to what was asked
    // before the busy answer do not grow it back).
    let after = schedule.next_requests(at(400));
    assert_eq!(
        after.len(),
        1,
        "the read position only: the window is full of unread pieces"
    );
    assert_eq!(after[0].piece, outstanding[0].piece);
    answer_all(&mut schedule, &after);
    while schedule.take_deliverable().is_some() {}
    let next = schedule.next_requests(at(500));
    assert_eq!(next.len(), 4, "halved: {next:?}");
}

#[test]
fn a_schedule_following_growing_holders_waits_its_patience_for_a_new_piece() {
    let total = 4 * MIB;
    let first_two = Have::from_prefix(total, 2, &[]);
    let mut schedule = PieceSchedule::new(total, 2, alloc::vec![first_two.clone()], None, config());
    assert!(schedule.is_stuck(), "nobody holds pieces 2 and 3 yet");
    assert!(schedule.gives_up(at(0)), "without growing holders: at once");

    let patience = Duration::from_millis(2000);
    let mut schedule = PieceSchedule::new(total, 2, alloc::vec![first_two], None, config())
        .with_growing_holders(patience);
    assert!(!schedule.gives_up(at(0)));
    assert!(!schedule.gives_up(at(1999)));
    // The holder got piece 2: the schedule asks for it, and is no longer stuck.
    schedule.handle_have(0, Have::from_prefix(total, 3, &[]));
    assert!(!schedule.gives_up(at(2500)));
    let requests = schedule.next_requests(at(2500));
    assert_eq!(requests.iter().map(|r| r.piece).collect::<Vec<_>>(), [2]);
    // Stuck again on piece 3 once piece 2 is in: the patience counts from then.
    schedule.handle_piece(
        requests[0].tag,
        PieceAnswer {
            total,
            len: MIB,
            leaf: leaf_hash(&[0u8; 4]),
        },
        at(2500),
    );
    assert!(!schedule.gives_up(at(3000)));
    assert!(!schedule.gives_up(at(4999)));
    assert!(schedule.gives_up(at(5000)), "no new piece for its patience");
}

#[test]
fn polls_ask_a_bounded_round_of_peers_in_turn_and_never_the_dropped() {
    // Ten peers still downloading, four asked a round: every peer in turn, the round's
    // interval between rounds, never more than four at once.
    let peers = alloc::vec![Have::Pieces(alloc::vec![false; 8]); 10];
    let mut schedule = PieceSchedule::new(8 * MIB, 0, peers, None, config());
    assert_eq!(schedule.have_polls(at(0)), [0, 1, 2, 3]);
    assert!(
        schedule.have_polls(at(100)).is_empty(),
        "not before the interval"
    );
    assert_eq!(schedule.next_deadline(), Some(at(250)), "the next round");
    assert_eq!(schedule.have_polls(at(250)), [4, 5, 6, 7]);
    // A peer found during the fetch has never been asked: it goes with the others never
    // asked, before those asked already.
    let joined = schedule.add_peer(Have::Pieces(alloc::vec![false; 8]));
    assert_eq!(schedule.have_polls(at(500)), [8, 9, joined, 0]);
    // A dropped peer (said to hold every piece, it answers `Missing`) is never asked again.
    schedule.handle_have(1, Have::All);
    let requests = schedule.next_requests(at(700));
    let to_peer1 = requests
        .iter()
        .find(|r| r.peer == 1)
        .expect("the only holder asked");
    schedule.handle_missing(to_peer1.tag);
    assert_eq!(schedule.have_polls(at(750)), [2, 3, 4, 5], "peer 1 dropped");
}

#[test]
fn the_source_is_asked_after_any_other_free_holder_whatever_the_loads() {
    // Peer 0 fetches for the network and has every piece in; peer 1 stores the blob but says
    // it is busier. Peer 1 is still asked first; the source only once peer 1's pipeline is full.
    let mut schedule = PieceSchedule::new(
        20 * MIB,
        0,
        alloc::vec![Have::All, Have::All],
        None,
        config(),
    );
    schedule.handle_stream(0, 20);
    schedule.handle_load(1, 5);
    let requests = schedule.next_requests(at(0));
    let peers: Vec<usize> = requests.iter().map(|r| r.peer).collect();
    assert_eq!(peers, [1, 1, 1, 0, 0, 0], "{requests:?}");
    assert!(
        requests.iter().all(|r| !r.insist),
        "nothing was sent elsewhere yet"
    );
}

#[test]
fn a_piece_sent_elsewhere_is_asked_of_the_peers_named_then_insisting() {
    let no_pieces = || Have::Pieces(alloc::vec![]);
    let mut schedule = PieceSchedule::new(
        40 * MIB,
        0,
        alloc::vec![Have::All, no_pieces(), no_pieces(), no_pieces()],
        None,
        config(),
    )
    .with_seed(3);
    schedule.handle_stream(0, 40);
    let requests = schedule.next_requests(at(0));
    assert!(
        requests.iter().all(|r| r.peer == 0),
        "only the source holds"
    );
    let [first, second, third] = requests[..] else {
        panic!("three in flight to the source: {requests:?}");
    };

    // The source sent `first`'s piece to peers 1 and 2 lately: they are asked for it,
    // insisting, and the source is not blamed, dropped or rested.
    schedule.handle_elsewhere(first.tag, &[1, 2, 99]);
    let again = schedule.next_requests(at(1));
    let retry = again
        .iter()
        .find(|r| r.piece == first.piece)
        .expect("the piece is asked again at once");
    assert!(retry.insist, "asked insisting after a redirect");
    assert!([1, 2].contains(&retry.peer), "a named peer: {retry:?}");
    assert!(
        again.iter().any(|r| r.peer == 0),
        "the source still serves other pieces: {again:?}"
    );

    // Both named peers turn out not to hold it (one lied, one evicted it): the source is
    // asked again, insisting, and serves.
    schedule.handle_missing(retry.tag);
    let next = schedule.next_requests(at(2));
    let retry2 = next.iter().find(|r| r.piece == first.piece).expect("asked");
    assert!(retry2.insist);
    let named_other = 3 - retry.peer;
    if retry2.peer == named_other {
        schedule.handle_missing(retry2.tag);
        // (Room at the source: what it was asked for meanwhile is in.)
        let to_source: Vec<PieceRequest> = again.iter().filter(|r| r.peer == 0).copied().collect();
        answer_all(&mut schedule, &to_source);
        let last = schedule.next_requests(at(3));
        let from_source = last.iter().find(|r| r.piece == first.piece).expect("asked");
        assert_eq!((from_source.peer, from_source.insist), (0, true));
        let answer = good(&schedule, first.piece);
        assert!(matches!(
            schedule.handle_piece(from_source.tag, answer, at(0)),
            Filed::Accepted { .. }
        ));
    } else {
        assert_eq!(retry2.peer, 0, "{retry2:?}");
    }

    // A redirect naming nobody this schedule knows: the same peer is asked again, insisting.
    schedule.handle_elsewhere(second.tag, &[]);
    let after = schedule.next_requests(at(4));
    let retry = after
        .iter()
        .find(|r| r.piece == second.piece)
        .expect("asked");
    assert_eq!((retry.peer, retry.insist), (0, true));

    // A peer that sends an insisting request elsewhere is treated as lacking the piece: a
    // source (holding every piece) is then not asked again.
    schedule.handle_elsewhere(retry.tag, &[1]);
    schedule.handle_elsewhere(third.tag, &[1, 2]);
    let after = schedule.next_requests(at(5));
    assert!(
        after.iter().all(|r| r.peer != 0),
        "the source that refused an insisting request is given up: {after:?}"
    );
}

#[test]
fn looks_for_more_providers_come_soon_then_ever_further_apart() {
    let waits: Vec<u64> = (0..7).map(|n| rediscover_wait(n).as_millis()).collect();
    assert_eq!(waits, [250, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    assert_eq!(rediscover_wait(u32::MAX), REDISCOVER_MAX);
}
