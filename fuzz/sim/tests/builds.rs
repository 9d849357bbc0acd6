//! The build-round simulation in the normal test suite: a few hundred seeds with f byzantine
//! members hold every invariant; each adversary alone loses (PROTOCOL cases 3, 4, 5, 12); the
//! same seed replays the same run; and more than f colluders (case 6, the documented limit) are
//! caught by the checks, which shows the checks bite.

use pyrsia_sim::builds::{Adversary, Params, run};

fn params(nodes: usize, byzantine: usize, seed: u64, adversary: Option<Adversary>) -> Params {
    Params {
        nodes,
        byzantine,
        seed,
        adversary,
    }
}

#[test]
fn a_few_hundred_seeds_hold_every_invariant() {
    let mut commits = 0;
    for (nodes, seeds) in [(4, 150), (7, 100), (10, 50)] {
        let f = (nodes - 1) / 3;
        for seed in 1..=seeds {
            let outcome = run(params(nodes, f, seed, None));
            assert!(
                outcome.violations.is_empty(),
                "{:?}\nreproduce with --seed {seed} --nodes {nodes} --byzantine {f}",
                outcome.violations
            );
            assert_eq!(outcome.committed + outcome.unverifiable, nodes - f);
            commits += outcome.committed;
        }
    }
    assert!(commits > 0);
}

#[test]
fn each_adversary_alone_loses_to_the_honest_digest() {
    for adversary in [
        Adversary::Collude,
        Adversary::Silent,
        Adversary::Replay,
        Adversary::Equivocate,
        Adversary::Grind,
    ] {
        for seed in 1..=20 {
            let outcome = run(params(7, 2, seed, Some(adversary)));
            assert!(
                outcome.violations.is_empty(),
                "{adversary:?} seed {seed}: {:?}",
                outcome.violations
            );
            assert_eq!(
                outcome.committed, 5,
                "{adversary:?} seed {seed}: every honest member commits"
            );
        }
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = run(params(7, 2, 42, None));
    let b = run(params(7, 2, 42, None));
    assert_eq!(a, b);
    let c = run(params(7, 2, 43, None));
    assert_ne!(a.trace, c.trace);
}

#[test]
fn more_than_f_colluders_are_caught_by_the_checks() {
    let caught = (1..=50).any(|seed| {
        run(params(4, 2, seed, Some(Adversary::Collude)))
            .violations
            .iter()
            .any(|v| v.contains("wrong digest"))
    });
    assert!(
        caught,
        "f+1 colluders commit a wrong digest for some seed, and the check sees it"
    );
}

#[test]
fn case_7_a_nondeterministic_build_never_commits_and_ends_unverifiable() {
    let mut seen = 0;
    for seed in 1..=200 {
        let outcome = run(params(4, 1, seed, None));
        assert!(
            outcome.violations.is_empty(),
            "seed {seed}: {:?}",
            outcome.violations
        );
        if outcome.nondeterministic {
            seen += 1;
            assert_eq!(outcome.committed, 0, "seed {seed}");
            assert_eq!(
                outcome.unverifiable, 3,
                "seed {seed}: every honest round gives up"
            );
        }
    }
    assert!(seen > 5, "only {seen} nondeterministic runs");
}
