//! A test helper's thread that runs until the helper is dropped: the attackers and servers
//! here (a log liar, a gossip attacker, a fake provider, a tarpit) each loop on a thread and
//! stop when the test lets go of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A running thread and its stop flag; dropping it asks the thread to stop and joins it.
pub struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What a [`Background`] thread checks between steps of its loop.
#[derive(Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Whether the owner was dropped: the thread should end its loop.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Background {
    /// Runs `work` on a new thread, handing it the flag it must check to know when to stop.
    pub fn spawn(work: impl FnOnce(StopFlag) + Send + 'static) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = StopFlag(stop.clone());
        Background {
            stop,
            thread: Some(std::thread::spawn(move || work(flag))),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
