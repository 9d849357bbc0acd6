//! Following another node's log over HTTP (`--log-from URL`): what a lite mirror or any node
//! without P2P does to verify through a full node. Every few seconds it reads the parent's
//! checkpoint, fetches the entries it lacks in batches, and offers both to
//! [`Log::apply_checkpoint`], which trusts nothing the parent says without signatures and
//! hashes.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use pyrsia_core::tlog::checkpoint::{MAX_NOTE_LEN, SignedCheckpoint};
use pyrsia_core::wire::FRAME_LEN_MAX;

use super::{Applied, Log};

/// The most entries one batch request asks for.
pub const BATCH_ENTRIES: u64 = 512;
/// The most entry bytes one batch answer carries (a single larger entry still travels alone).
pub const BATCH_BYTES: usize = 1 << 20;

/// Encodes entries for a batch answer: one wire frame of a postcard list.
pub fn encode_batch(entries: &[Vec<u8>]) -> Vec<u8> {
    let borrowed: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    pyrsia_core::wire::frame::encode_vec(&borrowed).unwrap_or_default()
}

/// Decodes a batch answer; the frame's size is checked before anything is allocated.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let borrowed: Vec<&[u8]> = pyrsia_core::wire::frame::decode(bytes, FRAME_LEN_MAX)
        .map_err(|e| format!("entry batch: {e}"))?;
    Ok(borrowed.into_iter().map(<[u8]>::to_vec).collect())
}

/// Starts following `parent` (a node's base URL) every `interval`.
pub fn follow_http(
    log: Arc<Log>,
    parent: String,
    interval: Duration,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("log-follow".into())
        .spawn(move || {
            let agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(30)))
                .http_status_as_error(true)
                .build()
                .new_agent();
            let parent = parent.trim_end_matches('/').to_string();
            loop {
                match sync_once(&agent, &log, &parent) {
                    Ok(Applied::Extended(size)) => {
                        tracing::info!(%parent, size, "log extended from the parent's checkpoint");
                    }
                    Ok(_) => {}
                    Err(why) => tracing::warn!(%parent, %why, "could not follow the parent's log"),
                }
                thread::sleep(interval);
            }
        })
}

/// One round: the parent's checkpoint, the missing entries, the check and the store.
pub fn sync_once(agent: &ureq::Agent, log: &Log, parent: &str) -> Result<Applied, String> {
    let text = agent
        .get(&format!("{parent}/pyrsia/log/checkpoint"))
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .with_config()
        .limit(MAX_NOTE_LEN as u64)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let note = SignedCheckpoint::parse(&text).map_err(|e| format!("checkpoint: {e}"))?;
    // Nothing a checkpoint names is fetched before a quorum of this log's members is seen to
    // have signed it: a parent cannot make this node download for a forged one.
    log.check_note(&note)
        .map_err(|e| format!("checkpoint refused, nothing fetched: {e}"))?;
    let mut entries = Vec::new();
    if let Some((first, count)) = log.missing_for(&note) {
        if count > super::MAX_ENTRIES_PER_APPLY {
            return Err(format!(
                "the parent is {count} entries ahead; too many at once"
            ));
        }
        while (entries.len() as u64) < count {
            let start = first + entries.len() as u64;
            let want = (count - entries.len() as u64).min(BATCH_ENTRIES);
            let body = agent
                .get(&format!(
                    "{parent}/pyrsia/log/entries?start={start}&count={want}"
                ))
                .call()
                .map_err(|e| e.to_string())?
                .body_mut()
                .with_config()
                .limit(u64::from(FRAME_LEN_MAX) + 5)
                .read_to_vec()
                .map_err(|e| e.to_string())?;
            let batch = decode_batch(&body)?;
            if batch.is_empty() || batch.len() as u64 > want {
                return Err(format!(
                    "the parent sent {} entries for {want} asked",
                    batch.len()
                ));
            }
            entries.extend(batch);
        }
    }
    log.apply_checkpoint(&note, &entries)
        .map_err(|e| e.to_string())
}
