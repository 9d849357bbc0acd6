//! `pyrsia verify docker --image NAME:TAG`: the light-client check (PROTOCOL.md §4) against a
//! node that is not trusted: genesis → checkpoint quorum, genesis inclusion and freshness →
//! the tag's observation and the image's commit, each by inclusion proof → every manifest and
//! blob hashed while streaming and found among the committed outputs. It prints each step and
//! exits 0 only when every one held.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use pyrsia_core::digest::{Digest, Verification, Verifier};
use pyrsia_core::light::{Connectivity, Freshness, LightClient, Policy};
use pyrsia_core::manifest::Manifest;
use pyrsia_core::media_type::MediaType;
use pyrsia_core::reference::ImageRef;
use pyrsia_core::tlog::entry::{ECOSYSTEM_DOCKER, Entry};
use pyrsia_std::clock::unix_seconds;

use crate::client::{DEFAULT_NODE, NodeClient};
use crate::log::{checkpoint, entry, inclusion_proof};

/// Verify an image against the transparency log, trusting only the genesis.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "verify")]
pub(crate) struct VerifyCmd {
    /// the ecosystem: docker
    #[argh(positional)]
    ecosystem: String,
    /// the image: NAME:TAG or NAME@DIGEST
    #[argh(option)]
    image: String,
    /// the network's genesis file to trust; without it the node's own genesis is used (trust
    /// on first use, said in the output)
    #[argh(option)]
    genesis: Option<PathBuf>,
    /// the node's URL (default http://127.0.0.1:7888)
    #[argh(option, default = "String::from(DEFAULT_NODE)")]
    node: String,
}

/// The most manifests followed in one image.
const MAX_MANIFESTS: usize = 256;
/// The largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

pub(crate) fn run(cmd: &VerifyCmd) -> ExitCode {
    if cmd.ecosystem != "docker" {
        eprintln!(
            "pyrsia verify: unknown ecosystem {:?} (supported: docker)",
            cmd.ecosystem
        );
        return ExitCode::from(2);
    }
    let image = match ImageRef::parse(&cmd.image) {
        Ok(image) if image.tag.is_some() || image.digest.is_some() => image,
        Ok(_) => {
            eprintln!("pyrsia verify: name a tag or a digest (NAME:TAG or NAME@DIGEST)");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("pyrsia verify: invalid image {:?}: {e}", cmd.image);
            return ExitCode::from(2);
        }
    };
    match verify(cmd, &image) {
        Ok(summary) => {
            println!("VERIFIED     {summary}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("NOT VERIFIED {why}");
            ExitCode::FAILURE
        }
    }
}

fn step(label: &str, text: impl std::fmt::Display) {
    println!("{label:<12} {text}");
}

fn verify(cmd: &VerifyCmd, image: &ImageRef<'_>) -> Result<String, String> {
    let client = NodeClient::new(&cmd.node);
    let genesis = match &cmd.genesis {
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            step("genesis", format!("pinned from {}", path.display()));
            bytes
        }
        None => {
            let bytes = client.get("/pyrsia/log/genesis")?;
            step(
                "genesis",
                format!(
                    "taken from {} (trust on first use; pass --genesis FILE to pin it)",
                    client.base()
                ),
            );
            bytes
        }
    };
    let mut light =
        LightClient::new(&genesis, Policy::default()).map_err(|e| format!("genesis: {e}"))?;
    let members = light.members();
    step(
        "log",
        format!(
            "{} ({} member(s), f={}, checkpoints need {} signature(s), commits {} attestation(s))",
            light.origin(),
            members.len(),
            members.faults(),
            members.quorum(),
            members.commit_threshold()
        ),
    );

    // The tag's latest observation is looked up before the checkpoint is read: the log only
    // grows, so the checkpoint read after it covers that entry (read the other way round, a
    // batch ordered in between left the observation outside the checkpoint).
    let name = format!("{}/{}", image.host, image.repository_path());
    // Likewise the commit of an image named by digest.
    let digest_lookup = match image.digest {
        Some(digest) => {
            Some(client.get_json(&format!("/pyrsia/log/lookup?name={name}&digest={digest}"))?)
        }
        None => None,
    };
    let tag_observation = match (image.digest, image.tag) {
        (None, Some(tag)) => {
            let found = client.get_json(&format!("/pyrsia/log/lookup?name={name}&tag={tag}"))?;
            let index = found["tag_observation"]
                .as_u64()
                .ok_or_else(|| format!("{name}:{tag} was never observed in the log"))?;
            Some(index)
        }
        _ => None,
    };

    let note = checkpoint(&client)?;
    let size = note.checkpoint.size;
    let genesis_proof = inclusion_proof(&client, 0, size)?;
    let freshness = light
        .accept_checkpoint(&note, &genesis_proof, unix_seconds(), Connectivity::Online)
        .map_err(|e| format!("checkpoint: {e}"))?;
    step(
        "checkpoint",
        format!(
            "size {size}, signed at {} by a quorum of members, contains this genesis, {}: ok",
            note.checkpoint.timestamp,
            match freshness {
                Freshness::Fresh => "fresh",
                Freshness::Stale => "stale",
            }
        ),
    );

    let digest = match (image.digest, image.tag, tag_observation) {
        (Some(digest), _, _) => digest,
        (None, Some(tag), Some(index)) => {
            let bytes = entry(&client, index)?;
            let proof = inclusion_proof(&client, index, size)?;
            let Entry::TagObservation(observation) = light
                .check_tag(&bytes, index, &proof, &name, tag.as_str())
                .map_err(|e| format!("tag observation #{index}: {e}"))?
            else {
                return Err(format!("entry #{index} is not a tag observation"));
            };
            let statement = observation.statement;
            step(
                "tag",
                format!(
                    "{name}:{tag} -> {} (entry #{index}, seen by {} member(s), inclusion proof ok)",
                    statement.digest,
                    observation.attestations.len()
                ),
            );
            statement.digest
        }
        _ => unreachable!("checked by the caller; a tag was looked up above"),
    };

    let found = match digest_lookup {
        Some(found) => found,
        // By tag: the commit precedes the tag's observation, which the checkpoint covers.
        None => client.get_json(&format!("/pyrsia/log/lookup?name={name}&digest={digest}"))?,
    };
    // The image's own commit, or (by digest) the commit of the image it is part of.
    let index = found["commit"]
        .as_u64()
        .or_else(|| {
            image
                .tag
                .is_none()
                .then(|| found["part_of"].as_u64())
                .flatten()
        })
        .ok_or_else(|| format!("{name}@{digest} is not committed to the log"))?;
    let bytes = entry(&client, index)?;
    let proof = inclusion_proof(&client, index, size)?;
    let committed = light
        .check_committed(&bytes, index, &proof, &digest)
        .map_err(|e| format!("commit #{index}: {e}"))?;
    let Entry::Commit(commit) = committed else {
        return Err(format!("entry #{index} is not a commit"));
    };
    let coordinates = commit.statement.coordinates;
    if coordinates.ecosystem != ECOSYSTEM_DOCKER || coordinates.name != name {
        return Err(format!(
            "commit #{index} is for {}@{}",
            coordinates.name, coordinates.version
        ));
    }
    step(
        "commit",
        format!(
            "entry #{index}, {} by {} attestation(s), {} outputs, inclusion proof ok",
            commit.statement.build_type,
            commit.attestations.len(),
            commit.statement.outputs.len()
        ),
    );

    let outputs = commit.statement.outputs;
    let path = repository_path(image);
    let ns = if image.host.is_docker_hub() {
        String::new()
    } else {
        format!("?ns={}", image.host)
    };
    let mut manifests = vec![digest];
    let (mut manifest_count, mut blob_count, mut blob_bytes) = (0usize, 0usize, 0u64);
    while let Some(d) = manifests.pop() {
        manifest_count += 1;
        if manifest_count > MAX_MANIFESTS {
            return Err(format!("more than {MAX_MANIFESTS} manifests"));
        }
        if !outputs.contains(&d) {
            return Err(format!("manifest {d} is not among the committed outputs"));
        }
        let accept = MediaType::PULLABLE.map(MediaType::as_str).join(", ");
        let mut response = client.open(
            &format!("/v2/{path}/manifests/{d}{ns}"),
            &[("Accept", &accept)],
        )?;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST_BYTES)
            .read_to_vec()
            .map_err(|e| format!("manifest {d}: {e}"))?;
        if Digest::sha256(&body) != d {
            return Err(format!(
                "manifest {d}: the bytes served hash to {}",
                Digest::sha256(&body)
            ));
        }
        let manifest = Manifest::parse(&body, content_type.as_deref())
            .map_err(|e| format!("manifest {d}: {e}"))?;
        step("manifest", format!("{d} hashed, committed: ok"));
        if manifest.is_index() {
            manifests.extend(manifest.manifests().iter().map(|m| m.digest));
            continue;
        }
        for descriptor in manifest.config().into_iter().chain(manifest.layers()) {
            let b = descriptor.digest;
            if !outputs.contains(&b) {
                return Err(format!("blob {b} is not among the committed outputs"));
            }
            let size = hash_blob(&client, &format!("/v2/{path}/blobs/{b}{ns}"), b)?;
            step("blob", format!("{b} ({size} bytes) hashed, committed: ok"));
            blob_count += 1;
            blob_bytes += size;
        }
    }
    Ok(format!(
        "{name}@{digest}: {manifest_count} manifest(s) and {blob_count} blob(s) ({blob_bytes} bytes) match commit #{index} under a checkpoint of size {size}"
    ))
}

fn repository_path(image: &ImageRef<'_>) -> String {
    image.repository_path().to_string()
}

/// Streams a blob and hashes it; returns its size.
fn hash_blob(client: &NodeClient, path: &str, digest: Digest) -> Result<u64, String> {
    let mut response = client.open(path, &[])?;
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut verifier = Verifier::new(digest);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => verifier.update(&buf[..n]),
            Err(e) => return Err(format!("blob {digest}: {e}")),
        }
    }
    let size = verifier.bytes_seen();
    match verifier.finish() {
        Verification::Match => Ok(size),
        Verification::Mismatch { actual } => {
            Err(format!("blob {digest}: the bytes served hash to {actual}"))
        }
    }
}
