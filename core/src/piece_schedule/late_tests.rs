//! Late pieces: the piece holding the reader up is asked of a second holder once late, its
//! peer is then asked only for what nobody else holds, and a peer remembered as stalled
//! starts that way. Driven tick by tick with simulated peers (no real time).

use super::tests::{MIB, at, config};
use super::*;
use crate::tlog::leaf_hash;

/// How a simulated peer answers: after this many milliseconds, or never.
#[derive(Clone, Copy)]
enum Answers {
    After(u64),
    Never,
}

/// What a fetch did: when it completed, the requests each peer got, the pieces asked twice,
/// the requests given up at the timeout and the peers late at the end.
#[derive(Debug)]
struct Run {
    done_at: u64,
    asked: Vec<usize>,
    asked_twice: usize,
    stalled: usize,
    late: Vec<usize>,
}

/// Runs `schedule` to completion (or 20 s) in 1 ms ticks, each peer answering as `peers`
/// says; the reader takes pieces as soon as they are in.
fn run(mut schedule: PieceSchedule, peers: &[Answers]) -> Run {
    let mut due: Vec<(u64, PieceRequest)> = Vec::new();
    let mut asked = alloc::vec![0; peers.len()];
    let mut pieces_asked = BTreeMap::new();
    let mut stalled = 0;
    for now in 0..20_000 {
        stalled += schedule.handle_timeout(at(now)).len();
        let (answered, waiting): (Vec<_>, Vec<_>) = due.into_iter().partition(|(t, _)| *t <= now);
        due = waiting;
        for (_, request) in answered {
            let answer = PieceAnswer {
                total: schedule.total(),
                len: u64::from(schedule.piece_len(request.piece)),
                leaf: leaf_hash(&[request.piece as u8]),
            };
            schedule.handle_piece(request.tag, answer, at(now));
        }
        while schedule.take_deliverable().is_some() {}
        if schedule.is_complete() {
            return Run {
                done_at: now,
                asked,
                asked_twice: pieces_asked.values().filter(|&&n| n > 1).count(),
                stalled,
                late: schedule.late_peers(),
            };
        }
        for request in schedule.next_requests(at(now)) {
            asked[request.peer] += 1;
            *pieces_asked.entry(request.piece).or_insert(0) += 1;
            if let Answers::After(ms) = peers[request.peer] {
                due.push((now + ms, request));
            }
        }
    }
    panic!("the fetch did not complete in 20 s");
}

#[test]
fn a_peer_that_never_answers_costs_the_reader_a_late_wait_not_the_timeout() {
    let schedule = PieceSchedule::new(
        20 * MIB,
        0,
        alloc::vec![Have::All, Have::All],
        None,
        config(),
    );
    let run = run(schedule, &[Answers::Never, Answers::After(10)]);
    // Its first pieces wait until late (the floor, with answers at 10 ms), then go to the
    // other peer; it gets nothing more while the other holds every piece.
    assert!(run.done_at < 1_000, "{run:?}");
    assert_eq!(run.stalled, 0, "no request waited for the timeout: {run:?}");
    assert_eq!(run.asked[0], 3, "only its first pipeline: {run:?}");
    assert_eq!(
        run.asked_twice, 3,
        "its three pieces, once more each: {run:?}"
    );
    assert_eq!(run.late, [0], "the node remembers it: {run:?}");
}

#[test]
fn a_few_late_answers_among_steady_ones_do_not_fetch_pieces_twice() {
    // Both peers take 400 ms a piece: late for a loopback link, steady for this fetch.
    let schedule = PieceSchedule::new(
        20 * MIB,
        0,
        alloc::vec![Have::All, Have::All],
        None,
        config(),
    );
    let run = run(schedule, &[Answers::After(400), Answers::After(400)]);
    assert_eq!(run.asked_twice, 0, "{run:?}");
    assert_eq!(run.asked[0] + run.asked[1], 20, "{run:?}");
    assert!(run.late.is_empty(), "{run:?}");
}

#[test]
fn a_peer_remembered_as_stalled_is_asked_only_for_pieces_nobody_else_holds() {
    // Peer 0 holds every piece and stalled a fetch lately; peer 1 holds the first two.
    let holds_two = Have::Pieces(alloc::vec![true, true, false, false]);
    let mut schedule = PieceSchedule::new(
        4 * MIB,
        0,
        alloc::vec![Have::All, holds_two],
        None,
        config(),
    );
    schedule.handle_slow(0);
    let requests = schedule.next_requests(at(0));
    let mut asked: Vec<(usize, u32)> = requests.iter().map(|r| (r.peer, r.piece)).collect();
    asked.sort();
    assert_eq!(asked, [(0, 2), (0, 3), (1, 0), (1, 1)]);

    // It answers in time: no longer slow, and the node may forget it.
    let answer = |piece: u32| PieceAnswer {
        total: 4 * MIB,
        len: MIB,
        leaf: leaf_hash(&[piece as u8]),
    };
    let to_peer0 = requests.iter().find(|r| r.peer == 0).unwrap();
    let filed = schedule.handle_piece(to_peer0.tag, answer(to_peer0.piece), at(20));
    assert!(
        matches!(filed, Filed::Accepted { in_time: true, .. }),
        "{filed:?}"
    );
    assert_eq!(schedule.peers[0].slow, None);
    assert!(
        schedule.late_peers().is_empty(),
        "remembered, not late in this fetch"
    );
}

#[test]
fn the_source_is_asked_elsewhere_when_late_but_not_marked_slow() {
    // Peer 0 fetches the blob from the upstream for everyone and has nothing in yet; peer 1
    // holds piece 0 already (from it).
    let holds_first = Have::Pieces(alloc::vec![true, false, false, false]);
    // Two pieces at once, each peer with room for two.
    let config = ScheduleConfig {
        window: 2,
        max_window: 2,
        per_peer: 2,
        max_per_peer: 2,
        ..config()
    };
    let mut schedule = PieceSchedule::new(
        4 * MIB,
        0,
        alloc::vec![Have::All, holds_first],
        None,
        config,
    );
    schedule.handle_stream(0, 0);
    let requests = schedule.next_requests(at(0));
    let first = requests.iter().find(|r| r.piece == 0).unwrap();
    assert_eq!(first.peer, 1, "the piece a peer holds now, of it");
    // Peer 1 stalls on piece 0 while the source's upstream brings it: late at a quarter of
    // the timeout (no answer yet), asked of the source too.
    assert_eq!(schedule.next_deadline(), Some(at(1_250)));
    let late = schedule.next_requests(at(1_250));
    assert!(late.iter().any(|r| r.piece == 0 && r.peer == 0), "{late:?}");
    assert_eq!(
        schedule.late_peers(),
        [1],
        "the peer that let it wait is late"
    );
    assert_eq!(schedule.peers[0].slow, None, "the source never is");
}
