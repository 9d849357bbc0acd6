//! One upstream fetch per network, on core's `SourceSearch` and `honour` (what the node runs)
//! at scale: `pyrsia_sim::claims`.

use pyrsia_sim::claims::{Params, run};

const BLOB_PIECES: u64 = 200;

fn params(nodes: usize, seed: u64) -> Params {
    Params::calm(nodes, seed)
}

#[test]
fn a_thousand_nodes_with_partial_views_fetch_the_blob_from_the_upstream_once() {
    for seed in 1..=5 {
        for (what, p) in [
            ("all at once", params(1000, seed)),
            (
                "arrivals over 2 s",
                Params {
                    spread: 40,
                    ..params(1000, seed)
                },
            ),
            (
                "10% at their connection limit",
                Params {
                    at_limit: 10,
                    ..params(1000, seed)
                },
            ),
        ] {
            let outcome = run(p);
            assert!(outcome.complete, "{what}, seed {seed}: {outcome:?}");
            assert_eq!(
                outcome.upstream_fetches, 1,
                "{what}, seed {seed}: {outcome:?}"
            );
            assert_eq!(outcome.upstream_pieces, BLOB_PIECES, "{what}, seed {seed}");
        }
    }
}

#[test]
fn a_fetcher_that_dies_mid_fetch_is_taken_over_at_the_offset_reached() {
    for seed in 1..=5 {
        let outcome = run(Params {
            kill: true,
            ..params(1000, seed)
        });
        assert!(outcome.complete, "seed {seed}: {outcome:?}");
        assert_eq!(outcome.upstream_fetches, 2, "seed {seed}: {outcome:?}");
        assert!(
            outcome.upstream_pieces * 100 <= BLOB_PIECES * 105,
            "seed {seed}: the takeover did not resume at the offset: {outcome:?}"
        );
        assert!(
            outcome.resumed > 0,
            "seed {seed}: nobody resumed: {outcome:?}"
        );
    }
}

#[test]
fn every_fault_at_once_still_gets_every_node_the_blob() {
    for seed in 1..=20 {
        let outcome = run(Params {
            miss: 10,
            at_limit: 10,
            kill: true,
            spread: 40,
            ..params(100, seed)
        });
        assert!(outcome.complete, "seed {seed}: {outcome:?}");
        assert!(outcome.upstream_fetches >= 2, "seed {seed}: {outcome:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let p = Params {
        miss: 10,
        kill: true,
        ..params(300, 7)
    };
    assert_eq!(run(p), run(p));
}

/// The end-to-end test's shape (`swarm_sparse`: eight nodes, each started with three earlier
/// ones as peers, every node held to five connections), where the DHT reaches only what the
/// connections allow: the blob still crosses the upstream once, in every seed. (Larger
/// networks held to so few connections fetch it more than once: BENCHMARKS.md, "one upstream
/// fetch per network".)
#[test]
fn eight_nodes_held_to_five_connections_fetch_the_blob_from_the_upstream_once() {
    for seed in 1..=40 {
        let outcome = run(Params::capped(8, seed, 5));
        assert!(outcome.complete, "seed {seed}: {outcome:?}");
        assert_eq!(outcome.upstream_fetches, 1, "seed {seed}: {outcome:?}");
        assert_eq!(outcome.upstream_pieces, BLOB_PIECES, "seed {seed}");
    }
}

/// A hundred nodes held to five connections each: the DHT reaches little more than each
/// node's neighbours, views of who is nearest the digest disagree, and the blob crosses the
/// upstream several times (BENCHMARKS.md); still no download waits on another forever: every
/// node ends holding the blob, and the upstream serves each fetch at most once.
#[test]
fn a_network_held_to_few_connections_still_gets_every_node_the_blob() {
    for seed in 1..=5 {
        let outcome = run(Params::capped(100, seed, 5));
        assert!(outcome.complete, "seed {seed}: {outcome:?}");
        assert_eq!(
            outcome.upstream_pieces,
            outcome.upstream_fetches * BLOB_PIECES,
            "seed {seed}: a fetch crossed the upstream other than once: {outcome:?}"
        );
    }
}
