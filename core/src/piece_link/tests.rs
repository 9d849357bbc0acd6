use super::*;

#[test]
fn a_holder_serves_up_to_its_link_limits_and_no_more() {
    assert!(accepts_link(0));
    assert!(accepts_link(MAX_SERVED_LINKS - 1));
    assert!(!accepts_link(MAX_SERVED_LINKS));
    assert!(accepts_peer_link(0));
    assert!(accepts_peer_link(MAX_LINKS_PER_PEER - 1));
    assert!(!accepts_peer_link(MAX_LINKS_PER_PEER));
}

#[test]
fn only_a_connected_unblocked_peer_is_answered_on_a_link() {
    assert_eq!(admit_request(true, false), Ok(()));
    assert_eq!(admit_request(false, false), Err(Refusal::NotConnected));
    assert_eq!(admit_request(true, true), Err(Refusal::Blocked));
    assert_eq!(admit_request(false, true), Err(Refusal::Blocked));
}

#[test]
fn a_holder_strikes_a_link_request_about_anything_but_pieces() {
    for kind in [
        LinkRequest::PieceBytes,
        LinkRequest::Have,
        LinkRequest::PieceHashes,
    ] {
        assert!(!strikes_request(kind), "{kind:?}");
    }
    assert!(strikes_request(LinkRequest::LogSync));
    assert!(
        strikes_request(LinkRequest::BridgedPiece),
        "bridges go through a relay"
    );
}

#[test]
fn only_requests_about_pieces_go_over_a_ready_link() {
    assert!(carries(LinkRequest::PieceBytes, true));
    assert!(carries(LinkRequest::Have, true), "polls ride the link");
    assert!(carries(LinkRequest::PieceHashes, true));
    assert!(
        !carries(LinkRequest::PieceBytes, false),
        "not before the link is ready"
    );
    assert!(
        !carries(LinkRequest::LogSync, true),
        "log sync stays on libp2p"
    );
    assert!(
        !carries(LinkRequest::BridgedPiece, true),
        "bridges stay on libp2p"
    );
}

#[test]
fn a_holder_reads_no_more_requests_than_it_may_keep_unanswered() {
    assert!(reads_request(0));
    assert!(reads_request(OUTSTANDING_PER_LINK - 1));
    assert!(!reads_request(OUTSTANDING_PER_LINK));
    const {
        assert!(
            OUTSTANDING_PER_LINK >= IN_FLIGHT,
            "an asker's whole pipeline is read"
        )
    };
    assert_eq!(request_id(false), RequestId::Fresh);
    assert_eq!(request_id(true), RequestId::Duplicate);
}

#[test]
fn an_asker_delivers_waiting_answers_drops_late_ones_and_refuses_unasked_ones() {
    assert_eq!(answer_fate(3, 4, true), AnswerFate::Deliver);
    assert_eq!(answer_fate(3, 4, false), AnswerFate::Late);
    assert_eq!(answer_fate(4, 4, false), AnswerFate::Unasked);
    assert_eq!(answer_fate(u64::MAX, 4, false), AnswerFate::Unasked);
}

#[test]
fn an_asker_gives_up_a_slow_request_alone_and_a_silent_link_whole() {
    let at = |secs: u64| Instant::from_millis(secs * 1_000);
    let timeout = ANSWER_TIMEOUT.as_micros() / 1_000_000;
    assert_eq!(overdue(at(100), None, at(0)), Overdue::Wait);
    assert_eq!(overdue(at(100), Some(at(95)), at(0)), Overdue::Wait);
    // Other answers keep arriving: only the slow request is given up.
    assert_eq!(
        overdue(at(100 + timeout), Some(at(100)), at(100 + timeout - 1)),
        Overdue::GiveUpOldest
    );
    // Nothing arrived since the request went out.
    assert_eq!(
        overdue(at(100 + timeout), Some(at(100)), at(50)),
        Overdue::CloseLink
    );
}

#[test]
fn the_asker_ends_an_idle_link_before_the_holder_does() {
    assert!(ASKER_IDLE < IDLE_TIMEOUT);
}

#[test]
fn the_link_port_is_read_from_a_well_formed_word_only() {
    let agent = crate::restarts::agent_string("0.1.0", Some(40123), 7);
    assert_eq!(agent, "pyrsia/0.1.0 link/40123 boot/0000000000000007");
    assert_eq!(link_port_of(&agent), Some(40123));
    assert_eq!(crate::restarts::boot_of(&agent), Some(7));
    for foreign in [
        "pyrsia/0.1.0 boot/0000000000000007",
        "pyrsia/0.1.0 link/ boot/0000000000000007",
        "pyrsia/0.1.0 link/0 boot/0000000000000007",
        "pyrsia/0.1.0 link/65536 boot/0000000000000007",
        "pyrsia/0.1.0 link/+80 boot/0000000000000007",
        "pyrsia/0.1.0 link/8o boot/0000000000000007",
        "pyrsia/0.1.0 link/0000080 boot/0000000000000007",
        "rust-libp2p/0.48.0",
        "",
    ] {
        assert_eq!(link_port_of(foreign), None, "{foreign:?}");
    }
}

#[test]
fn a_holder_closes_a_link_whose_answer_takes_longer_than_the_write_stall() {
    let at = |ms: u64| Instant::from_millis(ms);
    let stall = WRITE_STALL.as_micros() / 1_000;
    assert!(!write_stalled(at(100_000), None), "writing nothing");
    assert!(!write_stalled(at(1_000 + stall - 1), Some(at(1_000))));
    assert!(write_stalled(at(1_000 + stall), Some(at(1_000))));
    assert!(
        WRITE_STALL <= ANSWER_TIMEOUT,
        "never longer than an asker waits"
    );
}

#[cfg(feature = "alloc")]
#[test]
fn an_asker_keeps_a_full_piece_pipeline_and_a_poll_and_a_hash_list_on_a_link() {
    const { assert!(IN_FLIGHT == crate::piece_schedule::MAX_PER_PEER + 2) };
    const {
        assert!(
            IN_FLIGHT <= OUTSTANDING_PER_LINK,
            "the holder reads all of them"
        )
    };
}
