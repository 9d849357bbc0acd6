//! A small HTTP proxy in front of the upstream registry that can corrupt or cut blob
//! transfers, to test what the node does with a bad upstream.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_http::{Header, Response, Server, StatusCode};

/// What the proxy does to blob downloads (`GET …/blobs/…` answered 200 or 206).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Pass everything through unchanged.
    None,
    /// Flip the bits of the byte at this offset.
    FlipByte(u64),
    /// Send this many bytes, then close the connection.
    CutAfter(u64),
    /// Replace manifest bodies with malformed JSON; drop `Docker-Content-Digest` unless
    /// `keep_digest` (then the body no longer matches the digest the registry announces).
    GarbleManifests {
        /// Keep the registry's digest header.
        keep_digest: bool,
    },
    /// Hold each blob download this long before answering (a slow upstream), counting how
    /// many are held at once ([`FaultProxy::most_held_at_once`]).
    HoldBlobs(Duration),
    /// Every blob download shares one link of this many bytes per second (a WAN uplink in
    /// front of the registry).
    Throttle(u64),
}

/// What [`Fault::GarbleManifests`] serves instead of a manifest.
pub const GARBLED_MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":"nope"}"#;

/// Requests the proxy serves at once: more than the most nodes a test or benchmark starts
/// (32 fetching at once through one throttled link; a request beyond waits for a worker,
/// and the node's 5 s wait for the response headers would fail it).
const WORKERS: usize = 64;

/// The proxy, listening on 127.0.0.1.
pub struct FaultProxy {
    server: Arc<Server>,
    fault: Arc<Mutex<Fault>>,
    held: Arc<Held>,
    sent: Sent,
    workers: Vec<JoinHandle<()>>,
    /// Its port.
    pub port: u16,
}

impl FaultProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("proxy listen"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let held = Arc::new(Held::default());
        let link: Link = Arc::new(Mutex::new(std::time::Instant::now()));
        let sent = Sent::default();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            // No bound on a whole response: behind a throttled link shared by many
            // downloads, one blob may take minutes; a stalled upstream still ends by this.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let workers = (0..WORKERS)
            .map(|_| {
                let (server, fault, agent, upstream, held, link, sent) = (
                    server.clone(),
                    fault.clone(),
                    agent.clone(),
                    upstream.to_string(),
                    held.clone(),
                    link.clone(),
                    sent.clone(),
                );
                std::thread::spawn(move || {
                    while let Ok(request) = server.recv() {
                        // Copied out: the lock must not be held while the request waits.
                        let current = *fault.lock().expect("fault lock");
                        if let Fault::HoldBlobs(hold) = current
                            && request.url().contains("/blobs/sha256:")
                            && request.method().as_str() == "GET"
                        {
                            held.hold(hold);
                        }
                        forward(&agent, &upstream, &fault, &link, &sent, request);
                    }
                })
            })
            .collect();
        FaultProxy {
            server,
            fault,
            held,
            sent,
            workers,
            port,
        }
    }

    /// How many body bytes of blob `digest` (`sha256:…`) the proxy has passed to its clients,
    /// over every download of it (whole or ranged).
    pub fn blob_bytes_sent(&self, digest: &str) -> u64 {
        self.sent
            .lock()
            .expect("sent lock")
            .get(digest)
            .copied()
            .unwrap_or(0)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The most blob downloads [`Fault::HoldBlobs`] held at once so far.
    pub fn most_held_at_once(&self) -> usize {
        self.held.most.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Changes what happens to the next blob downloads.
    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().expect("fault lock") = fault;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Blob downloads held now, and the most held at once.
#[derive(Default)]
struct Held {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl Held {
    fn hold(&self, hold: Duration) {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        std::thread::sleep(hold);
        self.now.fetch_sub(1, SeqCst);
    }
}

/// How far behind the clock the shared link of [`Fault::Throttle`] may fall and catch up (a
/// burst of `rate` × this at most): the lateness of the throttle's sleeps is not lost.
const LINK_BURST: Duration = Duration::from_millis(20);

/// When the shared link of [`Fault::Throttle`] is next free.
type Link = Arc<Mutex<std::time::Instant>>;

/// Body bytes passed on, by blob digest.
type Sent = Arc<Mutex<std::collections::HashMap<String, u64>>>;

fn forward(
    agent: &ureq::Agent,
    upstream: &str,
    fault: &Mutex<Fault>,
    link: &Link,
    sent: &Sent,
    request: tiny_http::Request,
) {
    let url = format!("{upstream}{}", request.url());
    let is_blob = request.url().contains("/blobs/sha256:");
    let blob_digest = request
        .url()
        .rsplit_once("/blobs/")
        .map(|(_, digest)| digest.split('?').next().unwrap_or(digest).to_string());
    let is_manifest = request.url().contains("/manifests/");
    let garble = match *fault.lock().expect("fault lock") {
        Fault::GarbleManifests { keep_digest } if is_manifest => Some(keep_digest),
        _ => None,
    };
    let method = request.method().as_str().to_string();
    let mut builder = ureq::http::Request::builder()
        .method(method.as_str())
        .uri(&url);
    for h in request.headers() {
        let name = h.field.as_str().as_str();
        if ["accept", "authorization", "range"].contains(&name.to_ascii_lowercase().as_str()) {
            builder = builder.header(name, h.value.as_str());
        }
    }
    let Ok(upstream_request) = builder.body(()) else {
        return;
    };
    let response = match agent.run(upstream_request) {
        Ok(r) => r,
        Err(_) => {
            let _ = request.respond(Response::empty(StatusCode(502)));
            return;
        }
    };
    let status = response.status().as_u16();
    let mut headers = Vec::new();
    for name in [
        "content-type",
        "docker-content-digest",
        "www-authenticate",
        "location",
        "content-range",
        "docker-distribution-api-version",
    ] {
        let drop_digest = name == "docker-content-digest" && garble == Some(false);
        if let Some(value) = response
            .headers()
            .get(name)
            .filter(|_| !drop_digest)
            .and_then(|v| v.to_str().ok())
            && let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes())
        {
            headers.push(h);
        }
    }
    let mut len: Option<usize> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut body: Box<dyn Read + Send> = Box::new(
        response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader(),
    );
    if garble.is_some() && status == 200 {
        len = Some(GARBLED_MANIFEST.len());
        body = Box::new(GARBLED_MANIFEST);
    }
    let active = if is_blob && method == "GET" && (status == 200 || status == 206) {
        *fault.lock().expect("fault lock")
    } else {
        Fault::None
    };
    let peer = request.remote_addr().copied();
    let counted = (is_blob && method == "GET")
        .then_some(blob_digest)
        .flatten()
        .map(|digest| (sent.clone(), digest));
    let reader = Faulty {
        inner: body,
        fault: active,
        position: 0,
        link: link.clone(),
        counted,
    };
    let response = Response::new(StatusCode(status), headers, reader, len, None)
        .with_chunked_threshold(usize::MAX);
    if request.respond(response).is_err()
        && let Some(peer) = peer
    {
        pyrsia_http::abort::abort_connection(peer);
    }
}

struct Faulty<R> {
    inner: R,
    fault: Fault,
    position: u64,
    link: Link,
    /// Where the bytes passed on are counted, and under which digest.
    counted: Option<(Sent, String)>,
}

impl<R: Read> Read for Faulty<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = match self.fault {
            Fault::CutAfter(n) if self.position >= n => {
                return Err(io::Error::other("cut by the fault proxy"));
            }
            Fault::CutAfter(n) => buf
                .len()
                .min(usize::try_from(n - self.position).unwrap_or(usize::MAX)),
            Fault::Throttle(_) => buf.len().min(64 << 10),
            _ => buf.len(),
        };
        let n = self.inner.read(&mut buf[..limit])?;
        if let Fault::Throttle(rate) = self.fault {
            // The bytes take their turn on the shared link. A link idle for less than
            // LINK_BURST is taken as still busy: each sleep wakes a little late, and without
            // this a single download lost that time at every read and moved at about half
            // the rate (many downloads at once keep the link's turn ahead, and did not).
            let until = {
                let mut free = self.link.lock().expect("link lock");
                let now = std::time::Instant::now();
                let start = (*free).max(now.checked_sub(LINK_BURST).unwrap_or(now));
                *free = start + Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
                *free
            };
            std::thread::sleep(until.saturating_duration_since(std::time::Instant::now()));
        }
        if let Fault::FlipByte(at) = self.fault
            && at >= self.position
            && at < self.position + n as u64
        {
            buf[(at - self.position) as usize] ^= 0xff;
        }
        self.position += n as u64;
        if let Some((sent, digest)) = &self.counted {
            *sent
                .lock()
                .expect("sent lock")
                .entry(digest.clone())
                .or_default() += n as u64;
        }
        Ok(n)
    }
}

/// A registry under `work` holding a fresh image whose one layer is `size` bytes, behind a
/// proxy that holds blob downloads to `rate` bytes per second (a WAN link in front of the
/// upstream): what swarm tests give their nodes as `--upstream` (the proxy's URL) so that a
/// fetch lasts long enough to watch, with the proxy counting the bytes it passes on.
pub fn throttled_upstream(
    work: &std::path::Path,
    size: u64,
    rate: u64,
) -> (
    crate::registry::Registry,
    crate::image::PushedImage,
    FaultProxy,
) {
    let registry = crate::registry::Registry::start(&work.join("registry"));
    let image = crate::image::push_large_image(work, &registry.authority(), size);
    let proxy = FaultProxy::start(&registry.url());
    proxy.set_fault(Fault::Throttle(rate));
    (registry, image, proxy)
}
