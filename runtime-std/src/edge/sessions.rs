//! The edge port's session table: a bounded number of sessions, and when it is full a new
//! connection takes the place of the session that has been idle the longest (from the address
//! holding the most sessions), so idle sockets can never lock clients out.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A session idle at least this long may give its place to a new connection.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// The sessions being served.
pub(super) struct Sessions {
    limit: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    live: HashMap<u64, Slot>,
}

struct Slot {
    address: Option<IpAddr>,
    /// A handle on the session's socket, to close it when the session is evicted.
    socket: TcpStream,
    last_active: Instant,
    busy: bool,
}

/// Why a connection was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Every session is busy or active within [`EVICTABLE_AFTER`].
    AllActive,
    /// The socket could not be duplicated.
    Socket,
}

impl Sessions {
    /// A table of at most `limit` sessions.
    pub(super) fn new(limit: usize) -> Arc<Sessions> {
        Arc::new(Sessions {
            limit,
            table: Mutex::new(Table::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a session on `stream`, evicting the longest-idle session of the most
    /// represented address when the table is full.
    pub(super) fn admit(
        self: &Arc<Self>,
        stream: &TcpStream,
        now: Instant,
    ) -> Result<Session, Refused> {
        let socket = stream.try_clone().map_err(|_| Refused::Socket)?;
        let address = stream.peer_addr().ok().map(|a| a.ip());
        let mut table = self.lock();
        if table.live.len() >= self.limit {
            let victim = table.victim(now).ok_or(Refused::AllActive)?;
            if let Some(slot) = table.live.remove(&victim) {
                tracing::info!(address = ?slot.address, "edge: sessions full; closing the session idle the longest");
                let _ = slot.socket.shutdown(Shutdown::Both);
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        table.live.insert(
            id,
            Slot {
                address,
                socket,
                last_active: now,
                busy: false,
            },
        );
        Ok(Session {
            id,
            sessions: self.clone(),
        })
    }

    /// Sessions in the table.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().live.len()
    }
}

impl Table {
    /// The session to evict: idle, silent for [`EVICTABLE_AFTER`], from the address with
    /// the most sessions, the longest silent of those.
    fn victim(&self, now: Instant) -> Option<u64> {
        let mut per_address: HashMap<Option<IpAddr>, usize> = HashMap::new();
        for slot in self.live.values() {
            *per_address.entry(slot.address).or_default() += 1;
        }
        self.live
            .iter()
            .filter(|(_, s)| {
                !s.busy && now.saturating_duration_since(s.last_active) >= EVICTABLE_AFTER
            })
            .max_by_key(|(_, s)| {
                (
                    per_address.get(&s.address).copied().unwrap_or(0),
                    now.saturating_duration_since(s.last_active),
                )
            })
            .map(|(id, _)| *id)
    }
}

/// A session's place in the table; dropping it frees the place.
pub(super) struct Session {
    id: u64,
    sessions: Arc<Sessions>,
}

impl Session {
    /// The session is answering a request (it cannot be evicted meanwhile).
    pub(super) fn busy(&self) {
        self.mark(true);
    }

    /// The session answered and waits for the next request.
    pub(super) fn idle(&self) {
        self.mark(false);
    }

    fn mark(&self, busy: bool) {
        if let Some(slot) = self.sessions.lock().live.get_mut(&self.id) {
            slot.busy = busy;
            slot.last_active = Instant::now();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.sessions.lock().live.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn a_full_table_evicts_the_longest_idle_session_and_never_a_busy_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sessions = Sessions::new(2);
        let start = Instant::now();
        let (mut old_client, old) = pair(&listener);
        let first = sessions.admit(&old, start).unwrap();
        let (_c2, newer) = pair(&listener);
        let second = sessions
            .admit(&newer, start + Duration::from_secs(1))
            .unwrap();
        second.busy();
        let (_c3, third) = pair(&listener);
        // Too soon: nobody has been idle long enough.
        assert_eq!(
            sessions
                .admit(&third, start + Duration::from_millis(500))
                .err(),
            Some(Refused::AllActive)
        );
        let later = Instant::now() + Duration::from_secs(5);
        let _third = sessions.admit(&third, later).unwrap();
        assert_eq!(sessions.len(), 2);
        // The idle one was closed; the busy one stays.
        let mut byte = [0u8];
        assert_eq!(old_client.read(&mut byte).unwrap(), 0);
        drop(first);
        assert_eq!(
            sessions.len(),
            2,
            "an evicted session's drop frees nothing twice"
        );
        drop(second);
        assert_eq!(sessions.len(), 1);
    }
}
