//! Following another node's log over HTTP (`--log-from URL`): what a lite mirror or any node
//! without P2P does to verify through a full node. Every few seconds it reads the parent's
//! checkpoint, fetches the entries it lacks in batches, and offers both to
//! [`Log::apply_checkpoint`] (or, for a gap longer than [`CATCH_UP_CHUNK`], chunk by chunk
//! with consistency proofs to [`Log::apply_prefix`]), which trust nothing the parent says
//! without signatures, hashes and proofs.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use pyrsia_core::tlog::checkpoint::{MAX_NOTE_LEN, SignedCheckpoint};
use pyrsia_core::tlog::{Hash, hash_from_hex};
use pyrsia_core::wire::FRAME_LEN_MAX;

use super::{Applied, Log};

pub use pyrsia_core::tlog::sync::{BATCH_ENTRIES, CATCH_UP_CHUNK};

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

/// One round: the parent's checkpoint, then the missing entries in chunks of at most
/// [`CATCH_UP_CHUNK`]: each chunk but the last is stored with the parent's consistency proof
/// that it is a prefix of the checkpoint's tree ([`Log::apply_prefix`]), the last with the
/// checkpoint itself ([`Log::apply_checkpoint`]). A log of any length is followed with
/// bounded memory.
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
    while let Some((first, count)) = log.missing_for(&note) {
        let chunk = count.min(CATCH_UP_CHUNK);
        let entries = fetch_entries(agent, parent, first, chunk)?;
        if chunk == count {
            return log
                .apply_checkpoint(&note, &entries)
                .map_err(|e| e.to_string());
        }
        let to = note.checkpoint.size;
        let proof = consistency_proof(agent, parent, first + chunk, to)?;
        let size = log
            .apply_prefix(&note, &entries, &proof)
            .map_err(|e| e.to_string())?;
        tracing::info!(%parent, size, of = to, "catching up with the parent's log");
    }
    log.apply_checkpoint(&note, &[]).map_err(|e| e.to_string())
}

/// Entries `first..first+count` from the parent, in batches of [`BATCH_ENTRIES`].
fn fetch_entries(
    agent: &ureq::Agent,
    parent: &str,
    first: u64,
    count: u64,
) -> Result<Vec<Vec<u8>>, String> {
    let mut entries = Vec::new();
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
    Ok(entries)
}

/// The parent's consistency proof from the tree of `from` entries to the tree of `to`.
fn consistency_proof(
    agent: &ureq::Agent,
    parent: &str,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, String> {
    let text = agent
        .get(&format!(
            "{parent}/pyrsia/log/proof/consistency?from={from}&to={to}"
        ))
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let answer: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("consistency proof: {e}"))?;
    answer["hashes"]
        .as_array()
        .ok_or("consistency proof without hashes")?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(hash_from_hex)
                .ok_or_else(|| format!("consistency proof: bad hash {h}"))
        })
        .collect()
}
