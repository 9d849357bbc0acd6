//! Tendermint ordering in the simulation, in the normal test suite: a few hundred seeds with f
//! byzantine members (silent, equivocating, proposing invalid batches, splitting votes,
//! flooding) under drops, delays and
//! duplication that then heal: agreement and validity after every step, every honest member
//! decides every height after healing, and the same seed replays the same run.

use pyrsia_sim::ordering::{Adversary, Params, run};

/// Runs seeds `1..=seeds` with `nodes` members, f of them byzantine (`adversary`, or drawn per
/// seed), and asserts that every invariant held and every honest member finished.
fn every_seed_holds(nodes: usize, seeds: u64, adversary: Option<Adversary>) {
    let byzantine = (nodes - 1) / 3;
    for seed in 1..=seeds {
        let outcome = run(Params {
            nodes,
            byzantine,
            seed,
            adversary,
        });
        assert!(
            outcome.violations.is_empty(),
            "{:?}\nreproduce with --seed {seed} --nodes {nodes} --byzantine {byzantine}",
            outcome.violations
        );
        assert!(outcome.finished_at.is_some());
    }
}

#[test]
fn a_few_hundred_seeds_agree_and_finish() {
    for (nodes, seeds) in [(4, 120), (7, 60), (10, 20)] {
        every_seed_holds(nodes, seeds, None);
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = run(Params {
        nodes: 7,
        byzantine: 2,
        seed: 9,
        adversary: None,
    });
    assert_eq!(
        a,
        run(Params {
            nodes: 7,
            byzantine: 2,
            seed: 9,
            adversary: None,
        })
    );
    assert_ne!(
        a.trace,
        run(Params {
            nodes: 7,
            byzantine: 2,
            seed: 10,
            adversary: None,
        })
        .trace
    );
}

#[test]
fn more_than_f_byzantine_members_break_it_and_the_checks_say_so() {
    // With f+1 of 4 byzantine the quorum is out of reach for the honest ones: liveness fails
    // (or worse), and the run reports it rather than passing.
    let failing = (1..=20)
        .filter(|&seed| {
            !run(Params {
                nodes: 4,
                byzantine: 2,
                seed,
                adversary: None,
            })
            .violations
            .is_empty()
        })
        .count();
    assert!(failing > 0, "the checks see a broken run");
}

/// The vote-splitter in every byzantine seat, at sizes where 2f+1 is smaller than the quorum
/// (5, 6, 8, 9) and where they are equal (4, 7): no two honest members ever decide differently
/// and every height is still decided after healing.
#[test]
fn vote_splitters_never_fork_any_size() {
    for (nodes, seeds) in [(4, 40), (5, 80), (6, 40), (7, 30), (8, 20), (9, 20)] {
        every_seed_holds(nodes, seeds, Some(Adversary::SplitVotes));
    }
}

/// Every size from 1 to 13 members, with f byzantine members of every kind.
#[test]
fn every_size_from_one_to_thirteen_agrees_and_finishes() {
    for nodes in 1..=13 {
        every_seed_holds(nodes, 4, None);
    }
}
