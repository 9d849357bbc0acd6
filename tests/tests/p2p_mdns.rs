//! mDNS discovery: two nodes in two network namespaces that this test creates, joined by a
//! veth pair, with no bootstrap peers, find and connect to each other.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pyrsia_tests::binary;
use pyrsia_tests::process::Daemon;

/// A network namespace, deleted when dropped.
struct Namespace(String);

impl Namespace {
    fn create(name: String) -> Namespace {
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Namespace(name);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.0]).args(args);
        command
    }

    fn exec(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("run");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `/peers` of the node listening on 127.0.0.1:7888 inside `ns`, if it answers.
fn peers(ns: &Namespace) -> Option<serde_json::Value> {
    let out = ns
        .command(&["curl", "-sf", "http://127.0.0.1:7888/peers"])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn two_nodes_in_separate_namespaces_find_each_other_by_mdns() {
    let id = std::process::id() % 100_000;
    let (a, b) = (
        Namespace::create(format!("pyrsia-{id}-a")),
        Namespace::create(format!("pyrsia-{id}-b")),
    );
    let (va, vb) = (format!("pv{id}a"), format!("pv{id}b"));
    run(Command::new("ip").args(["link", "add", &va, "type", "veth", "peer", "name", &vb]));
    for (ns, dev, address) in [(&a, &va, "10.213.0.1/24"), (&b, &vb, "10.213.0.2/24")] {
        run(Command::new("ip").args(["link", "set", dev, "netns", &ns.0]));
        ns.exec(&["ip", "addr", "add", address, "dev", dev]);
        ns.exec(&["ip", "link", "set", dev, "up"]);
        ns.exec(&["ip", "route", "add", "224.0.0.0/4", "dev", dev]);
    }

    let work = tempfile::tempdir().unwrap();
    let start = |ns: &Namespace, name: &str| {
        let data = work.path().join(name);
        let mut command = ns.command(&[
            binary("pyrsia").to_str().unwrap(),
            "node",
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        command
            .args([
                "--http",
                "127.0.0.1:7888",
                "--p2p-listen",
                "/ip4/0.0.0.0/tcp/44000",
            ])
            .args(["--upstream", "http://127.0.0.1:9"])
            .env("RUST_LOG", "info,fjall=warn,lsm_tree=warn");
        Daemon::spawn(command, &work.path().join(format!("{name}.log")))
    };
    let node_a = start(&a, "a");
    let deadline = Instant::now() + Duration::from_secs(20);
    while peers(&a).is_none() {
        assert!(
            Instant::now() < deadline,
            "node a did not start\n{}",
            node_a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let node_b = start(&b, "b");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (pa, pb) = (peers(&a), peers(&b));
        if let (Some(pa), Some(pb)) = (&pa, &pb) {
            let lists = |p: &serde_json::Value, other: &serde_json::Value| {
                p["peers"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|x| x["peer_id"] == other["peer_id"]))
            };
            if lists(pa, pb) && lists(pb, pa) {
                assert_eq!(pa["mdns"], true);
                let address = pa["peers"][0]["addresses"][0].as_str().unwrap_or_default();
                assert!(
                    address.contains("10.213.0.2"),
                    "connected over the veth: {address}"
                );
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no mDNS discovery\n--- a\n{}\n--- b\n{}",
            node_a.log_text(),
            node_b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
