//! Manifest requests: by digest from the store or the upstream (checked against the digest);
//! by tag resolved upstream when it answers, else from the node's last observation.

use std::io::Read;

use pyrsia_core::digest::Digest;
use pyrsia_core::manifest::Manifest;
use pyrsia_core::media_type::MediaType;
use pyrsia_core::reference::{Host, Name, Reference, RepositoryPath, Tag};
use pyrsia_core::registry::{Code, OciError};

use super::{Mirror, upstream_error};
use crate::peers::PieceFetcher;
use crate::store::{BlobKind, TagObservation, now_ms, tag_key};
use crate::upstream::UpstreamError;

/// The largest manifest accepted from peers.
const MAX_MANIFEST_LEN: u64 = 4 << 20;

/// A manifest ready to send.
#[derive(Clone, Debug)]
pub struct ManifestReply {
    /// Its digest (`Docker-Content-Digest`).
    pub digest: Digest,
    /// Its media type (`Content-Type`).
    pub media_type: MediaType,
    /// Its exact bytes.
    pub bytes: Vec<u8>,
}

const MANIFEST_UNKNOWN: OciError = OciError::new(Code::ManifestUnknown, "manifest unknown");

impl Mirror {
    /// Answers a manifest request for `name` on registry `host`.
    pub fn manifest(
        &self,
        host: &Host,
        name: Name<'_>,
        reference: Reference<'_>,
    ) -> Result<ManifestReply, OciError> {
        let repository = RepositoryPath::new(host, name).to_string();
        match reference {
            Reference::Digest(digest) => self.manifest_by_digest(host, &repository, digest),
            Reference::Tag(tag) => self.manifest_by_tag(host, &repository, tag),
        }
    }

    /// The manifest `digest` of `name` as the upstream serves it now, never from the cache or
    /// peers: what a `docker-fetch/v1` builder of a multi-member network attests to.
    pub fn manifest_from_upstream(
        &self,
        host: &Host,
        name: Name<'_>,
        digest: Digest,
    ) -> Result<ManifestReply, OciError> {
        if self.config.offline {
            return Err(OciError::new(
                Code::Unavailable,
                "the node is offline: a builder must fetch from the upstream",
            ));
        }
        let repository = RepositoryPath::new(host, name).to_string();
        self.fetch_manifest(host, &repository, &digest.to_string(), Some(digest))
            .map_err(|e| upstream_error(&e, MANIFEST_UNKNOWN))
    }

    /// What `name:tag` resolves to at the upstream now, never from the cache, peers or the
    /// node's last observation: what a member vouches for when another member asks
    /// (PROTOCOL.md §2.1). The manifest is fetched (and checked) when it is not stored yet.
    pub fn tag_from_upstream(
        &self,
        host: &Host,
        name: Name<'_>,
        tag: Tag<'_>,
    ) -> Result<Digest, OciError> {
        if self.config.offline {
            return Err(OciError::new(
                Code::Unavailable,
                "the node is offline: a tag is resolved at the upstream",
            ));
        }
        let repository = RepositoryPath::new(host, name).to_string();
        self.resolve_tag_upstream(host, &repository, tag)
            .map(|reply| reply.digest)
            .map_err(|e| upstream_error(&e, MANIFEST_UNKNOWN))
    }

    fn manifest_by_digest(
        &self,
        host: &Host,
        repository: &str,
        digest: Digest,
    ) -> Result<ManifestReply, OciError> {
        if let Some(reply) = self.cached_manifest(&digest) {
            return Ok(reply);
        }
        if let Some(reply) = self.manifest_from_peers(digest) {
            return Ok(reply);
        }
        if self.config.offline {
            return Err(OciError::new(
                Code::ManifestUnknown,
                "manifest not cached (node is offline)",
            ));
        }
        self.fetch_manifest(host, repository, &digest.to_string(), Some(digest))
            .map_err(|e| upstream_error(&e, MANIFEST_UNKNOWN))
    }

    fn manifest_by_tag(
        &self,
        host: &Host,
        repository: &str,
        tag: Tag<'_>,
    ) -> Result<ManifestReply, OciError> {
        let key = tag_key(host.as_str(), repository, tag.as_str());
        let failure = if self.config.offline {
            None
        } else {
            match self.resolve_tag_upstream(host, repository, tag) {
                Ok(reply) => {
                    self.observe(&key, reply.digest);
                    return Ok(reply);
                }
                Err(UpstreamError::NotFound) => return Err(MANIFEST_UNKNOWN),
                Err(e) => Some(e),
            }
        };
        // Upstream down (or offline): the tag's last observed digest, if its manifest is here;
        // else the latest observation the transparency log committed (verified by its
        // members' quorum), its manifest from here or from peers.
        let cached = self
            .store
            .tag(&key)
            .and_then(|observation| self.cached_manifest(&observation.digest))
            .or_else(|| {
                let resolve = self.tag_resolver.get()?;
                let digest = resolve(&format!("{host}/{repository}"), tag.as_str())?;
                let reply = self
                    .cached_manifest(&digest)
                    .or_else(|| self.manifest_from_peers(digest))?;
                tracing::info!(%key, %digest, "tag resolved from the transparency log's latest observation");
                Some(reply)
            });
        match (cached, failure) {
            (Some(reply), failure) => {
                if let Some(e) = failure {
                    tracing::info!(%key, digest = %reply.digest, error = %e, "upstream failed; serving the last observed digest");
                }
                Ok(reply)
            }
            (None, Some(e)) => Err(upstream_error(&e, MANIFEST_UNKNOWN)),
            (None, None) => Err(OciError::new(
                Code::ManifestUnknown,
                "tag not cached (node is offline)",
            )),
        }
    }

    /// Resolves a tag with a HEAD (which Docker Hub does not count against pull limits), then
    /// serves the digest from the store or fetches it.
    fn resolve_tag_upstream(
        &self,
        host: &Host,
        repository: &str,
        tag: Tag<'_>,
    ) -> Result<ManifestReply, UpstreamError> {
        let upstream = self.upstream(host)?;
        let _slot = self.download_slot()?;
        let head = self.upstream_result(upstream.head_manifest(
            repository,
            tag.as_str(),
            &MediaType::PULLABLE,
        ))?;
        if let Some(digest) = head {
            return match self.cached_manifest(&digest) {
                Some(reply) => Ok(reply),
                None => self.fetch_manifest(host, repository, &digest.to_string(), Some(digest)),
            };
        }
        self.metrics.cache_misses.inc();
        self.fetch_manifest(host, repository, tag.as_str(), None)
    }

    /// Fetches a manifest, checks it against `expected` (or the upstream's
    /// `Docker-Content-Digest`), parses it, and stores it. Nothing is stored on any failure.
    fn fetch_manifest(
        &self,
        host: &Host,
        repository: &str,
        reference: &str,
        expected: Option<Digest>,
    ) -> Result<ManifestReply, UpstreamError> {
        let _slot = self.download_slot()?;
        self.metrics.upstream_fetches.inc();
        let fetched = self.upstream_result(self.upstream(host).and_then(|upstream| {
            upstream.get_manifest(repository, reference, &MediaType::PULLABLE)
        }))?;
        self.metrics
            .upstream_bytes
            .inc_by(fetched.bytes.len() as u64);
        let digest = Digest::sha256(&fetched.bytes);
        if let Some(claimed) = expected.or(fetched.digest_header)
            && claimed != digest
        {
            self.metrics.verification_failures.inc();
            tracing::warn!(%repository, reference, %claimed, actual = %digest, "upstream manifest does not match its digest; discarded");
            return Err(UpstreamError::Protocol(format!(
                "manifest digest mismatch: expected {claimed}, got {digest}"
            )));
        }
        let manifest = Manifest::parse(&fetched.bytes, fetched.content_type.as_deref()).map_err(|e| {
            tracing::warn!(%repository, reference, error = %e, "upstream manifest is malformed; discarded");
            UpstreamError::Protocol(format!("malformed manifest: {e}"))
        })?;
        let media_type = manifest.media_type();
        if let Err(e) = self.store.put_bytes(
            digest,
            &fetched.bytes,
            BlobKind::Manifest(media_type.into()),
        ) {
            tracing::error!(%digest, error = %e, "could not store manifest; serving it uncached");
        }
        self.metrics.activity.fetched(digest, "upstream");
        tracing::info!(%repository, reference, %digest, %media_type, "fetched manifest from upstream");
        Ok(ManifestReply {
            digest,
            media_type,
            bytes: fetched.bytes,
        })
    }

    /// A manifest by digest from the peers that hold it, checked against the digest and parsed
    /// before it is stored or served.
    fn manifest_from_peers(&self, digest: Digest) -> Option<ManifestReply> {
        let network = self.peer_network()?;
        let (total, fetcher) = PieceFetcher::open(network, digest, 0)?;
        if total > MAX_MANIFEST_LEN {
            return None;
        }
        let mut bytes = Vec::new();
        if let Err(e) = fetcher.take(MAX_MANIFEST_LEN).read_to_end(&mut bytes) {
            tracing::info!(%digest, error = %e, "peers could not deliver the manifest");
            return None;
        }
        self.metrics.peer_fetches.inc();
        self.metrics.peer_bytes.inc_by(bytes.len() as u64);
        if Digest::sha256(&bytes) != digest {
            self.metrics.verification_failures.inc();
            tracing::warn!(%digest, "a peer's manifest does not match its digest; discarded");
            return None;
        }
        let manifest = Manifest::parse(&bytes, None).ok()?;
        let media_type = manifest.media_type();
        if let Err(e) = self
            .store
            .put_bytes(digest, &bytes, BlobKind::Manifest(media_type.into()))
        {
            tracing::error!(%digest, error = %e, "could not store manifest; serving it uncached");
        }
        self.metrics.activity.fetched(digest, "peers");
        tracing::info!(%digest, %media_type, "fetched manifest from peers");
        Some(ManifestReply {
            digest,
            media_type,
            bytes,
        })
    }

    /// [`Mirror::stored_manifest`], counted as a cache hit or miss.
    fn cached_manifest(&self, digest: &Digest) -> Option<ManifestReply> {
        let reply = self.stored_manifest(digest);
        let counter = if reply.is_some() {
            &self.metrics.cache_hits
        } else {
            &self.metrics.cache_misses
        };
        counter.inc();
        reply
    }

    /// A manifest from the store. A blob adopted after a crash has lost its media type: it is
    /// recovered by parsing, and a blob that is no manifest is not served as one.
    fn stored_manifest(&self, digest: &Digest) -> Option<ManifestReply> {
        let mut stored = self.store.open_blob(digest)?;
        let mut bytes = Vec::with_capacity(usize::try_from(stored.record.size).unwrap_or(0));
        if let Err(e) = stored.file.read_to_end(&mut bytes) {
            tracing::error!(%digest, error = %e, "could not read stored manifest");
            return None;
        }
        let media_type = match stored.record.kind {
            BlobKind::Manifest(m) => m.into(),
            BlobKind::Blob => {
                let media_type = Manifest::parse(&bytes, None).ok()?.media_type();
                if let Err(e) = self
                    .store
                    .set_kind(digest, BlobKind::Manifest(media_type.into()))
                {
                    tracing::warn!(%digest, error = %e, "could not record manifest kind");
                }
                media_type
            }
        };
        Some(ManifestReply {
            digest: *digest,
            media_type,
            bytes,
        })
    }

    fn observe(&self, key: &str, digest: Digest) {
        let observation = TagObservation {
            digest,
            observed_ms: now_ms(),
        };
        if let Err(e) = self.store.record_tag(key, observation) {
            tracing::error!(key, error = %e, "could not record tag observation");
        }
    }
}
