//! Tendermint on a perfect in-memory network: the members decide the proposer's value, a
//! silent proposer is replaced at the next round, a member behind catches up by decision,
//! and votes leave only after their state was persisted.

use alloc::vec;
use alloc::vec::Vec;

use super::*;

const T: Duration = Duration::from_secs(1);

fn valid(_: u64, value: &[u8]) -> bool {
    !value.starts_with(b"bad")
}

/// Delivers every output among `members` (skipping `down` ones) until quiet or `limit` steps.
fn run(members: &mut [Ordering], down: &[usize], now: &mut Instant, limit: usize) {
    for _ in 0..limit {
        let mut moved = false;
        for i in 0..members.len() {
            while let Some(output) = members[i].poll_output() {
                moved = true;
                match output {
                    OrderingOutput::Persist { ticket, .. } => members[i].handle_persisted(ticket),
                    OrderingOutput::Broadcast(message) => {
                        for (j, member) in members.iter_mut().enumerate() {
                            if j != i && !down.contains(&j) && !down.contains(&i) {
                                member.handle_message(*now, i, message.clone(), &valid);
                            }
                        }
                    }
                    OrderingOutput::SendDecision { to, height, value } => {
                        if !down.contains(&to) {
                            members[to].handle_decision(*now, height, value, &valid);
                        }
                    }
                    OrderingOutput::RelayProof { .. } => {}
                    OrderingOutput::Decided { height, .. } => {
                        // The next batch to propose.
                        members[i].set_candidate(vec![b'v', i as u8, height as u8 + 1]);
                    }
                }
            }
        }
        if !moved {
            // Nothing in flight: let time pass to the next timeout.
            let next = members
                .iter()
                .enumerate()
                .filter(|(i, _)| !down.contains(i))
                .filter_map(|(_, m)| m.poll_timeout())
                .min();
            let Some(next) = next else { return };
            *now = next;
            for (i, m) in members.iter_mut().enumerate() {
                if !down.contains(&i) {
                    m.handle_timeout(*now, &valid);
                }
            }
        }
        if members
            .iter()
            .enumerate()
            .all(|(i, m)| down.contains(&i) || m.height() >= 3)
        {
            return;
        }
    }
}

fn network(n: usize) -> Vec<Ordering> {
    (0..n).map(|i| Ordering::new(i, n, 0, T, T)).collect()
}

fn start(members: &mut [Ordering], now: Instant) {
    for (i, m) in members.iter_mut().enumerate() {
        m.set_candidate(vec![b'v', i as u8]);
        m.start(now, &valid);
    }
}

#[test]
fn four_members_decide_the_proposers_values() {
    let mut members = network(4);
    let mut now = Instant::ZERO;
    start(&mut members, now);
    run(&mut members, &[], &mut now, 1000);
    for h in 0..3 {
        let first = members[0].decision(h).map(<[u8]>::to_vec);
        assert!(first.is_some(), "height {h} decided");
        for m in &members {
            assert_eq!(
                m.decision(h).map(<[u8]>::to_vec),
                first,
                "agreement at height {h}"
            );
        }
    }
    assert_eq!(
        members[0].decision(0),
        Some(&[b'v', 0][..]),
        "height 0's proposer is member 0"
    );
}

#[test]
fn a_silent_proposer_is_replaced_at_the_next_round() {
    let mut members = network(4);
    let mut now = Instant::ZERO;
    start(&mut members, now);
    // Member 0 (proposer of height 0, round 0) is down: round 1's proposer, member 1, decides.
    run(&mut members, &[0], &mut now, 2000);
    let decided = members[1]
        .decision(0)
        .expect("decided without member 0")
        .to_vec();
    assert_eq!(decided, [b'v', 1]);
    assert!(now >= Instant::ZERO + T, "after the propose timeout");
    for m in &members[1..] {
        assert_eq!(m.decision(0), Some(&decided[..]));
    }
    // Member 0 comes back behind and catches up by decision.
    members[0].handle_message(
        now,
        1,
        Message::Prevote {
            height: 0,
            round: 9,
            id: None,
        },
        &valid,
    );
    run(&mut members, &[], &mut now, 2000);
    assert_eq!(members[0].decision(0), Some(&decided[..]));
}

#[test]
fn an_invalid_proposal_is_never_decided() {
    let mut members = network(4);
    let mut now = Instant::ZERO;
    members[0].set_candidate(b"bad batch".to_vec());
    for (i, m) in members.iter_mut().enumerate().skip(1) {
        m.set_candidate(vec![b'v', i as u8]);
    }
    for m in members.iter_mut() {
        m.start(now, &valid);
    }
    run(&mut members, &[], &mut now, 2000);
    let decided = members[1].decision(0).expect("decided");
    assert!(!decided.starts_with(b"bad"));
}

#[test]
fn votes_leave_only_after_their_state_is_persisted() {
    let mut m = Ordering::new(1, 4, 0, T, T);
    m.start(Instant::ZERO, &valid);
    m.handle_message(
        Instant::ZERO,
        0,
        Message::Proposal {
            height: 0,
            round: 0,
            value: b"v0".to_vec(),
            valid_round: None,
        },
        &valid,
    );
    let Some(OrderingOutput::Persist { ticket, state }) = m.poll_output() else {
        panic!("persist first")
    };
    assert_eq!(state.height, 0);
    assert_eq!(m.poll_output(), None, "the prevote waits for the persist");
    m.handle_persisted(ticket);
    assert!(matches!(
        m.poll_output(),
        Some(OrderingOutput::Broadcast(Message::Prevote {
            id: Some(_),
            ..
        }))
    ));
}

#[test]
fn only_the_rounds_proposer_is_heard() {
    let mut m = Ordering::new(1, 4, 0, T, T);
    m.start(Instant::ZERO, &valid);
    m.handle_message(
        Instant::ZERO,
        2,
        Message::Proposal {
            height: 0,
            round: 0,
            value: b"v2".to_vec(),
            valid_round: None,
        },
        &valid,
    );
    assert_eq!(m.poll_output(), None, "member 2 does not propose round 0");
}

#[test]
fn a_restarted_member_repeats_its_votes_and_does_not_propose_again() {
    // Member 0 proposes at height 0, round 0 and prevotes its value; its persisted state
    // says so. Restarted from it, it proposes nothing new and sends the same prevote.
    let mut member = Ordering::new(0, 4, 0, T, T);
    member.set_candidate(b"v0".to_vec());
    member.start(Instant::ZERO, &valid);
    let mut state = None;
    let mut sent = Vec::new();
    while let Some(output) = member.poll_output() {
        match output {
            OrderingOutput::Persist { ticket, state: s } => {
                state = Some(s);
                member.handle_persisted(ticket);
            }
            OrderingOutput::Broadcast(message) => sent.push(message),
            _ => {}
        }
    }
    let state = state.expect("persisted before sending");
    assert!(state.proposed);
    let prevote = sent
        .iter()
        .find(|m| matches!(m, Message::Prevote { .. }))
        .cloned()
        .expect("prevoted its own proposal");
    assert_eq!(
        state.votes,
        [CastVote {
            round: 0,
            precommit: false,
            id: Some(sha256_id(b"v0"))
        }]
    );

    let mut restarted = Ordering::resume(0, 4, &state, T, T);
    restarted.set_candidate(b"v1".to_vec());
    restarted.start(Instant::ZERO, &valid);
    let again: Vec<OrderingOutput> = core::iter::from_fn(|| restarted.poll_output()).collect();
    assert_eq!(again, [OrderingOutput::Broadcast(prevote)]);
    assert_eq!(restarted.round(), 0);
}

/// PROTOCOL case 8 at n = 5, where 2f+1 = 3 forks: the byzantine proposer of height 0 sends
/// one value to members 1 and 2 and another to members 3 and 4, prevotes and precommits both,
/// and the two halves hear nothing of each other for several rounds. With the quorum of 4
/// neither half decides alone; once they hear each other, all decide one value.
#[test]
fn an_equivocating_proposer_cannot_fork_five_members() {
    let n = 5;
    let mut members: Vec<Ordering> = (0..n).map(|i| Ordering::new(i, n, 0, T, T)).collect();
    let mut now = Instant::ZERO;
    for (i, m) in members.iter_mut().enumerate().skip(1) {
        m.set_candidate(vec![b'v', i as u8]);
        m.start(now, &valid);
    }
    let side = |i: usize| i <= 2;
    for (to, value) in [(1, b"v-one"), (2, b"v-one"), (3, b"v-two"), (4, b"v-two")] {
        let id = Some(sha256_id(value));
        let (height, round) = (0, 0);
        for message in [
            Message::Proposal {
                height,
                round,
                value: value.to_vec(),
                valid_round: None,
            },
            Message::Prevote { height, round, id },
            Message::Precommit { height, round, id },
        ] {
            members[to].handle_message(now, 0, message, &valid);
        }
    }
    let mut held: Vec<(usize, usize, Message)> = Vec::new();
    let mut healed = false;
    for _ in 0..20_000 {
        let mut moved = false;
        for i in 1..n {
            while let Some(output) = members[i].poll_output() {
                moved = true;
                match output {
                    OrderingOutput::Persist { ticket, .. } => members[i].handle_persisted(ticket),
                    OrderingOutput::Broadcast(message) => {
                        for j in (1..n).filter(|j| *j != i) {
                            if healed || side(i) == side(j) {
                                members[j].handle_message(now, i, message.clone(), &valid);
                            } else {
                                held.push((i, j, message.clone()));
                            }
                        }
                    }
                    OrderingOutput::SendDecision { to, height, value } => {
                        if healed || side(i) == side(to) {
                            members[to].handle_decision(now, height, value, &valid);
                        }
                    }
                    OrderingOutput::RelayProof { .. } | OrderingOutput::Decided { .. } => {}
                }
            }
        }
        let decided: Vec<Option<Vec<u8>>> = members[1..]
            .iter()
            .map(|m| m.decision(0).map(<[u8]>::to_vec))
            .collect();
        let first = decided.iter().flatten().next();
        for d in decided.iter().flatten() {
            assert_eq!(
                Some(d),
                first,
                "two values decided at height 0: {decided:?}"
            );
        }
        if !healed {
            assert!(first.is_none(), "a half of 2 honest + 1 liar decided alone");
        }
        if decided.iter().all(Option::is_some) {
            assert!(healed);
            return;
        }
        if !moved {
            if !healed && now >= Instant::ZERO + Duration::from_secs(20) {
                healed = true;
                for (from, to, message) in held.drain(..) {
                    members[to].handle_message(now, from, message, &valid);
                }
                continue;
            }
            let next = members[1..].iter().filter_map(Ordering::poll_timeout).min();
            let Some(next) = next else { break };
            now = next;
            for m in &mut members[1..] {
                m.handle_timeout(now, &valid);
            }
        }
    }
    panic!("the honest members did not decide height 0 after healing");
}
