//! The npm pull-through mirror: packuments from the upstream registry (`--npm-upstream`),
//! kept in the store for when the upstream is down or the node is offline, and tarballs
//! downloaded once, checked against the `dist.integrity` the packument gives (sha512), and
//! stored under their sha256. Packument and integrity handling is
//! `pyrsia_core::package::npm_registry`; this module does the IO.

mod from_log;
mod tarball;

pub use from_log::{CommittedPackages, CommittedVersions, LOG_VERSIONS_MAX};
use tarball::tarball_key;

use std::sync::{Arc, OnceLock};

use pyrsia_core::digest::Digest;

use pyrsia_core::package::NpmName;
use pyrsia_core::package::npm_registry::{Packument, PackumentFormat};

use crate::mirror::Mirror;
use crate::packages::PackageError;
use crate::packages::{Downloads, get, keep_document, kept_document};
use crate::ttl_cache::{DOCUMENTS_HELD, TtlCache};

/// The public registry, the default `--npm-upstream`.
pub const NPM_REGISTRY_URL: &str = "https://registry.npmjs.org/";
/// The largest packument read from the upstream.
pub const MAX_PACKUMENT_LEN: u64 = 128 << 20;

/// A packument and whether it is the last one seen rather than a fresh one.
pub struct Document {
    /// The packument as the upstream sent it, shared with the node's `--index-ttl` memory
    /// (a hit costs no copy of what may be megabytes of JSON).
    pub packument: Arc<Packument>,
    /// True when the upstream could not be asked (down, or `--offline`).
    pub stale: bool,
    /// True when it was fetched from the upstream for this request (not answered from the
    /// `--index-ttl` memory or the store): when its tags are worth reporting.
    pub fetched: bool,
}

/// The npm mirror.
pub struct Npm {
    mirror: Arc<Mirror>,
    /// The upstream registry URL, ending in `/`.
    upstream: String,
    agent: ureq::Agent,
    /// One download per tarball at a time, by integrity.
    downloads: Downloads,
    /// Packuments fetched within the last `ttl`, by package and form.
    documents: TtlCache<Packument>,
    /// The sha256 the log committed for a version's tarball, by name and version: what peers
    /// are asked for (a packument gives only the sha512 integrity).
    committed: OnceLock<CommittedTarball>,
    /// The log's committed versions and observed dist-tags: a packument made from them when
    /// the upstream cannot be asked and none is stored.
    log: OnceLock<CommittedPackages>,
    /// Packuments made from the log, while it says the same.
    made_from_log: from_log::MadeFromLog,
}

/// Looks up the committed sha256 of `name@version`'s tarball.
pub type CommittedTarball = Arc<dyn Fn(&str, &str) -> Option<Digest> + Send + Sync>;

impl Npm {
    /// A mirror of the registry at `upstream` (`https://registry.npmjs.org/`, a verdaccio),
    /// storing into `mirror`'s store; a packument fetched is answered from memory for `ttl`.
    pub fn new(mirror: Arc<Mirror>, upstream: &str, ttl: std::time::Duration) -> Npm {
        let agent = crate::upstream::agent(mirror.config().timeouts);
        Npm {
            mirror,
            upstream: format!("{}/", upstream.trim_end_matches('/')),
            agent,
            downloads: Downloads::default(),
            documents: TtlCache::new(ttl, DOCUMENTS_HELD),
            committed: OnceLock::new(),
            log: OnceLock::new(),
            made_from_log: from_log::MadeFromLog::default(),
        }
    }

    /// Lets tarballs of committed versions come from peers: `committed` gives the sha256 the
    /// log committed for a version's tarball (set once, by the node that holds the log).
    pub fn set_committed_tarballs(&self, committed: CommittedTarball) {
        let _ = self.committed.set(committed);
    }

    /// The upstream registry URL.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The packument of `name` in `format`: fetched from the upstream (or within the last
    /// `ttl`), else the last one stored (in either form) when the upstream is down or the
    /// node is offline, else one made from the log (its committed versions, stale too).
    pub fn packument(
        &self,
        name: &NpmName<'_>,
        format: PackumentFormat,
    ) -> Result<Document, PackageError> {
        let stale = |why: String| match self
            .stored(name, format)
            .map(Arc::new)
            .or_else(|| self.packument_from_log(name))
        {
            Some(packument) => Ok(Document {
                packument,
                stale: true,
                fetched: false,
            }),
            None => Err(PackageError::Unavailable(why)),
        };
        if self.mirror.config().offline {
            return stale(format!("{name} is not cached (offline)"))
                .map_err(|_| PackageError::NotFound(format!("{name} (offline, not cached)")));
        }
        let key = packument_key(name, format);
        if let Some(packument) = self.documents.fresh(&key) {
            return Ok(Document {
                packument,
                stale: false,
                fetched: false,
            });
        }
        match self.fetch(name, format) {
            Ok((packument, bytes)) => {
                self.mirror.metrics().upstream_up.set(1);
                let packument = Arc::new(packument);
                self.documents.insert(key, packument.clone());
                if let Err(e) = self.store(name, format, &bytes) {
                    tracing::warn!(%name, error = %e, "could not store the packument");
                }
                Ok(Document {
                    packument,
                    stale: false,
                    fetched: true,
                })
            }
            Err(PackageError::Unavailable(why)) => {
                self.mirror.metrics().upstream_up.set(0);
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
    ) -> Result<(Packument, Vec<u8>), PackageError> {
        let url = format!("{}{}", self.upstream, name.path_form());
        let _slot = self
            .mirror
            .download_slot()
            .map_err(|_| PackageError::Busy)?;
        let fetched = get(
            &self.agent,
            self.mirror.metrics(),
            &url,
            Some(format.media_type()),
            &format!("package {name}"),
        )?;
        let bytes = fetched.read_all(&url, MAX_PACKUMENT_LEN)?;
        let packument = Packument::parse(&bytes)
            .map_err(|e| PackageError::BadUpstream(format!("{url}: {e}")))?;
        Ok((packument, bytes))
    }

    fn store(
        &self,
        name: &NpmName<'_>,
        format: PackumentFormat,
        bytes: &[u8],
    ) -> Result<(), String> {
        keep_document(self.mirror.store(), &packument_key(name, format), bytes)
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
            let bytes = kept_document(
                self.mirror.store(),
                &packument_key(name, form),
                MAX_PACKUMENT_LEN,
            )?;
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
