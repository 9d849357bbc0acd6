//! The npm pull-through mirror: packuments from the upstream registry (`--npm-upstream`),
//! kept in the store for when the upstream is down or the node is offline, and tarballs
//! downloaded once, checked against the `dist.integrity` the packument gives (sha512), and
//! stored under their sha256. Packument and integrity handling is
//! `pyrsia_core::package::npm_registry`; this module does the IO.

mod tarball;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyrsia_core::digest::Digest;
use pyrsia_core::package::NpmName;
use pyrsia_core::package::npm_registry::{Packument, PackumentFormat};

use crate::mirror::Mirror;
use crate::store::{BlobKind, TagObservation, now_ms};
use crate::ttl_cache::{DOCUMENTS_HELD, TtlCache};

/// The public registry, the default `--npm-upstream`.
pub const NPM_REGISTRY_URL: &str = "https://registry.npmjs.org/";
/// The largest packument read from the upstream.
pub const MAX_PACKUMENT_LEN: u64 = 128 << 20;

/// Why an npm request failed; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NpmError {
    /// The upstream does not know the package or tarball (404).
    NotFound(String),
    /// The upstream cannot be reached and nothing is cached (503).
    Unavailable(String),
    /// The upstream answered something unusable: not a packument, a tarball without
    /// integrity, bytes that fail it (502).
    BadUpstream(String),
    /// Too many requests wait on downloads (429).
    Busy,
    /// The node's store failed (500).
    Store(String),
}

impl NpmError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            NpmError::NotFound(_) => 404,
            NpmError::Unavailable(_) => 503,
            NpmError::BadUpstream(_) => 502,
            NpmError::Busy => 429,
            NpmError::Store(_) => 500,
        }
    }
}

impl std::fmt::Display for NpmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NpmError::NotFound(what) => write!(f, "{what} not found"),
            NpmError::Unavailable(why) => write!(f, "the upstream registry is unavailable: {why}"),
            NpmError::BadUpstream(why) => write!(f, "the upstream registry misbehaved: {why}"),
            NpmError::Busy => f.write_str("too many downloads in progress; retry"),
            NpmError::Store(why) => write!(f, "store failure: {why}"),
        }
    }
}

impl std::error::Error for NpmError {}

/// A packument and whether it is the last one seen rather than a fresh one.
pub struct Document {
    /// The packument as the upstream sent it.
    pub packument: Packument,
    /// True when the upstream could not be asked (down, or `--offline`).
    pub stale: bool,
}

/// The npm mirror.
pub struct Npm {
    mirror: Arc<Mirror>,
    /// The upstream registry URL, ending in `/`.
    upstream: String,
    agent: ureq::Agent,
    /// One download per tarball at a time, by integrity.
    downloads: Mutex<HashMap<String, tarball::Gate>>,
    /// Packuments fetched within the last `ttl`, by package and form.
    documents: TtlCache<Packument>,
}

impl Npm {
    /// A mirror of the registry at `upstream` (`https://registry.npmjs.org/`, a verdaccio),
    /// storing into `mirror`'s store; a packument fetched is answered from memory for `ttl`.
    pub fn new(mirror: Arc<Mirror>, upstream: &str, ttl: std::time::Duration) -> Npm {
        let agent = crate::upstream::agent(mirror.config().timeouts);
        Npm {
            mirror,
            upstream: format!("{}/", upstream.trim_end_matches('/')),
            agent,
            downloads: Mutex::new(HashMap::new()),
            documents: TtlCache::new(ttl, DOCUMENTS_HELD),
        }
    }

    /// The packument of `name` in `format`: fetched from the upstream (or within the last
    /// `ttl`), else the last one stored (in either form) when the upstream is down
    /// or the node is offline.
    pub fn packument(
        &self,
        name: &NpmName<'_>,
        format: PackumentFormat,
    ) -> Result<Document, NpmError> {
        let stale = |why: String| match self.stored(name, format) {
            Some(packument) => Ok(Document {
                packument,
                stale: true,
            }),
            None => Err(NpmError::Unavailable(why)),
        };
        if self.mirror.config().offline {
            return stale(format!("{name} is not cached (offline)"))
                .map_err(|_| NpmError::NotFound(format!("{name} (offline, not cached)")));
        }
        let key = packument_key(name, format);
        if let Some(packument) = self.documents.fresh(&key) {
            return Ok(Document {
                packument: (*packument).clone(),
                stale: false,
            });
        }
        match self.fetch(name, format) {
            Ok((packument, bytes)) => {
                self.mirror.metrics().upstream_up.set(1);
                self.documents.insert(key, Arc::new(packument.clone()));
                if let Err(e) = self.store(name, format, &bytes) {
                    tracing::warn!(%name, error = %e, "could not store the packument");
                }
                Ok(Document {
                    packument,
                    stale: false,
                })
            }
            Err(NpmError::Unavailable(why)) => {
                self.mirror.metrics().upstream_up.set(0);
                self.mirror.metrics().upstream_errors.inc();
                tracing::info!(%name, %why, "upstream registry down; serving the last packument seen");
                stale(why)
            }
            Err(e) => Err(e),
        }
    }

    fn fetch(
        &self,
        name: &NpmName<'_>,
        format: PackumentFormat,
    ) -> Result<(Packument, Vec<u8>), NpmError> {
        let url = format!("{}{}", self.upstream, name.path_form());
        let _slot = self.mirror.download_slot().map_err(|_| NpmError::Busy)?;
        let mut response = self
            .agent
            .get(&url)
            .header("Accept", format.media_type())
            .call()
            .map_err(|e| NpmError::Unavailable(e.to_string()))?;
        match response.status().as_u16() {
            200 => {}
            404 | 410 => return Err(NpmError::NotFound(format!("package {name}"))),
            status => {
                return Err(NpmError::Unavailable(format!("{url} answered {status}")));
            }
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_PACKUMENT_LEN)
            .read_to_vec()
            .map_err(|e| NpmError::Unavailable(format!("reading {url}: {e}")))?;
        let packument =
            Packument::parse(&bytes).map_err(|e| NpmError::BadUpstream(format!("{url}: {e}")))?;
        Ok((packument, bytes))
    }

    fn store(
        &self,
        name: &NpmName<'_>,
        format: PackumentFormat,
        bytes: &[u8],
    ) -> Result<(), String> {
        let digest = Digest::sha256(bytes);
        let store = self.mirror.store();
        if store.record(&digest).is_none() {
            store
                .put_bytes(digest, bytes, BlobKind::Blob)
                .map_err(|e| e.to_string())?;
        }
        store
            .record_tag(
                &packument_key(name, format),
                TagObservation {
                    digest,
                    observed_ms: now_ms(),
                },
            )
            .map_err(|e| e.to_string())
    }

    /// A packument of `name` fetched within the last `ttl`, in either form.
    fn recent(&self, name: &NpmName<'_>) -> Option<Arc<Packument>> {
        [PackumentFormat::Abbreviated, PackumentFormat::Full]
            .into_iter()
            .find_map(|form| self.documents.fresh(&packument_key(name, form)))
    }

    /// The last packument of `name` stored, in `format` or else the other form.
    fn stored(&self, name: &NpmName<'_>, format: PackumentFormat) -> Option<Packument> {
        let other = match format {
            PackumentFormat::Full => PackumentFormat::Abbreviated,
            PackumentFormat::Abbreviated => PackumentFormat::Full,
        };
        [format, other].into_iter().find_map(|form| {
            let store = self.mirror.store();
            let observation = store.tag(&packument_key(name, form))?;
            let blob = store.open_blob(&observation.digest)?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(&blob.file, MAX_PACKUMENT_LEN),
                &mut bytes,
            )
            .ok()?;
            Packument::parse(&bytes).ok()
        })
    }
}

/// Where a package's last packument of one form is recorded in the store's tag table.
fn packument_key(name: &NpmName<'_>, format: PackumentFormat) -> String {
    let form = match format {
        PackumentFormat::Full => "full",
        PackumentFormat::Abbreviated => "abbreviated",
    };
    format!("npm/{name}/{form}")
}
