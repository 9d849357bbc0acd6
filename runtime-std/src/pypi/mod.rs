//! The PyPI pull-through mirror: project pages from the upstream index (`--pypi-upstream`),
//! kept in the store for when the upstream is down or the node is offline, and distribution
//! files downloaded once, checked against the sha256 the index gives, and stored under it.
//! The page parsing and writing is `pyrsia_core::package::simple`; this module does the IO.

mod files;

pub use files::Resource;

use std::sync::Arc;

use pyrsia_core::package::ProjectName;
use pyrsia_core::package::simple::{IndexFormat, ProjectIndex, UPSTREAM_ACCEPT};

use crate::mirror::Mirror;
use crate::packages::PackageError;
use crate::packages::{Downloads, get, keep_document, kept_document};
use crate::ttl_cache::{DOCUMENTS_HELD, TtlCache};

/// The public index, the default `--pypi-upstream`.
pub const PYPI_SIMPLE_URL: &str = "https://pypi.org/simple/";
/// The largest project page read from the upstream.
pub const MAX_PAGE_LEN: u64 = 64 << 20;

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
    /// One download per file at a time.
    downloads: Downloads,
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
            downloads: Downloads::default(),
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
    pub fn project(&self, project: &ProjectName<'_>) -> Result<Page, PackageError> {
        let normal = project.normalized().to_string();
        if self.mirror.config().offline {
            return self.stored_page(&normal).map_or_else(
                || {
                    Err(PackageError::NotFound(format!(
                        "project {normal} (offline)"
                    )))
                },
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
            Err(PackageError::Unavailable(why)) => {
                self.mirror.metrics().upstream_up.set(0);
                match self.stored_page(&normal) {
                    Some(index) => {
                        tracing::info!(project = %normal, %why, "upstream index down; serving the last page seen");
                        Ok(Page { index, stale: true })
                    }
                    None => Err(PackageError::Unavailable(why)),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn fetch_page(&self, normal: &str) -> Result<ProjectIndex, PackageError> {
        let url = format!("{}{normal}/", self.upstream);
        let _slot = self
            .mirror
            .download_slot()
            .map_err(|_| PackageError::Busy)?;
        let metrics = self.mirror.metrics();
        let fetched = get(
            &self.agent,
            metrics,
            &url,
            Some(UPSTREAM_ACCEPT),
            &format!("project {normal}"),
        )?;
        let format = IndexFormat::of_content_type(fetched.content_type.as_deref());
        let body = fetched.read_all(&url, MAX_PAGE_LEN)?;
        ProjectIndex::parse(format, &body, &url, normal)
            .map_err(|e| PackageError::BadUpstream(format!("{url}: {e}")))
    }

    fn store_page(&self, normal: &str, index: &ProjectIndex) -> Result<(), String> {
        keep_document(self.mirror.store(), &page_key(normal), &index.to_stored())
    }

    fn stored_page(&self, normal: &str) -> Option<ProjectIndex> {
        let bytes = kept_document(self.mirror.store(), &page_key(normal), MAX_PAGE_LEN)?;
        ProjectIndex::from_stored(&bytes).ok()
    }
}

/// Where a project's last page is recorded in the store's tag table.
const PAGE_KEY_PREFIX: &str = "pypi/";

fn page_key(normal: &str) -> String {
    format!("{PAGE_KEY_PREFIX}{normal}")
}
