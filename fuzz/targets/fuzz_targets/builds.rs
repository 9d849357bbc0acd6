//! The consensus simulation driven by fuzzer bytes: they pick the seed (network faults,
//! delays, which members are byzantine), the member count and the adversary; the build rounds
//! and the Tendermint ordering run under them. With at most f byzantine members no invariant
//! may break.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_sim::builds::{Adversary, Params, run};
use pyrsia_sim::ordering;

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
    });
    assert!(
        ordered.violations.is_empty(),
        "{:?}: reproduce with --seed {seed} --nodes {nodes} --byzantine {byzantine}",
        ordered.violations
    );
});
