//! A lab of hosts in network namespaces on this machine, for tests of what crosses a real
//! network: a public segment (a bridge in a namespace of its own, `10.77.0.0/24`) and
//! private hosts, each alone behind a NAT router (nftables masquerade) whose outside is on the
//! public segment. No packet leaves the machine: the lab has no route out.
//!
//! The test process stays in the root namespace and reaches each host only through the host's
//! management link (a veth pair, `10.<a>.<b>.<c>/30`): a node serves HTTP there and speaks
//! P2P only on its lab address, so no P2P traffic takes the management link. Needs root (CI
//! runs as root), iproute2 and nftables. Everything is removed when the [`Lab`] drops.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// How a NAT router maps a private host's flows to its public address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// Endpoint-independent mapping: Linux masquerade keeps the source port when it is free,
    /// so every peer sees the host at one public address and port. Inbound packets are
    /// forwarded only for flows the host opened (conntrack).
    EndpointIndependent,
    /// Symmetric: a fresh random public port for every flow (`masquerade fully-random`), so
    /// the port one peer sees says nothing about the next flow's.
    Symmetric,
}

/// A host in the lab.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its namespace (run a command in it with [`Host::command`]).
    pub ns: String,
    /// Its address in the lab (public, or private behind its NAT).
    pub ip: String,
    /// Its address on the management link, which the test process reaches.
    pub mgmt_ip: String,
    /// For a private host: its router's public address.
    pub public_ip: Option<String>,
    /// For a private host: its router's namespace.
    router: Option<String>,
}

impl Host {
    /// `program` run inside this host's namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns, program]);
        command
    }

    /// Bytes received and sent on the host's lab link (`eth0`) so far.
    pub fn lab_link_bytes(&self) -> u64 {
        ["rx_bytes", "tx_bytes"]
            .iter()
            .map(|counter| {
                let out = self
                    .command("cat")
                    .arg(format!("/sys/class/net/eth0/statistics/{counter}"))
                    .output()
                    .expect("interface counters");
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<u64>()
                    .expect("a byte count")
            })
            .sum()
    }

    /// For a private host: the flows it opened through its NAT, as (protocol, the port it
    /// sent from, the port its router maps that to), read from the router's conntrack table.
    pub fn nat_mappings(&self) -> Vec<(String, u16, u16)> {
        let Some(router) = &self.router else {
            return Vec::new();
        };
        let out = Command::new("ip")
            .args(["netns", "exec", router, "cat", "/proc/net/nf_conntrack"])
            .output()
            .expect("conntrack table");
        let from = format!("src={}", self.ip);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.split_whitespace().any(|f| f == from))
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let value = |key: &str| {
                    fields
                        .iter()
                        .filter_map(|f| f.strip_prefix(key))
                        .map(|v| v.parse::<u16>().ok())
                        .collect::<Vec<_>>()
                };
                // The original tuple's source port, then the reply tuple's destination port.
                let sport = *value("sport=").first()?;
                let dport = *value("dport=").last()?;
                Some((fields.get(2)?.to_string(), sport?, dport?))
            })
            .collect()
    }
}

/// See the module documentation.
pub struct Lab {
    /// This lab's number in the process.
    index: u32,
    prefix: String,
    wan: String,
    namespaces: Vec<String>,
    root_links: Vec<String>,
    /// The management /30 subnets handed out so far.
    links: u32,
    /// Private segments made so far.
    segments: u8,
    /// Names every host of the lab resolves (`/etc/hosts` lines).
    names: String,
    /// The lab's DNS server, when one runs ([`Lab::serve_txt`]): its address, and dnsmasq.
    dns: Option<(String, std::process::Child)>,
}

/// Labs made by this process, for unique names and management subnets.
static LABS: AtomicU32 = AtomicU32::new(0);

/// Runs `ip` (or, with `ns`, `ip netns exec ns …`) and panics with its output on failure.
fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Gives the interface `dev` the address `cidr`, in the namespace `ns` (or the root one).
fn add_address(ns: Option<&str>, cidr: &str, dev: &str) {
    match ns {
        Some(ns) => run(&["ip", "-n", ns, "addr", "add", cidr, "dev", dev]),
        None => run(&["ip", "addr", "add", cidr, "dev", dev]),
    }
}

impl Lab {
    /// An empty lab: the public segment's bridge, no hosts.
    pub fn new() -> Lab {
        let lab = LABS.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("pl{}x{lab}", std::process::id());
        let wan = format!("{prefix}w");
        run(&["ip", "netns", "add", &wan]);
        run(&["ip", "-n", &wan, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", &wan, "link", "set", "br0", "up"]);
        Lab {
            index: lab,
            prefix,
            wan: wan.clone(),
            namespaces: vec![wan],
            root_links: Vec::new(),
            links: 0,
            segments: 0,
            names: String::new(),
            dns: None,
        }
    }

    fn namespace(&mut self, name: &str) -> String {
        let ns = format!("{}{name}", self.prefix);
        run(&["ip", "netns", "add", &ns]);
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        self.namespaces.push(ns.clone());
        self.write_hosts(&ns);
        ns
    }

    /// Gives `ip` the DNS name `name` in every host of the lab, as a network publishes its
    /// bootstrap list: `ip netns exec` shows a namespace `/etc/netns/<ns>/hosts` as
    /// `/etc/hosts`, which the node's resolver reads.
    pub fn name(&mut self, name: &str, ip: &str) {
        self.names.push_str(&format!("{ip} {name}\n"));
        for ns in self.namespaces.clone() {
            self.write_hosts(&ns);
        }
    }

    fn write_hosts(&self, ns: &str) {
        let dir = std::path::Path::new("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("/etc/netns");
        std::fs::write(
            dir.join("hosts"),
            format!("127.0.0.1 localhost\n{}", self.names),
        )
        .expect("the namespace's hosts file");
        if let Some((server, _)) = &self.dns {
            std::fs::write(dir.join("resolv.conf"), format!("nameserver {server}\n"))
                .expect("the namespace's resolv.conf");
        }
    }

    /// Runs the lab's DNS server on `host` (dnsmasq, answering only the TXT records
    /// `records`, `(name, text)`, and nothing else) and makes it every lab host's resolver,
    /// as a network publishes `/dnsaddr` bootstrap names. Queries are logged to `log`.
    pub fn serve_txt(&mut self, host: &Host, records: &[(&str, &str)], log: &std::path::Path) {
        let mut command = host.command("dnsmasq");
        command.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--pid-file=",
            "--log-queries",
        ]);
        command.arg(format!("--listen-address={}", host.ip));
        command.arg(format!("--log-facility={}", log.display()));
        for (name, text) in records {
            command.arg(format!("--txt-record={name},{text}"));
        }
        let dnsmasq = command.spawn().expect("dnsmasq (Debian's dnsmasq-base)");
        self.dns = Some((host.ip.clone(), dnsmasq));
        for ns in self.namespaces.clone() {
            self.write_hosts(&ns);
        }
        // Ready once it answers (dig is not at hand: wait for its log's first line).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_to_string(log).map_or(true, |l| !l.contains("started")) {
            assert!(
                std::time::Instant::now() < deadline,
                "dnsmasq did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Links `ns` to the public segment as `eth0` with `ip`.
    fn join_wan(&mut self, ns: &str, ip: &str) {
        let port = format!("v{}", self.namespaces.len());
        run(&[
            "ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", &port,
            "netns", &self.wan,
        ]);
        run(&["ip", "-n", &self.wan, "link", "set", &port, "master", "br0"]);
        run(&["ip", "-n", &self.wan, "link", "set", &port, "up"]);
        add_address(Some(ns), &format!("{ip}/24"), "eth0");
        run(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }

    /// Gives `ns` a management link to the root namespace; returns its address there.
    fn manage(&mut self, ns: &str) -> String {
        // 10.<200..249>.<pid>.<4k>/30: apart per process and per lab.
        let pid = std::process::id();
        let a = 200 + (pid / 256 + self.index) % 50;
        let b = pid % 256;
        let c = (self.links % 64) * 4;
        self.links += 1;
        let root = format!("pm{pid}x{}m{}", self.index, self.links);
        run(&[
            "ip", "link", "add", &root, "type", "veth", "peer", "name", "mgmt", "netns", ns,
        ]);
        self.root_links.push(root.clone());
        add_address(None, &format!("10.{a}.{b}.{}/30", c + 1), &root);
        run(&["ip", "link", "set", &root, "up"]);
        let ip = format!("10.{a}.{b}.{}", c + 2);
        add_address(Some(ns), &format!("{ip}/30"), "mgmt");
        run(&["ip", "-n", ns, "link", "set", "mgmt", "up"]);
        ip
    }

    /// A host on the public segment at `10.77.0.<octet>` (1–99).
    pub fn public_host(&mut self, name: &str, octet: u8) -> Host {
        let ns = self.namespace(name);
        let ip = format!("10.77.0.{octet}");
        self.join_wan(&ns, &ip);
        let mgmt_ip = self.manage(&ns);
        Host {
            ns,
            ip,
            mgmt_ip,
            public_ip: None,
            router: None,
        }
    }

    /// A host alone on a private segment `192.168.<n>.0/24` behind a NAT router of kind `nat`,
    /// whose public address is `10.77.0.<100 + n>`.
    pub fn private_host(&mut self, name: &str, nat: Nat) -> Host {
        self.segments += 1;
        let n = self.segments;
        let router = self.namespace(&format!("{name}r"));
        let public_ip = format!("10.77.0.{}", 100 + u32::from(n));
        self.join_wan(&router, &public_ip);
        let ns = self.namespace(name);
        run(&[
            "ip", "link", "add", "lan0", "netns", &router, "type", "veth", "peer", "name", "eth0",
            "netns", &ns,
        ]);
        let gateway = format!("192.168.{n}.1");
        let ip = format!("192.168.{n}.2");
        add_address(Some(&router), &format!("{gateway}/24"), "lan0");
        run(&["ip", "-n", &router, "link", "set", "lan0", "up"]);
        add_address(Some(&ns), &format!("{ip}/24"), "eth0");
        run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        run(&["ip", "-n", &ns, "route", "add", "default", "via", &gateway]);
        run(&[
            "ip",
            "netns",
            "exec",
            &router,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let masquerade = match nat {
            Nat::EndpointIndependent => "masquerade",
            Nat::Symmetric => "meta l4proto { tcp, udp } masquerade to :1024-65535 fully-random",
        };
        // Out: the private host's flows leave with the router's address. In: only replies to
        // flows the host opened are forwarded; anything else is dropped unanswered, as home
        // routers do. (Accepted and answered by the router, an unsolicited packet would leave
        // a conntrack entry that makes the router map the host's own later flow to that peer
        // to another port: a hole punch whose first packet lands early would then fail.)
        let rules = format!(
            "table ip nat {{\n chain postrouting {{\n  type nat hook postrouting priority 100;\n  \
             oifname \"eth0\" {masquerade}\n }}\n}}\n\
             table ip filter {{\n chain forward {{\n  \
             type filter hook forward priority 0; policy drop;\n  \
             ct state established,related accept\n  iifname \"lan0\" accept\n }}\n \
             chain input {{\n  type filter hook input priority 0; policy drop;\n  \
             ct state established,related accept\n  iifname {{ \"lo\", \"lan0\" }} accept\n }}\n}}\n"
        );
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &router, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        use std::io::Write;
        nft.stdin
            .take()
            .expect("stdin")
            .write_all(rules.as_bytes())
            .expect("nft rules");
        assert!(nft.wait().expect("nft").success(), "nft rules:\n{rules}");
        let mgmt_ip = self.manage(&ns);
        Host {
            ns,
            ip,
            mgmt_ip,
            public_ip: Some(public_ip),
            router: Some(router),
        }
    }

    /// Two hosts named `names`, at `10.78.1.2` and `10.78.2.2`, joined through a router whose
    /// every forwarded packet waits `delay` in a [`crate::delay_line::DelayLine`] (this kernel
    /// has no netem): `delay` each way, twice that per round trip. The line runs while the
    /// returned value lives.
    pub fn delayed_pair(
        &mut self,
        names: [&str; 2],
        delay: std::time::Duration,
    ) -> (Host, Host, crate::delay_line::DelayLine) {
        let router = self.namespace("dly");
        for setting in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            run(&["ip", "netns", "exec", &router, "sysctl", "-qw", setting]);
        }
        let mut hosts = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ns = self.namespace(name);
            let side = format!("e{i}");
            run(&[
                "ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &side,
                "netns", &router,
            ]);
            let (ip, gateway) = (format!("10.78.{}.2", i + 1), format!("10.78.{}.1", i + 1));
            add_address(Some(&router), &format!("{gateway}/24"), &side);
            run(&["ip", "-n", &router, "link", "set", &side, "up"]);
            add_address(Some(&ns), &format!("{ip}/24"), "eth0");
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &ns, "route", "add", "default", "via", &gateway]);
            // What arrives from either host goes into the delay line first.
            run(&[
                "ip", "-n", &router, "rule", "add", "iif", &side, "lookup", "100",
            ]);
            let mgmt_ip = self.manage(&ns);
            hosts.push(Host {
                ns,
                ip,
                mgmt_ip,
                public_ip: None,
                router: None,
            });
        }
        let line = crate::delay_line::DelayLine::start(&router, "dly0", delay);
        run(&[
            "ip",
            "netns",
            "exec",
            &router,
            "sysctl",
            "-qw",
            "net.ipv4.conf.dly0.rp_filter=0",
        ]);
        run(&["ip", "-n", &router, "link", "set", "dly0", "up"]);
        run(&[
            "ip", "-n", &router, "route", "add", "default", "dev", "dly0", "table", "100",
        ]);
        let second = hosts.pop().expect("two hosts");
        let first = hosts.pop().expect("two hosts");
        (first, second, line)
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some((_, mut dnsmasq)) = self.dns.take() {
            let _ = dnsmasq.kill();
            let _ = dnsmasq.wait();
        }
        // Deleting a namespace deletes its veths and, with them, their peers in the root
        // namespace; the root ends are deleted too in case a namespace's processes linger.
        for link in &self.root_links {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(ns));
        }
    }
}
