//! The consensus simulation driven by fuzzer bytes: they pick the seed (network faults,
//! delays, which members are byzantine), the member count and the adversary; the build rounds
//! and the Tendermint ordering run under them, and light clients follow the final checkpoints. With at most f byzantine members no invariant
//! may break.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_sim::builds::{Adversary, Params, run};
use pyrsia_sim::{clients, ordering};

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let seed = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    let nodes = 4 + usize::from(data[8] % 4);
    let adversary = match data[9] % 5 {
        0 => Some(Adversary::Collude),
        1 => Some(Adversary::Silent),
        2 => Some(Adversary::Replay),
        3 => Some(Adversary::Equivocate),
        4 if data.len() > 10 && data[10] % 2 == 0 => Some(Adversary::Grind),
        _ => None,
    };
    let byzantine = (nodes - 1) / 3;
    let outcome = run(Params {
        nodes,
        byzantine,
        seed,
        adversary,
    });
    assert!(
        outcome.violations.is_empty(),
        "{:?}: reproduce with --seed {seed} --nodes {nodes} --byzantine {byzantine}",
        outcome.violations
    );
    let ordered = ordering::run(ordering::Params {
        nodes,
        byzantine,
        seed,
        adversary: None,
    });
    assert!(
        ordered.violations.is_empty(),
        "{:?}: reproduce with --seed {seed} --nodes {nodes} --byzantine {byzantine}",
        ordered.violations
    );
    let followed = clients::run(clients::Params {
        nodes,
        byzantine,
        seed,
    });
    assert!(
        followed.violations.is_empty(),
        "{:?}: reproduce with --seed {seed} --nodes {nodes} --byzantine {byzantine}",
        followed.violations
    );
});
