//! Blob requests: from the store when present, else by following the (single) upstream
//! download of that blob as it arrives.

use std::io::{self, Read, Seek, SeekFrom};

use pyrsia_core::digest::Digest;
use pyrsia_core::reference::{Host, Name, RepositoryPath};
use pyrsia_core::registry::range::{self, RangeOutcome};
use pyrsia_core::registry::{Code, OciError};

use super::flight::{FlightReader, Joined};
use super::{DownloadSlot, Mirror, upstream_error};
use crate::peers::FetchHint;
use crate::store::StoredBlob;

/// A blob ready to send: its total size, which part to send, and a reader positioned at the
/// part's first byte that yields exactly the part's bytes (or an error if the transfer must be
/// aborted).
pub struct BlobReply {
    /// The whole blob's size.
    pub size: u64,
    /// Whole (200), a range (206) or unsatisfiable (416).
    pub range: RangeOutcome,
    /// The bytes to send.
    pub reader: io::Take<BlobReader>,
}

impl BlobReply {
    /// Number of body bytes to send.
    pub fn body_len(&self) -> u64 {
        match self.range {
            RangeOutcome::Full => self.size,
            RangeOutcome::Partial(r) => r.len(),
            RangeOutcome::Unsatisfiable => 0,
        }
    }
}

/// Where a blob's bytes come from.
pub enum BlobReader {
    /// A verified file in the store.
    Stored(StoredBlob),
    /// A download in progress, and the request's place among those following downloads.
    Following(FlightReader, Option<DownloadSlot>),
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BlobReader::Stored(blob) => blob.file.read(buf),
            BlobReader::Following(reader, _) => reader.read(buf),
        }
    }
}

const BLOB_UNKNOWN: OciError = OciError::new(Code::BlobUnknown, "blob unknown");

impl Mirror {
    /// Answers a blob request for `name` on registry `host`, honouring a `Range` header.
    pub fn blob(
        &self,
        host: &Host,
        name: Name<'_>,
        digest: Digest,
        range_header: Option<&str>,
    ) -> Result<BlobReply, OciError> {
        self.blob_via(host, name, digest, range_header, true)
    }

    /// A blob for a `docker-fetch/v1` builder of a multi-member network: from the store when
    /// this node holds it verified, else from the upstream itself (never from peers).
    pub fn blob_from_upstream(
        &self,
        host: &Host,
        name: Name<'_>,
        digest: Digest,
    ) -> Result<BlobReply, OciError> {
        self.blob_via(host, name, digest, None, false)
    }

    fn blob_via(
        &self,
        host: &Host,
        name: Name<'_>,
        digest: Digest,
        range_header: Option<&str>,
        peers: bool,
    ) -> Result<BlobReply, OciError> {
        if let Some(stored) = self.store.open_blob(&digest) {
            self.metrics.cache_hits.inc();
            return stored_reply(stored, range_header);
        }
        self.metrics.cache_misses.inc();
        if self.config.offline {
            return Err(OciError::new(
                Code::BlobUnknown,
                "blob not cached (node is offline)",
            ));
        }
        let repository = RepositoryPath::new(host, name).to_string();
        let upstream = self
            .upstream(host)
            .map_err(|e| upstream_error(&e, BLOB_UNKNOWN))?;
        // Clients' requests hold HTTP workers while they wait (builders run on threads of
        // their own, and are not counted).
        let slot = if peers {
            Some(
                self.download_slot()
                    .map_err(|e| upstream_error(&e, BLOB_UNKNOWN))?,
            )
        } else {
            None
        };
        let flight = self.flights.join(
            &self.store,
            upstream,
            if peers {
                self.peer_fetch(&digest)
            } else {
                None
            },
            self.metrics.clone(),
            FetchHint {
                host: host.to_string(),
                repository,
            },
            digest,
        );
        match flight.follow(0) {
            Joined::Stored => {
                let stored = self.store.open_blob(&digest).ok_or(BLOB_UNKNOWN)?;
                stored_reply(stored, range_header)
            }
            Joined::Failed(e) => Err(match e {
                super::flight::FlightError::Upstream(e) => upstream_error(&e, BLOB_UNKNOWN),
                super::flight::FlightError::Mismatch => OciError::new(
                    Code::Unavailable,
                    "the upstream blob did not match its digest",
                )
                .with_status(502),
                super::flight::FlightError::Store(_) => {
                    OciError::new(Code::Unknown, "the store failed")
                }
            }),
            Joined::Following(size, mut reader) => {
                let range = range::evaluate(range_header, size);
                let (start, len) = span(range, size);
                if !matches!(range, RangeOutcome::Full) {
                    reader.seek_to_verified_range(start);
                }
                Ok(BlobReply {
                    size,
                    range,
                    reader: BlobReader::Following(reader, slot).take(len),
                })
            }
        }
    }
}

fn stored_reply(mut stored: StoredBlob, range_header: Option<&str>) -> Result<BlobReply, OciError> {
    let size = stored.record.size;
    let range = range::evaluate(range_header, size);
    let (start, len) = span(range, size);
    stored
        .file
        .seek(SeekFrom::Start(start))
        .map_err(|_| OciError::new(Code::Unknown, "could not read the stored blob"))?;
    Ok(BlobReply {
        size,
        range,
        reader: BlobReader::Stored(stored).take(len),
    })
}

/// First byte and length to send.
fn span(range: RangeOutcome, size: u64) -> (u64, u64) {
    match range {
        RangeOutcome::Full => (0, size),
        RangeOutcome::Partial(r) => (r.first, r.len()),
        RangeOutcome::Unsatisfiable => (0, 0),
    }
}
