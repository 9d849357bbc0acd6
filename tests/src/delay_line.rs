//! A delay line for the lab's WAN links: every packet routed into a TUN device in a router
//! namespace comes back out of it `delay` later, then goes on its way. This machine's kernel
//! has no `sch_netem` (nor `fq`, so no EDT delay from BPF either), so two threads of this
//! process do what `tc qdisc add … netem delay` would: one reads packets off the device and
//! stamps them, the other writes each back once its time has come. Packets keep their order.
//! Its own ceiling (packets per second through two threads) is measured beside whatever runs
//! over it: a plain HTTP download across the same line.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Packets held in the line, each with when it is due out, oldest first.
type Held = VecDeque<(Instant, Vec<u8>)>;

/// A running delay line; it stops when dropped (the reader at the next packet).
pub struct DelayLine {
    stop: Arc<AtomicBool>,
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Makes TUN device `name`, up, in namespace `ns` (from a thread that joins the namespace, as
/// a device is made in its creator's namespace).
fn open_tun(ns: &str, name: &str) -> tun::Device {
    let (ns, name) = (ns.to_string(), name.to_string());
    std::thread::spawn(move || {
        let netns = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("the namespace");
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut config = tun::Configuration::default();
        config.tun_name(&name).layer(tun::Layer::L3).up();
        tun::create(&config).expect("a TUN device")
    })
    .join()
    .expect("the TUN thread")
}

impl DelayLine {
    /// Starts a delay line on a new TUN device `name` in namespace `ns`: packets the namespace
    /// routes into it come back out `delay` later, as if received on it. The caller brings
    /// the device up and routes through it.
    pub fn start(ns: &str, name: &str, delay: Duration) -> DelayLine {
        let (mut reader, writer) = open_tun(ns, name).split();
        let stop = Arc::new(AtomicBool::new(false));
        let queue: Arc<Mutex<Held>> = Arc::default();
        let (wake, woken) = mpsc::channel::<()>();
        {
            let (stop, queue) = (stop.clone(), queue.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::SeqCst) {
                    let Ok(n) = reader.read(&mut buf) else { break };
                    let due = Instant::now() + delay;
                    queue.lock().unwrap().push_back((due, buf[..n].to_vec()));
                    let _ = wake.send(());
                }
            });
        }
        {
            let stop = stop.clone();
            let mut writer = writer;
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let next = queue.lock().unwrap().front().map(|(due, _)| *due);
                    match next {
                        None => {
                            let _ = woken.recv_timeout(Duration::from_millis(100));
                        }
                        Some(due) => {
                            let now = Instant::now();
                            if due > now {
                                std::thread::sleep(due - now);
                            }
                            let due_now: Vec<Vec<u8>> = {
                                let mut queue = queue.lock().unwrap();
                                let now = Instant::now();
                                let mut out = Vec::new();
                                while queue.front().is_some_and(|(due, _)| *due <= now) {
                                    out.push(queue.pop_front().expect("front").1);
                                }
                                out
                            };
                            for packet in due_now {
                                let _ = writer.write(&packet);
                            }
                            while woken.try_recv().is_ok() {}
                        }
                    }
                }
            });
        }
        DelayLine { stop }
    }
}
