//! Issue 14, item 3: attackers on the HTTP port and a tarpit upstream cannot take what the node
//! answers by itself. A TLS ClientHello on the plain port is answered at once (as Go's server
//! does), so clients probing for HTTPS fall back without waiting. 2,000 slowloris sockets, a
//! 100 MB header line and 128 requests stuck on an upstream that accepts and never answers:
//! `/healthz` and a cached blob still answer within a second, the requests beyond the download
//! budget are refused at once (429), the header line is refused (431) instead of buffered, and
//! memory stays bounded. A thousand clients connecting at once are all answered: the mirror
//! port's listen backlog holds them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pyrsia_core::digest::Digest;
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::http::get;
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::registry::Registry;
use pyrsia_tests::tarpit::Tarpit;

const SLOWLORIS: usize = 2000;
const STUCK: usize = 128;
/// The node's default HTTP workers (128) keep an eighth free of downloads.
const DOWNLOAD_WAITERS: usize = 112;

/// One attack at a time: each test times what one node answers under its own attack, and two
/// at once on two cores would time each other.
static ONE_ATTACK_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn slowloris_huge_headers_and_a_tarpit_upstream_leave_health_and_cache_answering() {
    let _alone = ONE_ATTACK_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let small = images
        .iter()
        .find(|i| i.reference == "library/small:small")
        .expect("the small image");
    let layer = small.layers[0].blob.digest;
    let tarpit = Tarpit::start();
    let slow = format!("slow.example={}", tarpit.url());
    let node = Node::start(
        &work.path().join("node"),
        &["--upstream", &registry.url(), "--upstream", &slow],
    );
    let out = skopeo_copy(
        &node.authority(),
        &small.reference,
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "the pull that caches the layer", &node.log());
    let rss_before = rss_kib(node.pid());

    // A TLS ClientHello (as podman and skopeo send first) gets Go's plain-text 400 at once.
    let probe = Instant::now();
    let mut tls = TcpStream::connect(node.authority()).unwrap();
    tls.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tls.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    let probe_took = probe.elapsed();
    assert!(
        answer.starts_with("HTTP/1.0 400 Bad Request"),
        "answer to a ClientHello: {answer:?}"
    );
    assert!(answer.contains("Client sent an HTTP request to an HTTPS server."));
    assert!(
        probe_took < Duration::from_millis(50),
        "the probe took {probe_took:?}"
    );

    // 2,000 sockets that start a request and never finish it.
    let slowloris: Vec<TcpStream> = (0..SLOWLORIS)
        .filter_map(|_| {
            let mut s = TcpStream::connect(node.authority()).ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .ok()?;
            Some(s)
        })
        .collect();
    assert_eq!(
        slowloris.len(),
        SLOWLORIS,
        "every slowloris socket connected"
    );

    // One header line of 100 MB, sent as fast as the node takes it: refused with 431.
    let authority = node.authority();
    let huge = std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect(authority) else {
            return (0u64, String::new());
        };
        let _ = s.set_write_timeout(Some(Duration::from_secs(20)));
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nX-Huge: ");
        let chunk = vec![b'a'; 1 << 20];
        let mut sent = 0u64;
        for _ in 0..100 {
            if s.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        let mut answer = [0u8; 12];
        let got = s.read(&mut answer).unwrap_or(0);
        (sent, String::from_utf8_lossy(&answer[..got]).into_owned())
    });

    // 128 requests for blobs of a host whose upstream never answers.
    let (done, finished) = mpsc::channel();
    for i in 0..STUCK {
        let url = format!(
            "{}/v2/library/stuck/blobs/{}?ns=slow.example",
            node.url(),
            Digest::sha256(format!("stuck {i}").as_bytes())
        );
        let done = done.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let status = get(&url).map(|f| f.status).unwrap_or(0);
            let _ = done.send((status, started.elapsed()));
        });
    }
    wait_until(
        "the download budget's requests reach the tarpit",
        Duration::from_secs(10),
        &|| node.log(),
        || tarpit.connections() >= DOWNLOAD_WAITERS,
    );
    std::thread::sleep(Duration::from_millis(300));

    // What the node answers by itself still comes within a second.
    let asked = Instant::now();
    let health = get(&format!("{}/healthz", node.url())).expect("GET /healthz");
    let health_took = asked.elapsed();
    assert_eq!(health.status, 200);
    assert!(
        health_took < Duration::from_secs(1),
        "/healthz took {health_took:?}"
    );
    let asked = Instant::now();
    let cached = get(&format!("{}/v2/library/small/blobs/{layer}", node.url())).expect("GET blob");
    let cached_took = asked.elapsed();
    assert_eq!(cached.status, 200);
    assert_eq!(cached.body_digest, layer);
    assert!(
        cached_took < Duration::from_secs(1),
        "the cached blob took {cached_took:?}"
    );

    // The requests beyond the download budget were refused, not queued behind the stuck
    // ones: all 16 answered 429 long before the first stuck download could give up (3
    // attempts of the node's 5 s read timeout).
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused < STUCK - DOWNLOAD_WAITERS {
        let left = deadline.saturating_duration_since(Instant::now());
        match finished.recv_timeout(left) {
            Ok((429, _)) => refused += 1,
            Ok((status, took)) => panic!("a stuck request ended first: {status} after {took:?}"),
            Err(_) => panic!(
                "only {refused} requests were refused at once\n{}",
                node.log()
            ),
        }
    }
    assert_eq!(
        tarpit.connections(),
        DOWNLOAD_WAITERS,
        "no more downloads than the budget"
    );

    // The header line was refused early (the answer may be lost to the reset the unread
    // bytes cause), and nothing of it kept.
    let (sent, answer) = huge.join().unwrap();
    assert!(
        sent < 100 << 20,
        "the node read all of a 100 MB header line"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer:?}"
    );
    let rss_after = rss_kib(node.pid());
    eprintln!("RSS {rss_before} KiB before the attack, {rss_after} KiB during it");
    assert!(
        rss_after < 160 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let health = get(&format!("{}/healthz", node.url())).expect("GET /healthz");
    assert_eq!(health.status, 200, "still answering");
    drop(slowloris);
}

/// Clients connecting at once, more than the standard library's listen backlog (128) holds:
/// the mirror port keeps a backlog of `LISTEN_BACKLOG` (4,096, or the kernel's cap), so each
/// handshake completes at once and each client is answered, where beyond a backlog of 128
/// the kernel drops handshakes and a client waits a second or more for a retransmission.
#[test]
fn a_thousand_clients_connecting_at_once_are_all_answered_without_a_retransmission() {
    const CLIENTS: usize = 1000;
    const THREADS: usize = 10;
    let _alone = ONE_ATTACK_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let work = tempfile::tempdir().unwrap();
    let node = Node::start(&work.path().join("node"), &["--offline"]);

    // The listening socket's backlog, as the kernel reports it (`ss`: Send-Q of a listener).
    let port = node.authority().rsplit(':').next().unwrap().to_string();
    let ss = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2)");
    let listing = String::from_utf8_lossy(&ss.stdout).into_owned();
    let backlog: u64 = listing
        .split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listener on port {port} in ss's output: {listing:?}"));
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        backlog,
        somaxconn.min(pyrsia_http::server::LISTEN_BACKLOG as u64),
        "the mirror port's listen backlog"
    );

    // A thousand connections opened as fast as ten threads can, then a request on each.
    let start = std::sync::Barrier::new(THREADS);
    let slowest = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (authority, start) = (node.authority(), &start);
                scope.spawn(move || {
                    start.wait();
                    let mut slowest = Duration::ZERO;
                    let streams: Vec<TcpStream> = (0..CLIENTS / THREADS)
                        .map(|_| {
                            let asked = Instant::now();
                            let stream = TcpStream::connect(&authority).expect("connect");
                            slowest = slowest.max(asked.elapsed());
                            stream
                        })
                        .collect();
                    for mut stream in streams {
                        stream
                            .set_read_timeout(Some(Duration::from_secs(10)))
                            .unwrap();
                        stream
                            .write_all(
                                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            )
                            .unwrap();
                        let mut answer = String::new();
                        let _ = stream.read_to_string(&mut answer);
                        assert!(
                            answer.starts_with("HTTP/1.1 200"),
                            "a client was answered {answer:?} (with a backlog of 128, some \
                             connections of such a burst are dropped and answered nothing)"
                        );
                    }
                    slowest
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .max()
            .unwrap()
    });
    assert!(
        slowest < Duration::from_millis(900),
        "a connection waited {slowest:?}: a handshake was dropped and retransmitted"
    );
}
