//! Light clients against the members' final checkpoints, in the normal test suite: a
//! hundred and sixty seeds where byzantine members and non-members feed forged, equivocating, older and
//! frozen notes to online, offline and eclipsed clients (PROTOCOL cases 8–11, 33, 34).

use pyrsia_sim::clients::{Params, run};

#[test]
fn no_client_trusts_a_forged_rolled_back_or_frozen_checkpoint() {
    let (mut no_quorum, mut rollbacks, mut too_old, mut stale, mut accepted) = (0, 0, 0, 0, 0);
    for (nodes, seeds) in [(4, 100), (7, 40), (10, 20)] {
        let byzantine = (nodes - 1) / 3;
        for seed in 1..=seeds {
            let outcome = run(Params {
                nodes,
                byzantine,
                seed,
            });
            assert!(
                outcome.violations.is_empty(),
                "{:?}\nreproduce with --seed {seed} --nodes {nodes} --byzantine {byzantine}",
                outcome.violations
            );
            no_quorum += outcome.no_quorum;
            rollbacks += outcome.rollbacks;
            too_old += outcome.too_old;
            stale += outcome.stale;
            accepted += outcome.accepted;
        }
    }
    // Every kind of attack happened, and was refused; honest notes got through.
    assert!(no_quorum > 0 && rollbacks > 0 && too_old > 0 && stale > 0 && accepted > 0);
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let params = Params {
        nodes: 7,
        byzantine: 2,
        seed: 5,
    };
    assert_eq!(run(params), run(params));
    assert_ne!(run(params).trace, run(Params { seed: 6, ..params }).trace);
}
