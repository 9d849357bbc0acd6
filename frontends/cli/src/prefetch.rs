//! `pyrsia prefetch docker --image NAME:TAG`: preheats a node's cache, as Kraken's and
//! Dragonfly's preheat do — reads every manifest and blob of the image through the node (all
//! platforms, or `--platform os/arch`), so that the node fetches what it lacks (from peers or
//! the upstream) and keeps it; each one is hashed on the way and checked against its digest,
//! with progress per blob.

use std::process::ExitCode;
use std::time::Instant;

use argh::FromArgs;
use pyrsia_core::digest::Digest;
use pyrsia_core::reference::ImageRef;

use crate::client::{DEFAULT_NODE, NodeClient};
use crate::transfer::{hash_blob, short};

/// Preheat a node's cache with an image: every manifest and blob read through it, verified.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "prefetch")]
pub(crate) struct PrefetchCmd {
    /// the ecosystem: docker
    #[argh(positional)]
    ecosystem: String,
    /// the image: NAME:TAG or NAME@DIGEST
    #[argh(option)]
    image: String,
    /// only this platform of a multi-platform image, as OS/ARCH (e.g. linux/amd64;
    /// default: every platform)
    #[argh(option)]
    platform: Option<String>,
    /// the node (default http://127.0.0.1:7888)
    #[argh(option, default = "String::from(DEFAULT_NODE)")]
    node: String,
}

use crate::transfer::{MAX_MANIFESTS, fetch_manifest};

pub(crate) fn run(cmd: &PrefetchCmd) -> ExitCode {
    if cmd.ecosystem != "docker" {
        eprintln!(
            "pyrsia prefetch: only docker images can be prefetched (got {:?})",
            cmd.ecosystem
        );
        return ExitCode::from(2);
    }
    let image = match ImageRef::parse(&cmd.image) {
        Ok(image) if image.tag.is_some() || image.digest.is_some() => image,
        Ok(_) => {
            eprintln!("pyrsia prefetch: name a tag or a digest (NAME:TAG or NAME@DIGEST)");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("pyrsia prefetch: invalid image {:?}: {e}", cmd.image);
            return ExitCode::from(2);
        }
    };
    match prefetch(cmd, &image) {
        Ok(summary) => {
            println!("prefetched   {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAILED       {e}");
            ExitCode::FAILURE
        }
    }
}

fn prefetch(cmd: &PrefetchCmd, image: &ImageRef<'_>) -> Result<String, String> {
    let client = NodeClient::new(&cmd.node);
    let started = Instant::now();
    let path = image.repository_path().to_string();
    let ns = if image.host.is_docker_hub() {
        String::new()
    } else {
        format!("?ns={}", image.host)
    };
    let reference = match (image.digest, &image.tag) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_string(),
        (None, None) => return Err("name a tag or a digest".into()),
    };
    let (top, top_manifest) = fetch_manifest(&client, &path, &ns, &reference, image.digest)?;
    let mut next = Some((top, top_manifest));
    let mut children: Vec<Digest> = Vec::new();
    let (mut manifest_count, mut blobs, mut bytes) = (0usize, 0usize, 0u64);
    let mut seen_blobs = std::collections::HashSet::new();
    loop {
        let (digest, manifest) = match (next.take(), children.pop()) {
            (Some(fetched), _) => fetched,
            (None, Some(child)) => {
                fetch_manifest(&client, &path, &ns, &child.to_string(), Some(child))?
            }
            (None, None) => break,
        };
        manifest_count += 1;
        if manifest_count > MAX_MANIFESTS {
            return Err(format!("more than {MAX_MANIFESTS} manifests"));
        }
        println!("manifest     {digest}");
        if manifest.is_index() {
            children.extend(
                manifest
                    .manifests()
                    .iter()
                    .filter(|child| wanted(cmd.platform.as_deref(), child))
                    .map(|child| child.digest),
            );
            continue;
        }
        for descriptor in manifest.config().into_iter().chain(manifest.layers()) {
            let blob = descriptor.digest;
            if !seen_blobs.insert(blob) {
                continue;
            }
            let size = hash_blob(&client, &format!("/v2/{path}/blobs/{blob}{ns}"), blob)?;
            println!("blob         {} {size} bytes, verified", short(&blob));
            blobs += 1;
            bytes += size;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(format!(
        "{}/{path}@{top}: {manifest_count} manifest(s), {blobs} blob(s), {bytes} bytes in {seconds:.1} s",
        image.host
    ))
}

/// Whether an index child is wanted with `--platform` (every child without it).
fn wanted(platform: Option<&str>, child: &pyrsia_core::manifest::Descriptor) -> bool {
    let Some(platform) = platform else {
        return true;
    };
    child.platform.as_ref().is_some_and(|p| {
        let name = format!("{}/{}", p.os, p.architecture);
        match &p.variant {
            Some(variant) => platform == name || platform == format!("{name}/{variant}"),
            None => platform == name,
        }
    })
}
