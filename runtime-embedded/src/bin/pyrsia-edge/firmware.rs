//! The firmware's run: provision, refresh, prefetch, measure, serve.

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use pyrsia_core::light::{LightClient, LightError, Policy};
use pyrsia_core::pieces::piece_count;
use pyrsia_embedded::store::StoreError;
use pyrsia_embedded::{EdgeCache, Link, RamFlash, Served, Store};

use crate::board;
use crate::provisioning::{EXIT_AFTER_SESSION, Provisioning};

/// Under `-icount shift=0` one instruction is one virtual nanosecond, and the timer counts at
/// 25 MHz of virtual time: one tick is 40 instructions.
const INSNS_PER_TICK: u64 = 1_000_000_000 / board::TIMER_HZ;

fn fail(what: &str) -> ! {
    hprintln!("edge: FAIL {}", what);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Runs `f`, printing its cost in timer ticks and (under icount) instructions.
fn measure<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let start = board::ticks();
    let out = f();
    let ticks = u64::from(board::ticks().wrapping_sub(start));
    hprintln!(
        "bench: {} ticks={} insns={}",
        label,
        ticks,
        ticks * INSNS_PER_TICK
    );
    out
}

/// Builds the light client in its static (its own frame, gone before anything deep runs).
#[inline(never)]
fn open_light(slot: &mut Option<LightClient>, genesis: &[u8]) -> Result<(), LightError> {
    LightClient::init_in(slot, genesis, Policy::default()).map(|_| ())
}

/// Opens the store on the board's flash in its static, checking every seal.
#[inline(never)]
fn open_store(
    slot: &mut Option<board::FlashStore>,
    memory: &'static mut [u8],
) -> Result<(), StoreError> {
    Store::open_in(slot, RamFlash::new(memory)).map(|_| ())
}

#[entry]
fn main() -> ! {
    board::paint_stack();
    board::start_timer();
    let Some(provisioning) = Provisioning::parse(board::provisioning()) else {
        fail("no provisioning block at 0x300000");
    };
    let now = || provisioning.now + u64::from(board::ticks()) / board::TIMER_HZ;
    let parts = board::parts();
    if open_light(parts.light, provisioning.genesis).is_err() {
        fail("genesis refused");
    }
    if open_store(parts.store, board::data_flash()).is_err() {
        fail("flash refused");
    }
    let (Some(light), Some(store)) = (parts.light.as_mut(), parts.store.as_mut()) else {
        fail("open");
    };
    let mut cache = EdgeCache::new(light, store, parts.scratch);
    let mut parent = Link::new(board::Uart::new(board::UART0), parts.parent);
    if cache.hello(&mut parent).is_err() {
        fail("parent did not answer hello");
    }
    match measure("refresh", || cache.refresh(&mut parent, now())) {
        Ok(_) => {
            let size = cache.trusted().map_or(0, |t| t.size);
            hprintln!("edge: trusted checkpoint size={}", size);
        }
        Err(e) => {
            hprintln!("edge: refresh refused: {}", e);
            fail("refresh");
        }
    }
    let mut pieces = 0;
    for digest in &provisioning.wants {
        if let Err(e) = measure("fetch", || cache.fetch(&mut parent, digest)) {
            hprintln!("edge: fetch {} refused: {}", digest.hex().as_str(), e);
            fail("fetch");
        }
        let size = cache.store().piece(digest, 0).map_or(0, |p| p.size);
        pieces += piece_count(size);
        hprintln!("edge: verified {} ({} bytes)", digest.hex().as_str(), size);
    }
    hprintln!(
        "edge: fetched {} artifacts, {} pieces",
        provisioning.wants.len(),
        pieces
    );
    // Verification costs, on what is now in flash.
    if measure("verify-checkpoint", || cache.audit_checkpoint(now())).is_err() {
        fail("audit checkpoint");
    }
    for digest in &provisioning.wants {
        let root = match measure("verify-commit", || cache.audit_commit(digest)) {
            Ok(root) => root,
            Err(_) => fail("audit commit"),
        };
        let size = cache.store().piece(digest, 0).map_or(0, |p| p.size);
        for index in 0..piece_count(size) as u32 {
            let len = cache
                .store()
                .piece(digest, index)
                .map_or(0, |p| p.data_len());
            hprintln!("bench: piece-bytes {}", len);
            if measure("verify-piece", || cache.audit_piece(digest, index, root)).is_err() {
                fail("audit piece");
            }
        }
    }
    hprintln!("edge: ready");
    let mut peer = Link::new(board::Uart::new(board::UART1), parts.peer);
    let mut answered = 0u32;
    loop {
        match cache.serve(&mut peer, Some(&mut parent)) {
            Ok(Served::Answered) => answered += 1,
            Ok(Served::Goodbye) => {
                hprintln!("edge: session over after {} requests", answered);
                if provisioning.flags & EXIT_AFTER_SESSION != 0 {
                    break;
                }
            }
            Err(e) => {
                hprintln!("edge: serve: {}", e);
                fail("serve");
            }
        }
    }
    hprintln!("bench: peak-stack {}", board::peak_stack());
    debug::exit(debug::EXIT_SUCCESS);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("edge: panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
