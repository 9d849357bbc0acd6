//! The transparency log over HTTP, for `pyrsia verify`, `pyrsia inspect-log`, lite mirrors
//! and edge caches: everything a light client needs, none of which it has to trust (it checks
//! signatures and proofs itself).
//!
//! | path | answer |
//! |---|---|
//! | `/pyrsia/log/checkpoint` | the latest final checkpoint, a signed note (text) |
//! | `/pyrsia/log/genesis` | entry 0's bytes |
//! | `/pyrsia/log/entries/<index>` | an entry's bytes |
//! | `/pyrsia/log/entries?start=S&count=C` | a batch of entries (one wire frame) |
//! | `/pyrsia/log/proof/inclusion?index=I&size=S` | `{"index","size","hashes":[hex]}` |
//! | `/pyrsia/log/proof/consistency?from=A&to=B` | `{"from","to","hashes":[hex]}` |
//! | `/pyrsia/log/lookup?name=N&tag=T`, `&digest=D` or `&version=V` | `{"tag_observation","digest","version","commit","part_of"}` |
//! | `/pyrsia/log/history?name=N` | `{"name","entries":[index]}` |
//! | `/pyrsia/log/rebuilds?verdict=V&limit=L` | `{"rebuilds":[…]}`: committed rebuild verdicts, newest first, each with its recipe and the entries that differ |

use pyrsia_core::digest::Digest;
use pyrsia_core::package::rebuild::Side;
use pyrsia_core::registry::{Code, OciError};
use pyrsia_core::tlog::Hash;
use pyrsia_core::tlog::rebuilt::RebuildVerdict;
use pyrsia_std::log::{RebuildRecord, follow};
use serde_json::json;

use crate::node::Node;

/// Where the log API lives.
pub(crate) const PREFIX: &str = "/pyrsia/log/";

const NO_CHECKPOINT: OciError =
    OciError::new(Code::Unavailable, "the log has no final checkpoint yet");
const NOT_FOUND: OciError =
    OciError::new(Code::NameUnknown, "no such log resource").with_status(404);
const BAD_QUERY: OciError =
    OciError::new(Code::Unsupported, "missing or malformed query parameter").with_status(400);
const BAD_PROOF: OciError =
    OciError::new(Code::Unsupported, "no proof for those indices and sizes").with_status(400);

/// A log API answer: status, content type, body.
pub(crate) type Answer = Result<(&'static str, Vec<u8>), OciError>;

/// Answers a GET under [`PREFIX`]; `path` is what follows it.
pub(crate) fn respond(node: &Node, path: &str, query: &str) -> Answer {
    let log = &node.log;
    match path {
        "checkpoint" => {
            let note = log.checkpoint().ok_or(NO_CHECKPOINT)?;
            Ok(("text/plain; charset=utf-8", note.to_string().into_bytes()))
        }
        "genesis" => Ok(("application/octet-stream", log.genesis())),
        "proof/inclusion" => {
            let (index, size) = (number(query, "index")?, number(query, "size")?);
            let hashes = log.inclusion_proof(index, size).map_err(|_| BAD_PROOF)?;
            json_answer(&json!({ "index": index, "size": size, "hashes": hex_list(&hashes) }))
        }
        "proof/consistency" => {
            let (from, to) = (number(query, "from")?, number(query, "to")?);
            let hashes = log.consistency_proof(from, to).map_err(|_| BAD_PROOF)?;
            json_answer(&json!({ "from": from, "to": to, "hashes": hex_list(&hashes) }))
        }
        "lookup" => {
            let name = text(query, "name")?;
            let tag = text(query, "tag").ok();
            let observed = tag.as_deref().and_then(|t| log.find_tag(&name, t));
            let digest = match text(query, "digest") {
                Ok(d) => Some(Digest::parse(&d).map_err(|_| BAD_QUERY)?),
                Err(_) => observed.map(|(_, d)| d),
            };
            // A package version (`version=`, or the one a package tag names), else an
            // image's digest.
            let tagged = observed.and_then(|(_, d)| log.find_tagged(&name, &d));
            let version = text(query, "version")
                .ok()
                .or_else(|| tagged.map(|(_, v)| v))
                .or_else(|| digest.map(|d| d.to_string()));
            let commit = version.as_ref().and_then(|v| log.find_commit(&name, v));
            let request = version.as_ref().and_then(|v| log.find_request(&name, v));
            let dispute = version.as_ref().and_then(|v| log.find_dispute(&name, v));
            // A digest that is part of a committed image (a child manifest, a blob).
            let part_of = digest.and_then(|d| log.find_output(&d));
            json_answer(&json!({
                "name": name,
                "tag": tag,
                "tag_observation": observed.map(|(i, _)| i),
                "digest": digest.map(|d| d.to_string()),
                "version": version,
                "commit": commit,
                "request": request,
                "dispute": dispute.map(|(index, _)| index),
                "unverifiable": dispute.is_some_and(|(_, final_)| final_),
                "part_of": part_of,
            }))
        }
        "entries" => {
            let (start, count) = (number(query, "start")?, number(query, "count")?);
            let entries = log.entries(start, count.min(follow::BATCH_ENTRIES), follow::BATCH_BYTES);
            Ok(("application/octet-stream", follow::encode_batch(&entries)))
        }
        "rebuilds" => {
            let verdict = match text(query, "verdict") {
                Ok(name) => Some(RebuildVerdict::parse(&name).ok_or(BAD_QUERY)?),
                Err(_) => None,
            };
            let limit = number(query, "limit").unwrap_or(100).min(1000) as usize;
            let rebuilds: Vec<serde_json::Value> = log
                .rebuilds(verdict, limit)
                .iter()
                .map(rebuild_json)
                .collect();
            json_answer(&json!({ "rebuilds": rebuilds }))
        }
        "history" => {
            let name = text(query, "name")?;
            json_answer(&json!({ "name": name, "entries": log.history(&name) }))
        }
        _ => {
            let index = path
                .strip_prefix("entries/")
                .and_then(|i| i.parse::<u64>().ok())
                .ok_or(NOT_FOUND)?;
            let entry = log.entry(index).ok_or(NOT_FOUND)?;
            Ok(("application/octet-stream", entry))
        }
    }
}

/// A committed rebuild verdict as JSON: what was rebuilt, how, and what differs.
pub(crate) fn rebuild_json(record: &RebuildRecord) -> serde_json::Value {
    let result = &record.result;
    let side =
        |s: &Option<Side>| s.map(|s| json!({ "size": s.size, "sha256": s.sha256.to_string() }));
    let diff = record.diff();
    let entries: Vec<serde_json::Value> = diff
        .entries
        .iter()
        .map(|e| json!({ "name": e.name, "upstream": side(&e.upstream), "rebuilt": side(&e.rebuilt) }))
        .collect();
    json!({
        "index": record.index,
        "ecosystem": record.ecosystem,
        "name": record.name,
        "version": record.version,
        "artifact": result.artifact,
        "upstream": result.upstream.to_string(),
        "rebuilt": result.rebuilt.map(|d| d.to_string()),
        "stabilized": result.stabilized.map(|d| d.to_string()),
        "verdict": result.verdict.as_str(),
        "recipe": result.recipe,
        "failure": result.failure,
        "attestations": record.attestations,
        "diff": { "entries": entries, "more": diff.more },
    })
}

fn json_answer(value: &serde_json::Value) -> Answer {
    Ok(("application/json", value.to_string().into_bytes()))
}

fn hex_list(hashes: &[Hash]) -> Vec<String> {
    hashes
        .iter()
        .map(|h| h.iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

/// The percent-decoded value of `key` in `query`.
pub(crate) fn text(query: &str, key: &str) -> Result<String, OciError> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| pyrsia_core::percent::decode::<512>(v).ok())
        .map(|v| v.as_str().to_string())
        .ok_or(BAD_QUERY)
}

fn number(query: &str, key: &str) -> Result<u64, OciError> {
    text(query, key)?.parse().map_err(|_| BAD_QUERY)
}
