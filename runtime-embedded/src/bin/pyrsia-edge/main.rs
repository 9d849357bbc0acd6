//! `pyrsia-edge`: the edge-cache firmware for qemu's mps2-an386 (Cortex-M4).
//!
//! It reads its provisioning block (genesis, the time, what to prefetch), opens the cache on
//! its flash, refreshes trust from the parent on UART0, fetches and verifies what it was told
//! to, then serves LAN peers on UART1 until one says goodbye. Results go out over
//! semihosting, and so does the exit code: 0 when everything verified, 1 otherwise.
//!
//! Build: `cd runtime-embedded && cargo build --release --target thumbv7em-none-eabihf`.
//! On the host this binary only explains that.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod board;
#[cfg(target_os = "none")]
mod firmware;
mod provisioning;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "pyrsia-edge is firmware: build it with `cargo build --release --target \
         thumbv7em-none-eabihf` and run it under qemu-system-arm -machine mps2-an386"
    );
    std::process::exit(2);
}
