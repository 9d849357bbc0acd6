//! Socket buffers for QUIC's UDP sockets.
//!
//! A UDP socket drops every datagram that arrives while its receive buffer is full, and
//! QUIC reads those drops as congestion. Linux gives a socket `net.core.rmem_default`
//! (208 KiB on most distributions): about 2 ms of a 100 MB/s transfer, so a network thread
//! that stalls for longer loses packets, and the sender slows down. Measured on the lab's
//! 20 ms link (`pyrsia-bench-reach transfers`, BENCHMARKS.md): one node-to-node transfer over
//! QUIC ran at 29–34 MB/s with the default buffers, and at 54–68 MB/s in five runs of six once
//! the node sized its socket to 4 MiB (31 MB/s in the sixth).
//!
//! libp2p-quic 0.14 creates its sockets itself and offers no hook to size them, so once a
//! QUIC listener is up the node finds its sockets among the process's file descriptors (by
//! type and port), duplicates each with `pidfd_getfd` (no unsafe code) and sizes it: a
//! socket option set through a duplicate applies to the one socket both name. Linux caps the
//! size at `net.core.rmem_max` / `wmem_max`; a process with `CAP_NET_ADMIN` may go past the
//! cap (`SO_RCVBUFFORCE`), and a node that ends up below [`QUIC_SOCKET_BUFFER`] says how to
//! raise it (what quic-go does for the same reason).

/// The receive and send buffer a QUIC socket asks for: 40 ms of a 100 MB/s link, and a
/// burst of four piece answers.
pub(crate) const QUIC_SOCKET_BUFFER: usize = 4 << 20;

/// What one QUIC socket's buffers came to: the size granted, half what the kernel reports
/// (Linux doubles the size a socket asks for, the other half for its own bookkeeping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketBuffers {
    /// The receive buffer, in bytes.
    pub(crate) receive: usize,
    /// The send buffer, in bytes.
    pub(crate) send: usize,
}

impl SocketBuffers {
    /// Whether both buffers hold at least [`QUIC_SOCKET_BUFFER`] bytes.
    pub(crate) fn large_enough(&self) -> bool {
        self.receive >= QUIC_SOCKET_BUFFER && self.send >= QUIC_SOCKET_BUFFER
    }
}

/// Sizes the buffers of this process's UDP sockets bound to `port` (the QUIC listener's) to
/// [`QUIC_SOCKET_BUFFER`], past the system's cap when the process may. Returns what each
/// socket's buffers came to; empty when no socket was found (or off Linux).
#[cfg(target_os = "linux")]
pub(crate) fn enlarge(port: u16) -> Vec<SocketBuffers> {
    use rustix::net::sockopt;
    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

    let Ok(me) = pidfd_open(getpid(), PidfdFlags::empty()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut sized = Vec::new();
    for entry in entries.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if !is_socket {
            continue;
        }
        let Ok(socket) = pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()) else {
            continue;
        };
        let is_datagram =
            sockopt::socket_type(&socket).is_ok_and(|t| t == rustix::net::SocketType::DGRAM);
        let bound_port = rustix::net::getsockname(&socket)
            .ok()
            .and_then(|a| std::net::SocketAddr::try_from(a).ok())
            .map(|a| a.port());
        if !is_datagram || bound_port != Some(port) {
            continue;
        }
        let receive = sized_to(
            &socket,
            |s, n| sockopt::set_socket_recv_buffer_size(s, n),
            |s, n| sockopt::set_socket_recv_buffer_size_force(s, n),
            |s| sockopt::socket_recv_buffer_size(s),
        );
        let send = sized_to(
            &socket,
            |s, n| sockopt::set_socket_send_buffer_size(s, n),
            |s, n| sockopt::set_socket_send_buffer_size_force(s, n),
            |s| sockopt::socket_send_buffer_size(s),
        );
        sized.push(SocketBuffers { receive, send });
    }
    sized
}

/// Off Linux the sockets keep the system's buffers.
#[cfg(not(target_os = "linux"))]
pub(crate) fn enlarge(_port: u16) -> Vec<SocketBuffers> {
    Vec::new()
}

/// Sets one buffer of `socket` to [`QUIC_SOCKET_BUFFER`] (within the system's cap), then past
/// the cap if that fell short and the process may; returns the size granted (half what the
/// kernel reports).
#[cfg(target_os = "linux")]
fn sized_to(
    socket: &std::os::fd::OwnedFd,
    set: impl Fn(&std::os::fd::OwnedFd, usize) -> rustix::io::Result<()>,
    force: impl Fn(&std::os::fd::OwnedFd, usize) -> rustix::io::Result<()>,
    get: impl Fn(&std::os::fd::OwnedFd) -> rustix::io::Result<usize>,
) -> usize {
    let granted = |socket| get(socket).unwrap_or(0) / 2;
    let _ = set(socket, QUIC_SOCKET_BUFFER);
    if granted(socket) < QUIC_SOCKET_BUFFER {
        // Needs CAP_NET_ADMIN; without it the capped size stays.
        let _ = force(socket, QUIC_SOCKET_BUFFER);
    }
    granted(socket)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_udp_socket_on_the_port_is_enlarged_and_others_are_not() {
        let quic = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = quic.local_addr().unwrap().port();
        let before = rustix::net::sockopt::socket_recv_buffer_size(&other).unwrap();
        let sized = enlarge(port);
        assert_eq!(sized.len(), 1, "the one socket bound to {port}");
        let after = rustix::net::sockopt::socket_recv_buffer_size(&quic).unwrap();
        assert_eq!(sized[0].receive, after / 2, "half what the kernel reports");
        assert!(after >= before, "never made smaller: {before} -> {after}");
        if rustix::process::geteuid().is_root() {
            assert!(
                sized[0].large_enough(),
                "root may go past the cap: {:?}",
                sized[0]
            );
        }
        assert_eq!(
            rustix::net::sockopt::socket_recv_buffer_size(&other).unwrap(),
            before,
            "a socket on another port keeps its size"
        );
        assert!(
            enlarge(tcp.local_addr().unwrap().port()).is_empty(),
            "TCP is not QUIC"
        );
    }
}
