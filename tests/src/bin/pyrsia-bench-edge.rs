//! `pyrsia-bench-edge`: the edge-cache firmware's footprint and costs on qemu's mps2-an386.
//! Sizes come from the ELF's sections (`arm-none-eabi-size`); the peak stack from the
//! firmware's stack painting; instruction counts from a run under `-icount shift=0` (one
//! instruction per virtual nanosecond, read through the board's 25 MHz timer: 40 instructions
//! a tick) in which the firmware fetches a committed image with a two-piece layer from a node
//! and then re-verifies what it stored: the checkpoint (note quorum), the commit (inclusion
//! and attestations) and every piece (hash and piece proof). Prints a Markdown table.
//! Run it through `scripts/bench`; the firmware must be built (see `pyrsia_tests::edge`).

use std::collections::BTreeMap;
use std::process::Command;

use pyrsia_tests::edge::{firmware, node_with_committed_image, run_firmware};
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::registry::Registry;

/// Layer content: one full 1 MiB piece and a partial one.
const LAYER: u64 = (1 << 20) + 300 * 1024;

/// Section sizes of the firmware ELF.
fn sections() -> BTreeMap<String, u64> {
    let out = Command::new("arm-none-eabi-size")
        .arg("-A")
        .arg(firmware())
        .output()
        .expect("arm-none-eabi-size (binutils-arm-none-eabi)");
    assert!(out.status.success(), "arm-none-eabi-size failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let size = fields.next()?.parse().ok()?;
            name.starts_with('.').then(|| (name.to_string(), size))
        })
        .collect()
}

/// Values of the firmware's `bench: <label> ... insns=N` lines, in order.
fn insns(log: &str, label: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.starts_with(&format!("bench: {label} ")))
        .filter_map(|l| l.rsplit("insns=").next()?.trim().parse().ok())
        .collect()
}

fn main() {
    let s = sections();
    let size = |name: &str| s.get(name).copied().unwrap_or(0);
    let flash = size(".vector_table") + size(".text") + size(".rodata") + size(".data");
    let static_ram = size(".data") + size(".bss") + size(".uninit");

    let work = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), LAYER);
    let layer = &image.layers[0].blob;
    let (_node, edge_port, genesis) =
        node_with_committed_image(work.path(), &registry, &image, "docker.io/library/large");
    let started = std::time::Instant::now();
    let log = run_firmware(
        work.path(),
        edge_port,
        &genesis,
        &[image.digest, layer.digest],
        true,
    );
    let wall = started.elapsed();

    let stack: u64 = log
        .lines()
        .find_map(|l| l.strip_prefix("bench: peak-stack "))
        .and_then(|v| v.trim().parse().ok())
        .expect("peak-stack line");
    let checkpoint = insns(&log, "verify-checkpoint");
    let commits = insns(&log, "verify-commit");
    let pieces = insns(&log, "verify-piece");
    let piece_bytes: Vec<u64> = log
        .lines()
        .filter_map(|l| l.strip_prefix("bench: piece-bytes "))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let full = pieces
        .iter()
        .zip(&piece_bytes)
        .find(|(_, bytes)| **bytes == 1 << 20)
        .map(|(insns, _)| *insns)
        .expect("a full piece was verified");
    let kib = |n: u64| format!("{:.1} KiB", n as f64 / 1024.0);
    println!(
        "firmware: {}; layer {} bytes; run {:.1} s under icount",
        firmware().display(),
        layer.size,
        wall.as_secs_f64()
    );
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| flash (.vector_table+.text+.rodata+.data) | {} | ≤ 256 KiB |",
        kib(flash)
    );
    println!(
        "| static RAM (.data+.bss) | {} | ≤ 64 KiB |",
        kib(static_ram)
    );
    println!("| peak stack (painted) | {} | ≤ 16 KiB |", kib(stack));
    println!(
        "| verify a checkpoint (parse + 1 member signature, n=1) | {} instructions | |",
        checkpoint[0]
    );
    println!(
        "| verify a commit (inclusion + attestation) | {} instructions | |",
        commits[0]
    );
    println!(
        "| verify a 1 MiB piece from flash (SHA-256 + piece proof) | {} instructions ({:.1} per byte) | |",
        full,
        full as f64 / f64::from(1u32 << 20)
    );
    println!(
        "| verify a {} B manifest | {} instructions | |",
        piece_bytes[0], pieces[0]
    );
}
