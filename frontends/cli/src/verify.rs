//! `pyrsia verify docker --image NAME:TAG` (or `npm --package NAME@VERSION`, `pypi --package
//! NAME==VERSION`, `maven --gav GROUP:ARTIFACT:VERSION`): the light-client check (PROTOCOL.md §4) against a
//! node that is not trusted: genesis → checkpoint quorum, genesis inclusion and freshness →
//! the tag's observation and the image's commit, each by inclusion proof → every manifest and
//! blob hashed while streaming and found among the committed outputs. It prints each step and
//! exits 0 only when every one held.

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use pyrsia_core::digest::Digest;
use pyrsia_core::light::{Connectivity, Freshness, LightClient, Policy};
use pyrsia_core::reference::ImageRef;
use pyrsia_core::tlog::entry::{ECOSYSTEM_DOCKER, Entry};
use pyrsia_std::clock::unix_seconds;

use crate::client::{DEFAULT_NODE, NodeClient};
use crate::log::{checkpoint, entry, inclusion_proof};
use crate::packages::PackageSpec;
use crate::transfer::{MAX_MANIFESTS, fetch_manifest, hash_blob, hash_unknown};

/// Verify an image against the transparency log, trusting only the genesis.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "verify")]
pub(crate) struct VerifyCmd {
    /// the ecosystem: docker, npm, pypi or maven
    #[argh(positional)]
    ecosystem: String,
    /// the image (docker): NAME:TAG or NAME@DIGEST
    #[argh(option)]
    image: Option<String>,
    /// the package version: NAME@VERSION (npm) or NAME==VERSION (pypi)
    #[argh(option)]
    package: Option<String>,
    /// the Maven release (maven): GROUP:ARTIFACT:VERSION
    #[argh(option)]
    gav: Option<String>,
    /// the network's genesis file to trust; without it the node's own genesis is used (trust
    /// on first use, said in the output)
    #[argh(option)]
    genesis: Option<PathBuf>,
    /// the node's URL (default http://127.0.0.1:7888)
    #[argh(option, default = "String::from(DEFAULT_NODE)")]
    node: String,
    /// fail unless the network rebuilt the package from its source and the rebuild
    /// reproduced the upstream's artifact (pypi: the pure-Python wheel)
    #[argh(switch)]
    require_reproduced: bool,
}

pub(crate) fn run(cmd: &VerifyCmd) -> ExitCode {
    if cmd.ecosystem != "docker" {
        let spec = match cmd.package.as_ref().or(cmd.gav.as_ref()) {
            Some(text) => PackageSpec::parse(&cmd.ecosystem, text, true),
            None => Err(crate::packages::name_it(&cmd.ecosystem)),
        };
        return match spec {
            Ok(spec) => report(verify_package(cmd, &spec)),
            Err(e) => {
                eprintln!("pyrsia verify: {e}");
                ExitCode::from(2)
            }
        };
    }
    let Some(image) = &cmd.image else {
        eprintln!("pyrsia verify: name the image: docker --image NAME:TAG");
        return ExitCode::from(2);
    };
    let image = match ImageRef::parse(image) {
        Ok(image) if image.tag.is_some() || image.digest.is_some() => image,
        Ok(_) => {
            eprintln!("pyrsia verify: name a tag or a digest (NAME:TAG or NAME@DIGEST)");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("pyrsia verify: invalid image {image:?}: {e}");
            return ExitCode::from(2);
        }
    };
    report(verify(cmd, &image))
}

fn report(outcome: Result<String, String>) -> ExitCode {
    match outcome {
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

/// The light client of the network `cmd` trusts: its pinned genesis, or the node's (said).
fn light_client(cmd: &VerifyCmd, client: &NodeClient) -> Result<LightClient, String> {
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
    let light =
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
    Ok(light)
}

/// Reads the node's checkpoint and accepts it: a quorum's signatures, the genesis included,
/// fresh enough. Returns its size.
fn accept_checkpoint(client: &NodeClient, light: &mut LightClient) -> Result<u64, String> {
    let note = checkpoint(client)?;
    let size = note.checkpoint.size;
    let genesis_proof = inclusion_proof(client, 0, size)?;
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
    Ok(size)
}

/// The light-client check of a package version: its commit, by inclusion proof under an
/// accepted checkpoint, names these coordinates, and every file of the version the node
/// serves hashes to one of the committed outputs (and every output is served).
fn verify_package(cmd: &VerifyCmd, spec: &PackageSpec) -> Result<String, String> {
    let client = NodeClient::new(&cmd.node);
    let mut light = light_client(cmd, &client)?;
    let label = spec.label();
    // Looked up before the checkpoint is read, so that the checkpoint covers it.
    let found = client.get_json(&format!("/pyrsia/log/lookup?{}", spec.lookup_query()))?;
    let index = found["commit"]
        .as_u64()
        .ok_or_else(|| format!("{label} is not committed to the log"))?;
    let rebuild = match spec.rebuild_lookup_query() {
        Some(query) => client.get_json(&format!("/pyrsia/log/lookup?{query}"))?,
        None => serde_json::Value::Null,
    };
    let size = accept_checkpoint(&client, &mut light)?;
    let bytes = entry(&client, index)?;
    let proof = inclusion_proof(&client, index, size)?;
    let Entry::Commit(commit) = light
        .check_entry(&bytes, index, &proof)
        .map_err(|e| format!("commit #{index}: {e}"))?
    else {
        return Err(format!("entry #{index} is not a commit"));
    };
    let coordinates = commit.statement.coordinates;
    if coordinates != spec.coordinates() {
        return Err(format!(
            "commit #{index} is for {} {}@{}",
            coordinates.ecosystem, coordinates.name, coordinates.version
        ));
    }
    step(
        "commit",
        format!(
            "entry #{index}, {} by {} attestation(s), {} file(s), inclusion proof ok",
            commit.statement.build_type,
            commit.attestations.len(),
            commit.statement.outputs.len()
        ),
    );
    let mut hashed = Vec::new();
    let mut total = 0;
    for (file, listed) in spec.files_on_node(&client)? {
        let (digest, size) = hash_unknown(&client, &file.path)?;
        if listed.is_some_and(|l| l != digest) {
            return Err(format!(
                "{}: the bytes served hash to {digest}, the index gives {}",
                file.name,
                listed.map(|d| d.to_string()).unwrap_or_default()
            ));
        }
        light
            .check_committed(&bytes, index, &proof, &digest)
            .map_err(|e| format!("{} ({digest}): {e}", file.name))?;
        step(
            "file",
            format!("{} ({size} bytes) {digest}: committed: ok", file.name),
        );
        hashed.push(digest);
        total += size;
    }
    if let Some(missing) = commit
        .statement
        .outputs
        .iter()
        .find(|d| !hashed.contains(d))
    {
        return Err(format!(
            "committed file {missing} is not among the files the node lists"
        ));
    }
    let verdict = rebuild_verdict(cmd, &client, &light, &rebuild, &hashed, size)?;
    Ok(format!(
        "{} {label}: {} file(s) ({total} bytes) match commit #{index} under a checkpoint of size {size}{verdict}",
        spec.ecosystem,
        hashed.len()
    ))
}

/// The rebuild verdict step: the `Rebuilt` entry the lookup found (`found`), by inclusion
/// proof under the accepted checkpoint of `size`, of one of the `hashed` files; prints its
/// verdict, recipe and what differs. With `--require-reproduced`, anything but a reproduced
/// verdict fails. Returns the summary's suffix.
fn rebuild_verdict(
    cmd: &VerifyCmd,
    client: &NodeClient,
    light: &LightClient,
    found: &serde_json::Value,
    hashed: &[Digest],
    size: u64,
) -> Result<String, String> {
    let Some(index) = found["commit"].as_u64().filter(|i| *i < size) else {
        let why = if found["request"].is_u64() {
            "requested, no verdict yet"
        } else if found.is_null() {
            "this ecosystem is not rebuilt"
        } else {
            "never rebuilt"
        };
        step("rebuild", why);
        if cmd.require_reproduced {
            return Err(format!(
                "not reproduced from source: {why} (--require-reproduced)"
            ));
        }
        return Ok(String::new());
    };
    let bytes = entry(client, index)?;
    let proof = inclusion_proof(client, index, size)?;
    // The file it names must be one this check hashed; then the entry is checked once.
    let upstream = match Entry::decode(&bytes) {
        Ok(Entry::Rebuilt(r)) if hashed.contains(&r.statement.upstream) => r.statement.upstream,
        _ => {
            return Err(format!(
                "rebuild #{index}: not a rebuild verdict of any file of this version"
            ));
        }
    };
    let rebuilt = light
        .check_rebuilt(&bytes, index, &proof, &upstream)
        .map_err(|e| format!("rebuild #{index}: {e}"))?;
    let statement = &rebuilt.statement;
    step(
        "rebuild",
        format!(
            "entry #{index}, {} of {} by {} attestation(s), inclusion proof ok: {}",
            statement.build_type,
            statement.artifact,
            rebuilt.attestations.len(),
            statement.verdict.as_str()
        ),
    );
    step("recipe", statement.recipe);
    if !statement.failure.is_empty() {
        step("failure", statement.failure);
    }
    let diff = pyrsia_core::package::rebuild::decode_diff(statement.diff).unwrap_or_default();
    for e in &diff.entries {
        let side = |s: &Option<pyrsia_core::package::rebuild::Side>| {
            s.map_or("absent".to_string(), |s| {
                format!("{} bytes {}", s.size, s.sha256)
            })
        };
        let kind = match (&e.upstream, &e.rebuilt) {
            (Some(_), None) => "not from source",
            (None, Some(_)) => "missing upstream",
            _ => "differs",
        };
        step(
            "diff",
            format!(
                "{} ({kind}): upstream {}, rebuilt {}",
                e.name,
                side(&e.upstream),
                side(&e.rebuilt)
            ),
        );
    }
    if diff.more > 0 {
        step("diff", format!("… and {} more entries", diff.more));
    }
    if cmd.require_reproduced && !statement.verdict.is_reproduced() {
        return Err(format!(
            "{} is {} (--require-reproduced)",
            statement.artifact,
            statement.verdict.as_str()
        ));
    }
    Ok(format!(", rebuild {}", statement.verdict.as_str()))
}

fn verify(cmd: &VerifyCmd, image: &ImageRef<'_>) -> Result<String, String> {
    let client = NodeClient::new(&cmd.node);
    let mut light = light_client(cmd, &client)?;

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

    let size = accept_checkpoint(&client, &mut light)?;

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
        let (_, manifest) = fetch_manifest(&client, &path, &ns, &d.to_string(), Some(d))?;
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
