use super::*;
use alloc::string::{String, ToString};
use alloc::vec;

const CONFIG: SearchConfig = SearchConfig {
    serving_others: false,
    lookup_timeout: Duration::from_secs(3),
    poll: Duration::from_millis(250),
};
const KEY: &[u8] = b"sha256:the blob";
const LOCAL: &[u8] = b"this node";

fn at(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

/// A peer name whose key is nearer the digest than this node (`nearer`) or farther.
fn peer(nearer: bool, skip: usize) -> String {
    (0..)
        .map(|i| alloc::format!("peer-{i}"))
        .filter(|name| {
            crate::rendezvous::nearer_downloader(KEY, LOCAL, &[name.as_bytes()]).is_some() == nearer
        })
        .nth(skip)
        .expect("some name")
}

fn provider(name: &str) -> Provider<String> {
    Provider {
        peer: name.to_string(),
        key: name.as_bytes().to_vec(),
        path: Path::Direct,
    }
}

fn whole(name: &str, path: Path<String>) -> Holding<String> {
    Holding {
        peer: name.to_string(),
        path,
        total: 8 << 20,
        pieces: 8,
        ahead: vec![],
    }
}

fn partial(name: &str, pieces: u32, path: Path<String>) -> Holding<String> {
    Holding {
        peer: name.to_string(),
        path,
        total: 8 << 20,
        pieces,
        ahead: vec![],
    }
}

fn first_and_asking(action: &Action<String>) -> (String, Asking) {
    match action {
        Action::Try { peers, asking } => (peers[0].0.clone(), asking.clone()),
        other => panic!("expected a try, got {other:?}"),
    }
}

/// Runs a search up to its survey, answering with `holdings`.
fn surveyed(
    origin_known: bool,
    resuming: bool,
    holdings: Vec<Holding<String>>,
) -> (SourceSearch<String>, Action<String>) {
    let mut search = SourceSearch::new(KEY, LOCAL, origin_known, resuming, CONFIG);
    assert_eq!(
        search.start(),
        Action::FindProviders {
            within: CONFIG.lookup_timeout
        }
    );
    let names: Vec<Provider<String>> = holdings.iter().map(|h| provider(&h.peer)).collect();
    let action = search.providers_found(names.clone(), at(0));
    assert_eq!(
        action,
        Action::Survey {
            providers: names.into_iter().map(|p| p.peer).collect()
        }
    );
    let action = search.surveyed(holdings, at(10));
    (search, action)
}

#[test]
fn whole_holders_reached_directly_come_first_with_the_partial_ones_and_no_circuit() {
    let (_, action) = surveyed(
        false,
        false,
        vec![
            partial("half", 4, Path::Direct),
            whole("whole", Path::Direct),
            partial("behind-relay", 6, Path::Relayed("relay".to_string())),
        ],
    );
    let Action::Try { peers, asking } = action else {
        panic!("expected a try")
    };
    assert_eq!(asking, Asking::Holders);
    let names: Vec<&str> = peers.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["whole", "half"], "no piece crosses a circuit");
    assert_eq!(peers[0].1, Have::All);
}

#[test]
fn without_the_origin_only_holders_are_asked() {
    let (_, action) = surveyed(false, false, vec![partial("half", 4, Path::Direct)]);
    assert_eq!(action, Action::Upstream, "no whole holder: nothing to ask");
    let (mut search, action) = surveyed(false, false, vec![whole("whole", Path::Direct)]);
    assert_eq!(first_and_asking(&action).0, "whole");
    assert_eq!(search.none_served(at(20)), Action::Upstream);
    assert!(search.is_done());
}

#[test]
fn a_holder_behind_a_relay_is_bridged_by_that_relay_once() {
    let relay = Path::Relayed("relay".to_string());
    let (mut search, action) = surveyed(
        true,
        false,
        vec![whole("a", relay.clone()), whole("b", relay)],
    );
    assert_eq!(
        first_and_asking(&action),
        ("relay".to_string(), Asking::Bridge)
    );
    assert_eq!(
        search.none_served(at(20)),
        Action::FindClaimants,
        "one bridge per relay, then the claimants"
    );
}

#[test]
fn the_claim_walk_asks_nearer_claimants_in_turn_then_this_node_looks_again() {
    let (near0, near1) = (peer(true, 0), peer(true, 1));
    let (mut search, action) = surveyed(true, false, vec![]);
    assert_eq!(action, Action::FindClaimants);
    let action = search.claimants_found(
        vec![
            Some((near0.clone(), Path::Direct)),
            Some((near1.clone(), Path::NotConnected)),
            None,
        ],
        false,
        at(20),
    );
    assert_eq!(first_and_asking(&action), (near0.clone(), Asking::Claimant));
    let action = search.none_served(at(30));
    assert_eq!(first_and_asking(&action), (near1.clone(), Asking::Claimant));
    assert_eq!(search.asked(), [near0, near1]);
    // Nearer claimants failed: this node may not see the nearest; it looks again, within one
    // lookup's budget in all.
    let action = search.none_served(at(1_000));
    assert_eq!(
        action,
        Action::FindProviders {
            within: CONFIG.lookup_timeout
        }
    );
    let action = search.providers_found(vec![provider(&peer(false, 0))], at(1_500));
    assert_eq!(action, Action::Wait { until: at(1_750) });
    let action = search.waited(at(1_750));
    assert_eq!(
        action,
        Action::FindProviders {
            within: Duration::from_millis(2_250)
        },
        "the looks share one budget"
    );
    // The budget runs out before the looks do.
    let action = search.providers_found(vec![], at(3_900));
    assert_eq!(action, Action::Wait { until: at(4_150) });
    assert_eq!(search.waited(at(4_150)), Action::Upstream);
}

#[test]
fn the_looks_end_after_their_count_without_a_nearer_downloader() {
    let (mut search, _) = surveyed(true, false, vec![]);
    let mut action = search.claimants_found(vec![None], true, at(0));
    let mut looks = 0;
    let mut now = 0;
    loop {
        match action {
            Action::FindProviders { .. } => {
                looks += 1;
                action = search.providers_found(vec![], at(now));
            }
            Action::Wait { until } => {
                now = until.as_micros() / 1_000;
                action = search.waited(until);
            }
            Action::Upstream => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(looks, NEARER_DOWNLOADER_LOOKS);
}

#[test]
fn the_nearest_node_that_sees_every_node_fetches_at_once() {
    let (mut search, _) = surveyed(true, false, vec![]);
    let action = search.claimants_found(
        vec![None, Some((peer(false, 0), Path::Direct))],
        false,
        at(0),
    );
    assert_eq!(action, Action::Upstream);
}

#[test]
fn a_resuming_download_is_next_in_line_and_does_not_look_again() {
    let (mut search, _) = surveyed(true, true, vec![]);
    let action =
        search.claimants_found(vec![Some((peer(true, 0), Path::Direct)), None], true, at(0));
    assert!(matches!(action, Action::Try { .. }));
    assert_eq!(search.none_served(at(10)), Action::Upstream);
}

#[test]
fn a_nearer_downloader_is_asked_then_its_followers_are_followed() {
    let nearer = peer(true, 0);
    let follower = peer(false, 0);
    let (mut search, _) = surveyed(true, false, vec![]);
    let action = search.claimants_found(vec![None], true, at(0));
    assert!(matches!(action, Action::FindProviders { .. }));
    let providers = vec![provider(&follower), provider(&nearer)];
    let action = search.providers_found(providers.clone(), at(100));
    assert_eq!(
        first_and_asking(&action),
        (nearer.clone(), Asking::Claimant)
    );
    // It does not serve this node (at its connection limit): the downloaders are surveyed.
    let action = search.none_served(at(200));
    assert_eq!(
        action,
        Action::Survey {
            providers: vec![follower.clone(), nearer.clone()]
        }
    );
    // One that holds nothing yet may wait on this node: not followed.
    let action = search.surveyed(vec![partial(&follower, 0, Path::Direct)], at(300));
    assert_eq!(action, Action::Wait { until: at(550) });
    let action = search.waited(at(550));
    assert!(matches!(action, Action::FindProviders { .. }));
    let action = search.providers_found(providers, at(600));
    assert!(matches!(action, Action::Survey { .. }));
    let action = search.surveyed(vec![partial(&follower, 3, Path::Direct)], at(700));
    assert_eq!(
        first_and_asking(&action),
        (follower.clone(), Asking::Following)
    );
    // The nearer downloader is gone from the providers: the upstream.
    let action = search.none_served(at(800));
    assert_eq!(action, Action::Wait { until: at(1_050) });
    search.waited(at(1_050));
    assert_eq!(
        search.providers_found(vec![provider(&follower)], at(1_100)),
        Action::Upstream
    );
}

#[test]
fn a_search_serving_others_fetches_itself_rather_than_follow_a_nearer_node_out_of_reach() {
    let nearer = peer(true, 0);
    let follower = peer(false, 0);
    let config = SearchConfig {
        serving_others: true,
        ..CONFIG
    };
    let mut search = SourceSearch::new(KEY, LOCAL, true, false, config);
    search.start();
    search.providers_found(vec![], at(0));
    assert_eq!(search.surveyed(vec![], at(10)), Action::FindClaimants);
    let action = search.claimants_found(vec![None], true, at(20));
    assert!(matches!(action, Action::FindProviders { .. }));
    let providers = vec![provider(&follower), provider(&nearer)];
    let action = search.providers_found(providers, at(100));
    assert_eq!(first_and_asking(&action), (nearer, Asking::Claimant));
    // It does not serve this node. Its followers may be following this very node (which
    // other nodes asked to fetch for the network, and which they wait on): no rejoin.
    assert_eq!(search.none_served(at(200)), Action::Upstream);

    // A nearer downloader reached only through a relay: the same.
    let relay = peer(false, 1);
    let mut search = SourceSearch::new(KEY, LOCAL, true, false, config);
    search.start();
    search.providers_found(vec![], at(0));
    search.surveyed(vec![], at(10));
    search.claimants_found(vec![None], true, at(20));
    let behind_relay = Provider {
        path: Path::Relayed(relay),
        ..provider(&peer(true, 0))
    };
    assert_eq!(
        search.providers_found(vec![behind_relay], at(100)),
        Action::Upstream
    );
}

#[test]
fn rejoining_ends_after_its_rounds() {
    let nearer = peer(true, 0);
    let (mut search, _) = surveyed(true, false, vec![]);
    search.claimants_found(
        vec![Some((nearer.clone(), Path::Direct)), None],
        false,
        at(0),
    );
    // The nearer claimant was asked already: found again as a downloader, not asked twice.
    search.none_served(at(10));
    let mut action = search.providers_found(vec![provider(&nearer)], at(20));
    let mut surveys = 0;
    loop {
        match action {
            Action::Survey { .. } => {
                surveys += 1;
                action = search.surveyed(vec![], at(30));
            }
            Action::Wait { until } => action = search.waited(until),
            Action::FindProviders { .. } => {
                action = search.providers_found(vec![provider(&nearer)], at(40));
            }
            Action::Upstream => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(surveys, REJOIN_LOOKUPS);
}

#[test]
fn an_answer_out_of_turn_ends_the_search() {
    let mut search: SourceSearch<String> = SourceSearch::new(KEY, LOCAL, true, false, CONFIG);
    search.start();
    assert_eq!(search.none_served(at(0)), Action::Upstream);
    assert!(search.is_done());
}

#[test]
fn a_nearer_downloader_announced_after_the_first_look_is_found_by_a_later_one() {
    let nearer = peer(true, 0);
    let (mut search, _) = surveyed(true, false, vec![]);
    let mut action = search.claimants_found(vec![None], true, at(0));
    let mut looks = 0;
    loop {
        match action {
            Action::FindProviders { .. } => {
                looks += 1;
                // The record is stored only in time for the last look.
                let found = if looks == NEARER_DOWNLOADER_LOOKS {
                    vec![provider(&peer(false, 1)), provider(&nearer)]
                } else {
                    vec![provider(&peer(false, 1))]
                };
                action = search.providers_found(found, at(looks as u64 * 10));
            }
            Action::Wait { until } => action = search.waited(until),
            Action::Try {
                ref peers,
                ref asking,
            } => {
                assert_eq!((&peers[0].0, asking), (&nearer, &Asking::Claimant));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        looks, NEARER_DOWNLOADER_LOOKS,
        "the looks stop at the one that found it"
    );
}
