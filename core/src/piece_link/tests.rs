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
fn only_plain_piece_bytes_go_over_a_ready_link() {
    assert!(carries(true, false, true));
    assert!(!carries(true, false, false), "not before the link is ready");
    assert!(
        !carries(true, true, true),
        "a fetch for the network stays on libp2p"
    );
    assert!(
        !carries(false, false, true),
        "Have and hashes stay on libp2p"
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
