//! A TCP listener that accepts connections, counts them and never answers: a tarpit upstream,
//! or a sentinel that shows whether a node ever connected to an address it must not contact.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::background::Background;

/// A listener on 127.0.0.1 that holds every connection open, silent, until dropped.
pub struct Tarpit {
    port: u16,
    accepted: Arc<AtomicUsize>,
    _listening: Background,
}

impl Tarpit {
    /// Starts listening on a free port.
    pub fn start() -> Tarpit {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tarpit");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let listening = Background::spawn(move |stop| {
            while !stop.is_set() {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        held.lock().unwrap().push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Tarpit {
            port,
            accepted,
            _listening: listening,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.authority())
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}
