//! qemu's mps2-an386 (Cortex-M4): CMSDK UARTs for the links, a CMSDK timer for time, PSRAM
//! as the cache's NOR flash, a provisioning block loaded next to the code, and stack painting
//! to measure the peak stack. The only `unsafe` of the firmware lives here: register access
//! and fixed memory regions that nothing else uses.
#![allow(unsafe_code)]

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use pyrsia_core::light::LightClient;
use pyrsia_embedded::{ParentBuffers, PeerBuffers, RamFlash, Scratch, Store};

/// The cache's flash store on this board.
pub(crate) type FlashStore = Store<RamFlash<'static>>;

/// CMSDK APB UART0: the link to the parent.
pub(crate) const UART0: usize = 0x4000_4000;
/// CMSDK APB UART1: the link to LAN peers.
pub(crate) const UART1: usize = 0x4000_5000;
/// CMSDK APB timer 0.
const TIMER0: usize = 0x4000_0000;
/// The timer's clock (the board's 25 MHz system clock).
pub(crate) const TIMER_HZ: u64 = 25_000_000;
/// Where the host loads the provisioning block (SSRAM1, past the code's megabyte).
const PROVISIONING: usize = 0x0030_0000;
/// Largest provisioning block.
const PROVISIONING_LEN: usize = 64 * 1024;
/// PSRAM used as the cache's flash.
const DATA_FLASH: usize = 0x2100_0000;
/// Its size.
pub(crate) const DATA_FLASH_LEN: usize = 4 * 1024 * 1024;
/// What an unused stack word holds.
const PAINT: u32 = 0x5A5A_A5A5;

const UART_DATA: usize = 0x00;
const UART_STATE: usize = 0x04;
const UART_CTRL: usize = 0x08;
const UART_BAUDDIV: usize = 0x10;
const CTRL_TX_EN: u32 = 1;
const CTRL_RX_EN: u32 = 2;
/// Idle spins between two polls of an empty UART: polling takes qemu's big lock, so polling
/// without a pause starves the thread that delivers the host's bytes.
const POLL_SPIN: u32 = 64;
const STATE_TX_FULL: u32 = 1;
const STATE_RX_FULL: u32 = 2;

fn reg(base: usize, offset: usize) -> *mut u32 {
    (base + offset) as *mut u32
}

/// A CMSDK UART as an `embedded-io` stream, polled. The UART holds one received byte, so
/// the link's speed is qemu's per-byte delivery (about 15 KB/s on the CI machine).
pub(crate) struct Uart {
    base: usize,
}

impl Uart {
    /// Enables transmit and receive on the UART at `base`.
    pub(crate) fn new(base: usize) -> Self {
        // SAFETY: `base` is one of the board's UART register blocks; the firmware is single
        // threaded and each UART has one owner.
        unsafe {
            write_volatile(reg(base, UART_BAUDDIV), 16);
            write_volatile(reg(base, UART_CTRL), CTRL_TX_EN | CTRL_RX_EN);
        }
        Uart { base }
    }

    fn state(&self) -> u32 {
        // SAFETY: register read of this UART.
        unsafe { read_volatile(reg(self.base, UART_STATE)) }
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.state() & STATE_RX_FULL == 0 {
            for _ in 0..POLL_SPIN {
                cortex_m::asm::nop();
            }
        }
        let mut n = 0;
        while n < buf.len() && self.state() & STATE_RX_FULL != 0 {
            // SAFETY: register read of this UART.
            buf[n] = unsafe { read_volatile(reg(self.base, UART_DATA)) } as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &byte in buf {
            while self.state() & STATE_TX_FULL != 0 {}
            // SAFETY: register write of this UART.
            unsafe { write_volatile(reg(self.base, UART_DATA), u32::from(byte)) };
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Starts timer 0 counting down from `u32::MAX` at [`TIMER_HZ`].
pub(crate) fn start_timer() {
    // SAFETY: timer 0's registers; only this module touches them.
    unsafe {
        write_volatile(reg(TIMER0, 0x0), 0);
        write_volatile(reg(TIMER0, 0x8), u32::MAX);
        write_volatile(reg(TIMER0, 0x4), u32::MAX);
        write_volatile(reg(TIMER0, 0x0), 1);
    }
}

/// Timer ticks since [`start_timer`] (wraps after about 171 s).
pub(crate) fn ticks() -> u32 {
    // SAFETY: timer 0's value register.
    u32::MAX - unsafe { read_volatile(reg(TIMER0, 0x4)) }
}

/// The provisioning block the host loaded.
pub(crate) fn provisioning() -> &'static [u8] {
    // SAFETY: the region is RAM on this board, written by the loader before reset and never
    // written by the firmware.
    unsafe { core::slice::from_raw_parts(PROVISIONING as *const u8, PROVISIONING_LEN) }
}

/// The PSRAM that serves as the cache's flash.
pub(crate) fn data_flash() -> &'static mut [u8] {
    static mut TAKEN: bool = false;
    // SAFETY: called once (checked); the region is RAM on this board that nothing else uses.
    unsafe {
        assert!(!read_volatile(addr_of!(TAKEN)), "data flash taken twice");
        write_volatile(addr_of_mut!(TAKEN), true);
        core::slice::from_raw_parts_mut(DATA_FLASH as *mut u8, DATA_FLASH_LEN)
    }
}

/// Everything large the firmware holds, in statics (never on the stack): the cache's scratch,
/// the two links' buffers, and the slots its light client and flash store are built in.
pub(crate) struct Parts {
    pub(crate) scratch: &'static mut Scratch,
    pub(crate) parent: &'static mut ParentBuffers,
    pub(crate) peer: &'static mut PeerBuffers,
    pub(crate) light: &'static mut Option<LightClient>,
    pub(crate) store: &'static mut Option<FlashStore>,
}

/// The statics, once.
pub(crate) fn parts() -> Parts {
    static mut TAKEN: bool = false;
    static mut SCRATCH: Scratch = Scratch::new();
    static mut PARENT: ParentBuffers = ParentBuffers::new();
    static mut PEER: PeerBuffers = PeerBuffers::new();
    static mut LIGHT: Option<LightClient> = None;
    static mut STORE: Option<FlashStore> = None;
    // SAFETY: called once (checked), so each static has one mutable reference.
    unsafe {
        assert!(!read_volatile(addr_of!(TAKEN)), "parts taken twice");
        write_volatile(addr_of_mut!(TAKEN), true);
        Parts {
            scratch: &mut *addr_of_mut!(SCRATCH),
            parent: &mut *addr_of_mut!(PARENT),
            peer: &mut *addr_of_mut!(PEER),
            light: &mut *addr_of_mut!(LIGHT),
            store: &mut *addr_of_mut!(STORE),
        }
    }
}

unsafe extern "C" {
    /// End of `.bss`/`.uninit`: the lowest address the stack may reach (cortex-m-rt).
    static __sheap: u32;
    /// Top of the stack (cortex-m-rt).
    static _stack_start: u32;
}

/// Fills the unused stack with a pattern; call first thing in `main`.
#[inline(never)]
pub(crate) fn paint_stack() {
    let sp = cortex_m::register::msp::read() as usize;
    let mut at = addr_of!(__sheap) as usize;
    // Leave this function's own frame alone.
    while at + 256 < sp {
        // SAFETY: between the end of the statics and below the live stack: unused RAM.
        unsafe { write_volatile(at as *mut u32, PAINT) };
        at += 4;
    }
}

/// The deepest the stack has been since [`paint_stack`], in bytes.
pub(crate) fn peak_stack() -> usize {
    let top = addr_of!(_stack_start) as usize;
    let mut at = addr_of!(__sheap) as usize;
    // SAFETY: reads of RAM between the statics and the stack top.
    while at < top && unsafe { read_volatile(at as *const u32) } == PAINT {
        at += 4;
    }
    top - at
}
