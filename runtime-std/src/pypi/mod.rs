//! The PyPI pull-through mirror: project pages from the upstream index (`--pypi-upstream`),
//! kept in the store for when the upstream is down or the node is offline, and distribution
//! files downloaded once, checked against the sha256 the index gives, and stored under it.
//! The page parsing and writing is `pyrsia_core::package::simple`; this module does the IO.

mod files;

pub use files::Resource;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyrsia_core::digest::Digest;
use pyrsia_core::package::ProjectName;
use pyrsia_core::package::simple::{IndexFormat, ProjectIndex, UPSTREAM_ACCEPT};

use crate::mirror::Mirror;
use crate::store::{BlobKind, TagObservation, now_ms};
use crate::ttl_cache::{DOCUMENTS_HELD, TtlCache};

/// The public index, the default `--pypi-upstream`.
pub const PYPI_SIMPLE_URL: &str = "https://pypi.org/simple/";
/// The largest project page read from the upstream.
pub const MAX_PAGE_LEN: u64 = 64 << 20;

/// Why a PyPI request failed; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PypiError {
    /// The upstream does not know the project or file (404).
    NotFound(String),
    /// The upstream cannot be reached and nothing is cached (503).
    Unavailable(String),
    /// The upstream answered something unusable: an unreadable page, a file without a
    /// sha256, bytes that do not match it (502).
    BadUpstream(String),
    /// Too many requests wait on downloads (429).
    Busy,
    /// The node's store failed (500).
    Store(String),
}

impl PypiError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            PypiError::NotFound(_) => 404,
            PypiError::Unavailable(_) => 503,
            PypiError::BadUpstream(_) => 502,
            PypiError::Busy => 429,
            PypiError::Store(_) => 500,
        }
    }
}

impl std::fmt::Display for PypiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PypiError::NotFound(what) => write!(f, "{what} not found"),
            PypiError::Unavailable(why) => write!(f, "the upstream index is unavailable: {why}"),
            PypiError::BadUpstream(why) => write!(f, "the upstream index misbehaved: {why}"),
            PypiError::Busy => f.write_str("too many downloads in progress; retry"),
            PypiError::Store(why) => write!(f, "store failure: {why}"),
        }
    }
}

impl std::error::Error for PypiError {}

/// A project page and whether it is the last one seen rather than a fresh one.
pub struct Page {
    /// The page.
    pub index: ProjectIndex,
    /// True when the upstream could not be asked (down, or `--offline`).
    pub stale: bool,
}

/// The PyPI mirror. Share it with an `Arc`.
pub struct Pypi {
    mirror: Arc<Mirror>,
    /// The upstream's simple index URL, ending in `/`.
    upstream: String,
    agent: ureq::Agent,
    /// One download per file at a time: later requests wait for it, then read the store (or
    /// share its failure).
    downloads: Mutex<HashMap<Digest, files::Gate>>,
    /// Pages fetched within the last `ttl`, answered without the upstream.
    pages: TtlCache<ProjectIndex>,
}

impl Pypi {
    /// A mirror of the simple index at `upstream` (`https://pypi.org/simple/`, or a private
    /// index such as devpi's `/root/pypi/+simple/`), storing into `mirror`'s store; a page
    /// fetched is answered from memory for `ttl`.
    pub fn new(mirror: Arc<Mirror>, upstream: &str, ttl: std::time::Duration) -> Pypi {
        let agent = crate::upstream::agent(mirror.config().timeouts);
        Pypi {
            mirror,
            upstream: format!("{}/", upstream.trim_end_matches('/')),
            agent,
            downloads: Mutex::new(HashMap::new()),
            pages: TtlCache::new(ttl, DOCUMENTS_HELD),
        }
    }

    /// The upstream index URL.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Projects whose pages this node holds, normalised and sorted: the offline root page.
    pub fn known_projects(&self) -> Vec<String> {
        let mut projects = self.mirror.store().tag_keys(PAGE_KEY_PREFIX);
        projects.sort();
        projects
    }

    /// The page of `project` (normalised name): fetched from the upstream (or within the last
    /// `ttl`), else the last one stored when the upstream is down or the node is
    /// offline.
    pub fn project(&self, project: &ProjectName<'_>) -> Result<Page, PypiError> {
        let normal = project.normalized().to_string();
        if self.mirror.config().offline {
            return self.stored_page(&normal).map_or_else(
                || Err(PypiError::NotFound(format!("project {normal} (offline)"))),
                |index| Ok(Page { index, stale: true }),
            );
        }
        if let Some(index) = self.pages.fresh(&normal) {
            return Ok(Page {
                index: (*index).clone(),
                stale: false,
            });
        }
        match self.fetch_page(&normal) {
            Ok(index) => {
                self.mirror.metrics().upstream_up.set(1);
                self.pages.insert(normal.clone(), Arc::new(index.clone()));
                if let Err(e) = self.store_page(&normal, &index) {
                    tracing::warn!(project = %normal, error = %e, "could not store the project page");
                }
                Ok(Page {
                    index,
                    stale: false,
                })
            }
            Err(PypiError::Unavailable(why)) => {
                self.mirror.metrics().upstream_up.set(0);
                self.mirror.metrics().upstream_errors.inc();
                match self.stored_page(&normal) {
                    Some(index) => {
                        tracing::info!(project = %normal, %why, "upstream index down; serving the last page seen");
                        Ok(Page { index, stale: true })
                    }
                    None => Err(PypiError::Unavailable(why)),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn fetch_page(&self, normal: &str) -> Result<ProjectIndex, PypiError> {
        let url = format!("{}{normal}/", self.upstream);
        let _slot = self.mirror.download_slot().map_err(|_| PypiError::Busy)?;
        let mut response = self
            .agent
            .get(&url)
            .header("Accept", UPSTREAM_ACCEPT)
            .call()
            .map_err(|e| PypiError::Unavailable(e.to_string()))?;
        match response.status().as_u16() {
            200 => {}
            404 | 410 => return Err(PypiError::NotFound(format!("project {normal}"))),
            status => {
                return Err(PypiError::Unavailable(format!("{url} answered {status}")));
            }
        }
        let format = IndexFormat::of_content_type(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
        );
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_PAGE_LEN)
            .read_to_vec()
            .map_err(|e| PypiError::Unavailable(format!("reading {url}: {e}")))?;
        ProjectIndex::parse(format, &body, &url, normal)
            .map_err(|e| PypiError::BadUpstream(format!("{url}: {e}")))
    }

    fn store_page(&self, normal: &str, index: &ProjectIndex) -> Result<(), String> {
        let bytes = index.to_stored();
        let digest = Digest::sha256(&bytes);
        let store = self.mirror.store();
        if store.record(&digest).is_none() {
            store
                .put_bytes(digest, &bytes, BlobKind::Blob)
                .map_err(|e| e.to_string())?;
        }
        store
            .record_tag(
                &page_key(normal),
                TagObservation {
                    digest,
                    observed_ms: now_ms(),
                },
            )
            .map_err(|e| e.to_string())
    }

    fn stored_page(&self, normal: &str) -> Option<ProjectIndex> {
        let store = self.mirror.store();
        let observation = store.tag(&page_key(normal))?;
        let blob = store.open_blob(&observation.digest)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(&blob.file, MAX_PAGE_LEN),
            &mut bytes,
        )
        .ok()?;
        ProjectIndex::from_stored(&bytes).ok()
    }
}

/// Where a project's last page is recorded in the store's tag table.
const PAGE_KEY_PREFIX: &str = "pypi/";

fn page_key(normal: &str) -> String {
    format!("{PAGE_KEY_PREFIX}{normal}")
}
