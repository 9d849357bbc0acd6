//! A lock whose proof only its holder has: the prevotes it relays, sealed anew, are what let
//! the others accept its proposal again (Tendermint's liveness assumes such gossip). Found in
//! CI: a flooder's own prevote reached one member only, and gossip dropped that member's
//! relays of the voters' envelopes as messages it had seen, so five members stalled at one
//! height until the test gave up. The network here drops them the same way.

use super::*;
use crate::consensus::wire::WireError;

/// The second height at five members, proposed in round 0 by member 0 with a request only it
/// holds (so no other member's batch is the same): member 3 never gets that proposal (it
/// prevotes nil); member 4's prevote reaches member 0 only, and member 4 is silent otherwise.
/// Member 0 alone sees the quorum (0, 1, 2, 4) and locks; the others need member 4's prevote,
/// which only member 0 holds.
fn lose(from: usize, to: usize, message: &MemberMessage<'_>) -> bool {
    let round_zero = |vote: &Vote<'_>| vote.to_message().height_round().1 == 0;
    match message {
        MemberMessage::Submit { .. } => true,
        MemberMessage::Vote(vote @ Vote::Proposal { .. }) if round_zero(vote) => to == 3,
        MemberMessage::Vote(vote @ Vote::Prevote { .. }) if from == 4 && round_zero(vote) => {
            to != 0
        }
        _ => from == 4,
    }
}

#[test]
fn a_lock_seen_by_one_member_is_decided_once_it_relays_the_prevotes_sealed_anew() {
    let mut net = Net::new(5);
    net.tick(at(0));
    assert!(
        net.logs.iter().all(|l| l.final_size() == 1),
        "genesis ordered"
    );
    let height = net.nodes[0].status().height;
    assert_eq!(height % 5, 0, "member 0 proposes the next height's round 0");
    net.lose = Some(lose);
    net.nodes[0].request(&net.logs[0], at(1000), &artifact("docker.io/only/zero"));
    let honest = [0, 1, 2, 3];
    let mut now = 1000;
    while now < 300_000 && honest.iter().any(|&i| net.logs[i].final_size() == 1) {
        net.tick(at(now));
        now += 250;
    }
    assert!(
        honest.iter().all(|&i| net.logs[i].final_size() == 2),
        "the honest members never decided the height member 0 locked: sizes {:?}",
        net.logs
            .iter()
            .map(LogState::final_size)
            .collect::<Vec<_>>()
    );
    assert!(
        net.logs[1]
            .index()
            .request(
                "docker.io/only/zero",
                &Digest::sha256(b"docker.io/only/zero").to_string()
            )
            .is_some(),
        "member 0's locked batch is the one decided"
    );
}

/// A relay of `prevotes` (sealed member messages) sealed by member `relayer`.
fn relay(relayer: usize, prevotes: &[&[u8]]) -> Vec<u8> {
    Envelope::seal(
        &key(relayer),
        1_000_000 + relayer as u64,
        &MemberMessage::Relay {
            prevotes: prevotes.to_vec(),
        },
    )
}

#[test]
fn a_relay_is_refused_for_too_many_prevotes_anything_but_prevotes_or_a_forged_one() {
    let mut net = Net::new(4);
    net.tick(at(0));
    let height = net.nodes[0].status().height;
    let prevote = |voter: usize, nonce: u64| {
        Envelope::seal(
            &key(voter),
            nonce,
            &MemberMessage::Vote(Vote::Prevote {
                height,
                round: 0,
                id: Some([7; 32]),
            }),
        )
    };
    let node = &mut net.nodes[3];
    let log = &net.logs[3];
    let wire = |e| Err(Rejection::Wire(e));
    // At four members a relay carries at most the three others' prevotes.
    let (a, b, c, d) = (prevote(0, 1), prevote(1, 1), prevote(2, 1), prevote(3, 1));
    assert_eq!(
        node.handle_message(log, at(100), &relay(0, &[&a, &b, &c, &d])),
        wire(WireError::Malformed)
    );
    // Only prevotes travel in a relay.
    let submit = Envelope::seal(&key(1), 2, &MemberMessage::Submit { entry: b"junk" });
    assert_eq!(
        node.handle_message(log, at(100), &relay(0, &[&submit])),
        wire(WireError::Malformed)
    );
    // A prevote whose signature does not verify is the relayer's fault.
    let mut forged = prevote(2, 3);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        node.handle_message(log, at(100), &relay(0, &[&b, &forged])),
        wire(WireError::BadSignature)
    );
    // Relayed prevotes count as their voters' own: a second, different prevote of member 1
    // for that round, relayed, is kept as equivocation evidence against member 1.
    let other = Envelope::seal(
        &key(1),
        4,
        &MemberMessage::Vote(Vote::Prevote {
            height,
            round: 0,
            id: Some([8; 32]),
        }),
    );
    assert_eq!(
        node.handle_message(log, at(100), &relay(2, &[&other])),
        Ok(())
    );
    let evidence = core::iter::from_fn(|| node.poll_output())
        .filter(|o| matches!(o, NodeOutput::Evidence { .. }))
        .count();
    assert_eq!(
        evidence, 1,
        "member 1's two prevotes, both relayed, are equivocation"
    );
}
