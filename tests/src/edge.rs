//! The edge-cache firmware under qemu: its ELF, its provisioning block, the qemu command line,
//! and a host-side LAN peer speaking the edge protocol over TCP.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pyrsia_core::digest::{Digest, Hasher};
use pyrsia_core::edge::{Request, Response};
use pyrsia_core::light::{LightClient, Policy};
use pyrsia_core::pieces::piece_count;
use pyrsia_embedded::{EdgeCache, Link, ParentBuffers, RamFlash, Scratch, Store};

use crate::process::{Daemon, free_port};

/// The firmware ELF, built by `cd runtime-embedded && cargo build --release --target
/// thumbv7em-none-eabihf` (the README's test command does this first).
pub fn firmware() -> PathBuf {
    let target = std::env::var_os("PYRSIA_TARGET_DIR")
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("thumbv7em-none-eabihf/release/pyrsia-edge");
    assert!(
        path.exists(),
        "{} is missing: run `cd runtime-embedded && cargo build --release --target \
         thumbv7em-none-eabihf` first",
        path.display()
    );
    path
}

/// Flag of the provisioning block: exit after the first LAN session.
pub const EXIT_AFTER_SESSION: u32 = 1;

/// Writes a provisioning block (see the firmware's `provisioning.rs`) to `path`.
pub fn write_provisioning(path: &Path, now: u64, flags: u32, wants: &[Digest], genesis: &[u8]) {
    let mut block = Vec::new();
    block.extend_from_slice(b"PYPV");
    block.extend_from_slice(&1u32.to_le_bytes());
    block.extend_from_slice(&now.to_le_bytes());
    block.extend_from_slice(&flags.to_le_bytes());
    block.extend_from_slice(&(wants.len() as u32).to_le_bytes());
    block.extend_from_slice(&(genesis.len() as u32).to_le_bytes());
    for want in wants {
        block.extend_from_slice(want.as_bytes());
    }
    block.extend_from_slice(genesis);
    std::fs::write(path, block).expect("write provisioning block");
}

/// Starts qemu's mps2-an386 with the firmware: UART0 connects to the parent's edge port,
/// UART1 listens on `lan_port` for LAN peers, semihosting carries output and the exit code,
/// and `-icount shift=0` makes instruction counts repeatable.
pub fn start_qemu(
    provisioning: &Path,
    parent_port: u16,
    lan_port: u16,
    icount: bool,
    log: &Path,
) -> Daemon {
    let mut command = Command::new("qemu-system-arm");
    command
        .args(["-machine", "mps2-an386", "-cpu", "cortex-m4"])
        .args(["-display", "none", "-monitor", "none"])
        .args(if icount {
            &["-icount", "shift=0"][..]
        } else {
            &[]
        })
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-serial")
        .arg(format!("tcp:127.0.0.1:{parent_port},nodelay=on"))
        .arg("-serial")
        .arg(format!(
            "tcp:127.0.0.1:{lan_port},server=on,wait=off,nodelay=on"
        ))
        .arg("-kernel")
        .arg(firmware())
        .arg("-device")
        .arg(format!(
            "loader,file={},addr=0x00300000,force-raw=on",
            provisioning.display()
        ));
    Daemon::spawn(command, log)
}

/// A TCP stream as an `embedded-io` stream, for the host-side edge cache.
pub struct TcpIo(pub TcpStream);

impl embedded_io::ErrorType for TcpIo {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for TcpIo {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        std::io::Read::read(&mut self.0, buf).map_err(|_| embedded_io::ErrorKind::Other)
    }
}

impl embedded_io::Write for TcpIo {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        std::io::Write::write(&mut self.0, buf).map_err(|_| embedded_io::ErrorKind::Other)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        std::io::Write::flush(&mut self.0).map_err(|_| embedded_io::ErrorKind::Other)
    }
}

/// A node serving the edge protocol on a free port, with `image` pulled through it (skopeo)
/// and committed. Returns the node, its edge port and its genesis entry.
pub fn node_with_committed_image(
    work: &Path,
    registry: &crate::registry::Registry,
    image: &crate::image::PushedImage,
    name: &str,
) -> (crate::node::Node, u16, Vec<u8>) {
    let edge_port = free_port();
    let edge_listen = format!("127.0.0.1:{edge_port}");
    let node = crate::node::Node::start(
        &work.join("node"),
        &["--upstream", &registry.url(), "--edge-listen", &edge_listen],
    );
    let out = crate::clients::skopeo_copy(&node.authority(), &image.reference, &work.join("copy"));
    crate::clients::assert_succeeded(&out, &image.reference, &node.log());
    node.wait_committed(name, &image.digest)
        .unwrap_or_else(|| panic!("{} committed\n{}", image.reference, node.log()));
    let genesis_path = work.join("genesis.bin");
    node.save_genesis(&genesis_path);
    let genesis = std::fs::read(&genesis_path).expect("genesis");
    (node, edge_port, genesis)
}

/// Current Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Waits until qemu's output contains `line`; panics if qemu exits first or on timeout.
pub fn wait_for_line(qemu: &mut Daemon, line: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !qemu.log_text().contains(line) {
        if let Some(status) = qemu.wait_exit(Duration::from_millis(100)) {
            panic!(
                "qemu exited ({status}) before `{line}`:\n{}",
                qemu.log_text()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no `{line}` after {timeout:?}:\n{}",
            qemu.log_text()
        );
    }
}

/// Runs the firmware against the node's edge port: it fetches and verifies `wants`; then a
/// host-side edge cache (a LAN peer trusting `genesis` only) fetches them from the emulated
/// one, checks that each blob's bytes hash to its digest, and says goodbye. Asserts the
/// firmware exits with 0 and returns its output.
pub fn run_firmware(
    work: &Path,
    edge_port: u16,
    genesis: &[u8],
    wants: &[Digest],
    icount: bool,
) -> String {
    let provisioning = work.join("provisioning.bin");
    write_provisioning(
        &provisioning,
        unix_now(),
        EXIT_AFTER_SESSION,
        wants,
        genesis,
    );
    let lan_port = free_port();
    let mut qemu = start_qemu(
        &provisioning,
        edge_port,
        lan_port,
        icount,
        &work.join("qemu.log"),
    );
    wait_for_line(&mut qemu, "edge: ready", Duration::from_secs(600));

    let stream = TcpStream::connect(("127.0.0.1", lan_port)).expect("connect to UART1");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut memory = vec![0xFFu8; 8 << 20];
    let mut scratch = Box::new(Scratch::new());
    let mut buffers = Box::new(ParentBuffers::new());
    let mut light = LightClient::new(genesis, Policy::default()).expect("genesis");
    let mut store = Store::open(RamFlash::new(&mut memory)).expect("open the host cache");
    let mut peer = EdgeCache::new(&mut light, &mut store, &mut scratch);
    let mut link = Link::new(TcpIo(stream), &mut buffers);
    peer.hello(&mut link).expect("hello");
    peer.refresh(&mut link, unix_now())
        .unwrap_or_else(|e| panic!("refresh from the emulated cache: {e}\n{}", qemu.log_text()));
    for digest in wants {
        peer.fetch(&mut link, digest).unwrap_or_else(|e| {
            panic!(
                "fetch {digest} from the emulated cache: {e}\n{}",
                qemu.log_text()
            )
        });
        let first = peer.store().piece(digest, 0).expect("piece 0 cached");
        let mut hasher = Hasher::new();
        for index in 0..piece_count(first.size) as u32 {
            let piece = peer.store().piece(digest, index).expect("piece cached");
            let mut bytes = vec![0u8; piece.data_len() as usize];
            peer.store_mut()
                .read(piece.data_at(), &mut bytes)
                .expect("read back");
            hasher.update(&bytes);
        }
        assert_eq!(
            hasher.finish(),
            *digest,
            "bytes served by the emulated cache"
        );
    }
    assert_eq!(
        link.call(&Request::Goodbye).expect("goodbye"),
        Response::Goodbye
    );
    let status = qemu
        .wait_exit(Duration::from_secs(60))
        .expect("the firmware exits after the session");
    let log = qemu.log_text();
    assert!(status.success(), "firmware exit {status}:\n{log}");
    assert!(log.contains("edge: session over"), "{log}");
    log
}

/// Sends one edge request on `stream` and reads the answer's frame (still COBS-encoded, for
/// [`pyrsia_core::edge::decode`]); `None` when the connection ends first.
pub fn edge_call(stream: &mut TcpStream, request: &Request) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut buf = [0u8; 256];
    let frame = pyrsia_core::edge::encode(request, &mut buf).expect("encode");
    stream.write_all(frame).ok()?;
    read_edge_frame(stream)
}

/// Reads one edge frame (up to its zero delimiter, excluded); `None` when the connection ends
/// first.
pub fn read_edge_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut frame = Vec::new();
    let mut byte = [0u8];
    loop {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        if byte[0] == 0 {
            return Some(frame);
        }
        frame.push(byte[0]);
    }
}
