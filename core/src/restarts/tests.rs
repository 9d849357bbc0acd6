use super::*;

const PEER: u8 = 1;
const OTHER: u8 = 2;
const HOME: &str = "10.0.0.2:4001";
const NEW_PORT: &str = "10.0.0.2:51234";

fn at(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

fn connection(
    id: u32,
    remote: &'static str,
    inbound: bool,
    millis: u64,
) -> Established<u32, &'static str> {
    Established {
        id,
        remote,
        inbound,
        at: at(millis),
    }
}

#[test]
fn the_agent_string_names_the_boot_id_and_only_a_well_formed_one_is_read() {
    let agent = agent_string("0.1.0", None, 0x00ab_cdef_0123_4567);
    assert_eq!(agent, "pyrsia/0.1.0 boot/00abcdef01234567");
    assert_eq!(boot_of(&agent), Some(0x00ab_cdef_0123_4567));
    for foreign in [
        "rust-libp2p/0.48.0",
        "pyrsia/0.1.0",
        "pyrsia/0.1.0 boot/",
        "pyrsia/0.1.0 boot/abc",
        "pyrsia/0.1.0 boot/00abcdef012345678",
        "pyrsia/0.1.0 boot/00abcdef0123456g",
        "pyrsia/0.1.0 boot/+0abcdef01234567",
        "pyrsia/0.1.0 boot/00abcdef01234567 extra",
        "",
    ] {
        assert_eq!(boot_of(foreign), None, "{foreign:?}");
    }
}

#[test]
fn a_connection_from_a_new_boot_closes_the_older_boots_connections_whoever_dialled() {
    let mut restarts = Restarts::default();
    // Two connections of the first process: one each way, from different addresses.
    assert!(
        restarts
            .established(PEER, connection(1, HOME, false, 0))
            .is_empty()
    );
    assert!(
        restarts
            .established(PEER, connection(2, NEW_PORT, true, 300))
            .is_empty()
    );
    assert!(restarts.identified(&PEER, &1, Some(7)).is_empty());
    assert!(restarts.identified(&PEER, &2, Some(7)).is_empty());
    // Another peer's connections are its own.
    restarts.established(OTHER, connection(3, HOME, true, 400));
    assert!(restarts.identified(&OTHER, &3, Some(9)).is_empty());
    // The peer restarted on another port and this node dialled it first: the new process's
    // identify closes both connections of the old one, not the other peer's.
    assert!(
        restarts
            .established(PEER, connection(4, "10.0.0.2:4002", false, 60_000))
            .is_empty()
    );
    assert_eq!(restarts.identified(&PEER, &4, Some(8)), [1, 2]);
    // Identify again on the new connection (its periodic round) before the closes landed:
    // the same answer, nothing new.
    assert_eq!(restarts.identified(&PEER, &4, Some(8)), [1, 2]);
    restarts.closed(&PEER, &1);
    restarts.closed(&PEER, &2);
    assert_eq!(restarts.count(&PEER), 1);
    assert!(restarts.identified(&PEER, &4, Some(8)).is_empty());
    assert_eq!(restarts.count(&OTHER), 1);
}

#[test]
fn connections_of_one_boot_never_close_each_other() {
    let mut restarts = Restarts::default();
    restarts.established(PEER, connection(1, HOME, true, 0));
    restarts.identified(&PEER, &1, Some(7));
    // Both sides dialled at once; an AutoNAT dial-back from this node to the peer's listening
    // address; a hole punch from a new port; all much later, all from the same process.
    for (id, remote, inbound) in [(2, HOME, false), (3, HOME, true), (4, NEW_PORT, true)] {
        assert!(
            restarts
                .established(PEER, connection(id, remote, inbound, 10_000))
                .is_empty()
        );
        assert!(restarts.identified(&PEER, &id, Some(7)).is_empty());
    }
    assert_eq!(restarts.count(&PEER), 4);
}

#[test]
fn an_older_connection_identified_late_with_an_older_boot_is_the_one_closed() {
    let mut restarts = Restarts::default();
    restarts.established(PEER, connection(1, HOME, true, 0));
    restarts.established(PEER, connection(2, NEW_PORT, true, 5_000));
    // The newer connection is identified first, with the newer boot; the older one's identify
    // comes late and names another boot: the older one is stale, the newer one stays.
    assert!(restarts.identified(&PEER, &2, Some(8)).is_empty());
    assert_eq!(restarts.identified(&PEER, &1, Some(7)), [1]);
    restarts.closed(&PEER, &1);
    assert!(restarts.identified(&PEER, &2, Some(8)).is_empty());
}

#[test]
fn peers_without_boot_ids_keep_the_address_rule() {
    let mut restarts = Restarts::default();
    restarts.established(PEER, connection(1, HOME, false, 0));
    restarts.identified(&PEER, &1, None);
    // Both sides dialled at once: within the handshake, nothing is superseded.
    assert!(
        restarts
            .established(PEER, connection(2, HOME, true, 400))
            .is_empty()
    );
    restarts.identified(&PEER, &2, None);
    // A connection this node dialled to the peer's listening address (its AutoNAT dial-back)
    // and one from another port say nothing about a restart.
    let later = SUPERSEDED_AFTER.as_millis() + 2_000;
    assert!(
        restarts
            .established(PEER, connection(3, HOME, false, later))
            .is_empty()
    );
    assert!(
        restarts
            .established(PEER, connection(4, NEW_PORT, true, later))
            .is_empty()
    );
    assert!(restarts.identified(&PEER, &4, None).is_empty());
    // The peer dialled again from its listening port, much later: the older ones from that
    // address are stale.
    assert_eq!(
        restarts.established(PEER, connection(5, HOME, true, later)),
        [1, 2]
    );
}

#[test]
fn the_address_rule_spares_connections_identified_with_a_boot_id() {
    let mut restarts = Restarts::default();
    restarts.established(PEER, connection(1, HOME, false, 0));
    restarts.identified(&PEER, &1, Some(7));
    // Inbound from the same address, much later: the boot ids decide, not the address.
    assert!(
        restarts
            .established(PEER, connection(2, HOME, true, 60_000))
            .is_empty()
    );
    assert!(restarts.identified(&PEER, &2, Some(7)).is_empty());
    assert_eq!(restarts.count(&PEER), 2);
}

#[test]
fn unknown_connections_and_peers_are_ignored() {
    let mut restarts: Restarts<u8, u32, &str> = Restarts::default();
    assert!(restarts.identified(&PEER, &1, Some(7)).is_empty());
    restarts.established(PEER, connection(1, HOME, true, 0));
    assert!(restarts.identified(&PEER, &9, Some(8)).is_empty());
    restarts.closed(&PEER, &9);
    restarts.closed(&OTHER, &1);
    assert_eq!(restarts.count(&PEER), 1);
    restarts.closed(&PEER, &1);
    assert_eq!(restarts.count(&PEER), 0);
    assert!(restarts.peers.is_empty());
}
