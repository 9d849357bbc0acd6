//! `pyrsia log checkpoint`, and reading the log API: checkpoints, entries and proofs as the
//! light client needs them, entries described for people and scripts.

use std::process::ExitCode;

use argh::FromArgs;
use pyrsia_core::tlog::Hash;
use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_core::tlog::entry::Entry;
use serde_json::{Map, Value, json};

use crate::client::{DEFAULT_NODE, NodeClient};

/// Read the node's transparency log.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "log")]
pub(crate) struct LogCmd {
    #[argh(subcommand)]
    command: LogSubcommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum LogSubcommand {
    Checkpoint(CheckpointCmd),
}

/// Print the latest final checkpoint (a signed note: origin, size, root, time, signatures).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "checkpoint")]
struct CheckpointCmd {
    /// the node's URL (default http://127.0.0.1:7888)
    #[argh(option, default = "String::from(DEFAULT_NODE)")]
    node: String,
}

pub(crate) fn run(cmd: &LogCmd) -> ExitCode {
    match &cmd.command {
        LogSubcommand::Checkpoint(c) => match checkpoint(&NodeClient::new(&c.node)) {
            Ok(note) => {
                print!("{note}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pyrsia log checkpoint: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The node's latest final checkpoint, parsed (not yet verified).
pub(crate) fn checkpoint(client: &NodeClient) -> Result<SignedCheckpoint, String> {
    let bytes = client.get("/pyrsia/log/checkpoint")?;
    let text = String::from_utf8(bytes).map_err(|_| "checkpoint is not text".to_string())?;
    SignedCheckpoint::parse(&text).map_err(|e| format!("checkpoint: {e}"))
}

/// Entry `index`'s bytes.
pub(crate) fn entry(client: &NodeClient, index: u64) -> Result<Vec<u8>, String> {
    client.get(&format!("/pyrsia/log/entries/{index}"))
}

/// The inclusion proof of entry `index` in the tree of `size` entries.
pub(crate) fn inclusion_proof(
    client: &NodeClient,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, String> {
    let answer = client.get_json(&format!(
        "/pyrsia/log/proof/inclusion?index={index}&size={size}"
    ))?;
    hashes(&answer)
}

fn hashes(answer: &Value) -> Result<Vec<Hash>, String> {
    let list = answer["hashes"].as_array().ok_or("proof without hashes")?;
    list.iter()
        .map(|h| {
            let text = h.as_str().ok_or("proof hash is not a string")?;
            pyrsia_core::tlog::hash_from_hex(text).ok_or_else(|| format!("bad proof hash {text:?}"))
        })
        .collect()
}

/// An entry as a flat JSON object: index, kind and the fields people look for.
pub(crate) fn describe(index: u64, entry: &Entry<'_>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("index".into(), json!(index));
    out.insert("kind".into(), json!(entry.kind()));
    let fields = match entry {
        Entry::Genesis(g) => json!({
            "name": g.origin,
            "members": g.members.len(),
            "faults": g.faults,
            "time": g.created,
        }),
        Entry::BuildRequest(r) => json!({
            "name": r.coordinates.name,
            "version": r.coordinates.version,
            "build_type": r.build_type,
            "source": r.source,
            "by": r.requester.to_string(),
        }),
        Entry::Commit(c) => json!({
            "name": c.statement.coordinates.name,
            "version": c.statement.coordinates.version,
            "build_type": c.statement.build_type,
            "request": c.statement.request_index,
            "outputs": c.statement.outputs.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "attestations": c.attestations.len(),
            "by": c.attestations.iter().map(|a| a.signer.to_string()).collect::<Vec<_>>().join(" "),
        }),
        Entry::Dispute(d) | Entry::Unverifiable(d) => json!({
            "name": d.coordinates.name,
            "version": d.coordinates.version,
            "request": d.request_index,
        }),
        Entry::TagObservation(t) => json!({
            "name": t.statement.tag.name,
            "tag": t.statement.tag.version,
            "digest": t.statement.digest.to_string(),
            "by": t.statement.observer.to_string(),
            "vouched_by": t.attestations.iter().map(|a| a.signer.to_string()).collect::<Vec<_>>().join(" "),
            "time": t.statement.observed_at,
        }),
        Entry::UnattestedTag(t) => json!({
            "name": t.tag.name,
            "tag": t.tag.version,
            "digest": t.digest.to_string(),
            "by": t.observer.to_string(),
            "time": t.observed_at,
        }),
        Entry::Rebuilt(r) => json!({
            "name": r.statement.coordinates.name,
            "version": r.statement.coordinates.version,
            "build_type": r.statement.build_type,
            "request": r.statement.request_index,
            "verdict": r.statement.verdict.as_str(),
            "artifact": r.statement.artifact,
            "outputs": [r.statement.upstream.to_string()],
            "rebuilt": r.statement.rebuilt.map(|d| d.to_string()),
            "recipe": r.statement.recipe,
            "failure": r.statement.failure,
            "attestations": r.attestations.len(),
            "by": r.attestations.iter().map(|a| a.signer.to_string()).collect::<Vec<_>>().join(" "),
        }),
        Entry::AddMember(m) | Entry::RemoveMember(m) => json!({
            "member": m.key.key_id().to_string(),
            "epoch": m.epoch,
            "signatures": m.signatures.len(),
        }),
        _ => json!({}),
    };
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    if let Some(coordinates) = entry.coordinates() {
        out.insert("ecosystem".into(), json!(coordinates.ecosystem));
    }
    out
}
