//! Closing clients' TCP connections from outside tiny_http.
//!
//! tiny_http does not expose its sockets, yet two situations need one closed:
//! - a blob that turns out bad while it streams (digest mismatch, upstream gone): tiny_http
//!   would keep the connection open and the client, promised N bytes, would wait forever;
//! - a client that connects and never sends a request line (tiny_http waits on it without
//!   limit).
//!
//! On Linux we find the socket among the process's file descriptors by its addresses,
//! duplicate it with `pidfd_getfd` (no unsafe code), and shut it down: the client sees the
//! connection end, and tiny_http's reader sees EOF and drops it.

use std::net::SocketAddr;

/// Closes the TCP connection whose peer is `peer`. Returns whether a socket was found.
pub fn abort_connection(peer: SocketAddr) -> bool {
    let mut found = false;
    for_each_connection(|_, remote, socket| {
        if remote == peer {
            found |= shutdown(socket);
        }
    });
    found
}

/// A duplicate of the socket connected to `peer`, for writing to it directly (sendfile).
#[cfg(target_os = "linux")]
pub fn connection_socket(peer: SocketAddr) -> Option<std::os::fd::OwnedFd> {
    let mut found = None;
    for_each_connection(|_, remote, socket| {
        if remote == peer && found.is_none() {
            found = socket.try_clone().ok();
        }
    });
    found
}

#[cfg(target_os = "linux")]
/// Shuts a socket down in both directions; true on success.
pub(crate) fn shutdown(socket: &std::os::fd::OwnedFd) -> bool {
    rustix::net::shutdown(socket, rustix::net::Shutdown::Both).is_ok()
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn shutdown(_socket: &()) -> bool {
    false
}

/// Calls `visit(local, peer, socket)` for every connected TCP socket of this process, with a
/// duplicate of its descriptor.
#[cfg(target_os = "linux")]
pub fn for_each_connection(mut visit: impl FnMut(SocketAddr, SocketAddr, &std::os::fd::OwnedFd)) {
    use rustix::net::{getpeername, getsockname};
    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

    let Ok(me) = pidfd_open(getpid(), PidfdFlags::empty()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .map(|target| target.to_string_lossy().starts_with("socket:"))
            .unwrap_or(false);
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if !is_socket {
            continue;
        }
        let Ok(dup) = pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()) else {
            continue;
        };
        let address = |addr: Option<rustix::net::SocketAddrAny>| {
            addr.and_then(|a| SocketAddr::try_from(a).ok())
        };
        let (Some(local), Some(peer)) = (
            address(getsockname(&dup).ok()),
            address(getpeername(&dup).ok().flatten()),
        ) else {
            continue;
        };
        visit(local, peer, &dup);
    }
}

/// Elsewhere no socket can be reached; connections stay open until the client gives up.
#[cfg(not(target_os = "linux"))]
pub fn for_each_connection(_visit: impl FnMut(SocketAddr, SocketAddr, &())) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn closes_the_connection_to_a_peer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server_side, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(connection_socket(peer).is_some());
        assert!(abort_connection(peer));
        let mut buf = [0u8; 1];
        // The server side was shut down: the client reads EOF instead of blocking.
        assert_eq!(client.read(&mut buf).unwrap(), 0);
    }
}
