//! `pyrsia build docker --image NAME:TAG`: asks a node to verify an image and shows progress
//! until its log commits it, or the time runs out. The request is a manifest fetch through the
//! node's mirror, which is how every image enters verification (a node serving
//! `--verified-only` answers 404 and queues it all the same); then the command follows the
//! node's queue and the log's lookup. A package version (`npm|pypi --package`, `maven --gav`) is requested
//! with `POST /pyrsia/packages/request`, which works on a `--verified-only` node too.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use argh::FromArgs;
use pyrsia_core::media_type::MediaType;
use pyrsia_core::reference::ImageRef;

use crate::client::{DEFAULT_NODE, NodeClient};
use crate::packages::PackageSpec;
use crate::progress::Stages;

/// Ask a node to verify an image and wait until the log commits it.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "build")]
pub(crate) struct BuildCmd {
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
    /// the node's URL (default http://127.0.0.1:7888)
    #[argh(option, default = "String::from(DEFAULT_NODE)")]
    node: String,
    /// seconds to wait for the commit (default 600)
    #[argh(option, default = "600")]
    timeout: u64,
}

/// How often the node is asked how far it got.
const POLL: Duration = Duration::from_millis(500);

/// Polls with an empty queue and no commit before the command gives up.
const IDLE_POLLS: u32 = 4;

pub(crate) fn run(cmd: &BuildCmd) -> ExitCode {
    if cmd.ecosystem != "docker" {
        let spec = match cmd.package.as_ref().or(cmd.gav.as_ref()) {
            Some(text) => PackageSpec::parse(&cmd.ecosystem, text, true),
            None => Err(crate::packages::name_it(&cmd.ecosystem)),
        };
        return match spec {
            Ok(spec) => report(build_package(cmd, &spec)),
            Err(e) => {
                eprintln!("pyrsia build: {e}");
                ExitCode::from(2)
            }
        };
    }
    let Some(image) = &cmd.image else {
        eprintln!("pyrsia build: name the image: docker --image NAME:TAG");
        return ExitCode::from(2);
    };
    let image = match ImageRef::parse(image) {
        Ok(image) if image.tag.is_some() || image.digest.is_some() => image,
        Ok(_) => {
            eprintln!("pyrsia build: name a tag or a digest (NAME:TAG or NAME@DIGEST)");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("pyrsia build: invalid image {image:?}: {e}");
            return ExitCode::from(2);
        }
    };
    report(build(cmd, &image))
}

fn report(outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("pyrsia build: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The log's answer for the image: (digest, commit index).
fn lookup(client: &NodeClient, query: &str) -> Result<(Option<String>, Option<u64>), String> {
    let found = lookup_json(client, query)?;
    Ok((
        found["digest"].as_str().map(str::to_string),
        found["commit"].as_u64(),
    ))
}

fn lookup_json(client: &NodeClient, query: &str) -> Result<serde_json::Value, String> {
    client.get_json(&format!("/pyrsia/log/lookup?{query}"))
}

/// Where a verification stands in the log, as one line of progress.
fn stage(found: &serde_json::Value) -> Option<String> {
    if found["unverifiable"].as_bool() == Some(true) {
        return Some(format!(
            "unverifiable the builders never agreed: entry #{} (not served in verified mode)",
            found["dispute"]
        ));
    }
    if let Some(index) = found["dispute"].as_u64() {
        return Some(format!(
            "disputed     the first builders disagree: entry #{index}; every member is asked"
        ));
    }
    found["request"].as_u64().map(|index| {
        format!("ordered      the request is entry #{index}; the selected members build it")
    })
}

/// Requests a package version from the node (which checks that its upstream lists it with
/// files it can check), then follows the log until it commits the version.
fn build_package(cmd: &BuildCmd, spec: &PackageSpec) -> Result<String, String> {
    let client = NodeClient::new(&cmd.node);
    let label = spec.label();
    let query = spec.lookup_query();
    if let Some(index) = lookup_json(&client, &query)?["commit"].as_u64() {
        return Ok(format!("committed    {label}: entry #{index} (already)"));
    }
    let requested = client.post_json(
        &format!("/pyrsia/packages/request?{}", spec.request_query()),
        None,
    )?;
    println!(
        "requested    {label} ({} file(s) upstream)",
        requested["files"].as_u64().unwrap_or(0)
    );
    follow(&client, cmd, &label, &label, &query)
}

fn build(cmd: &BuildCmd, image: &ImageRef<'_>) -> Result<String, String> {
    let client = NodeClient::new(&cmd.node);
    let name = format!("{}/{}", image.host, image.repository_path());
    let (reference, query) = match (image.digest, &image.tag) {
        (Some(digest), _) => (digest.to_string(), format!("name={name}&digest={digest}")),
        (None, Some(tag)) => (tag.to_string(), format!("name={name}&tag={tag}")),
        (None, None) => return Err("name a tag or a digest".into()),
    };
    if let (Some(digest), Some(index)) = lookup(&client, &query)? {
        return Ok(format!(
            "committed    {name}@{digest}: entry #{index} (already)"
        ));
    }
    let ns = if image.host.is_docker_hub() {
        String::new()
    } else {
        format!("?ns={}", image.host)
    };
    let accept = MediaType::PULLABLE.map(MediaType::as_str).join(", ");
    let path = format!("/v2/{}/manifests/{reference}{ns}", image.repository_path());
    match client.open(&path, &[("Accept", &accept)]) {
        Ok(_) => println!("requested    {name}:{reference} (the node fetched its manifest)"),
        // A --verified-only node refuses what is not committed yet, and queues it.
        Err(e) if e.contains("verification was requested") => {
            println!("requested    {name}:{reference} (the node serves verified images only)")
        }
        Err(e) => return Err(format!("the node could not fetch the manifest: {e}")),
    }
    follow(&client, cmd, &name, &format!("{name}:{reference}"), &query)
}

/// Follows the log's lookup (`query`) and the node's queue until `label` is committed,
/// found unverifiable, dropped by the builder, or the time runs out. An image's commit is
/// named `name@digest`.
fn follow(
    client: &NodeClient,
    cmd: &BuildCmd,
    name: &str,
    label: &str,
    query: &str,
) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(cmd.timeout);
    let stages = Stages::start();
    let outcome = follow_stages(client, cmd, (name, label, query), deadline, &stages);
    stages.finish();
    outcome
}

/// [`follow`]'s loop, showing stages and the bytes the node fetched (and verified as they
/// arrived) since the request, from its `/metrics`.
fn follow_stages(
    client: &NodeClient,
    cmd: &BuildCmd,
    (name, label, query): (&str, &str, &str),
    deadline: Instant,
    stages: &Stages,
) -> Result<String, String> {
    let mut last_pending = None;
    let mut last_stage = None;
    let mut idle = 0;
    let fetched_before = fetched_bytes(client);
    let mut last_fetched = (0, 0);
    loop {
        let found = lookup_json(client, query)?;
        if let Some(index) = found["commit"].as_u64() {
            return Ok(match found["digest"].as_str() {
                Some(digest) => format!("committed    {name}@{digest}: entry #{index}"),
                None => format!("committed    {label}: entry #{index}"),
            });
        }
        let now = stage(&found);
        if now.is_some() && now != last_stage {
            if let Some(line) = &now {
                stages.line(line);
            }
            last_stage = now;
        }
        if found["unverifiable"].as_bool() == Some(true) {
            return Err(format!("{label} is unverifiable"));
        }
        let pending = client
            .get_json("/status")
            .ok()
            .and_then(|s| s["log"]["pending_verifications"].as_u64());
        if pending != last_pending {
            if let Some(n) = pending {
                stages.line(&format!("verifying    {n} artifact(s) in the node's queue"));
            }
            last_pending = pending;
        }
        let (upstream, peers) = fetched_bytes(client);
        let fetched = (
            upstream.saturating_sub(fetched_before.0),
            peers.saturating_sub(fetched_before.1),
        );
        if fetched != last_fetched {
            let text = format!(
                "fetched      {} bytes (upstream {}, peers {}), hashed as they arrived",
                fetched.0 + fetched.1,
                fetched.0,
                fetched.1
            );
            if crate::progress::on_terminal() {
                stages.status(text);
            } else {
                println!("{text}");
            }
            last_fetched = fetched;
        }
        // The queue emptied without a commit: the builder failed (the node's log says why).
        idle = if pending == Some(0) { idle + 1 } else { 0 };
        if idle >= IDLE_POLLS {
            return Err(format!(
                "the node's builder finished without committing {label} (see the node's log)"
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!("{label} not committed after {} s", cmd.timeout));
        }
        std::thread::sleep(POLL);
    }
}

/// The node's upstream and peer byte counters (`/metrics`), or zeros when unreadable.
fn fetched_bytes(client: &NodeClient) -> (u64, u64) {
    let Ok(text) = client.get("/metrics") else {
        return (0, 0);
    };
    let text = String::from_utf8_lossy(&text);
    let counter = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    (
        counter("pyrsia_upstream_bytes_total "),
        counter("pyrsia_peer_bytes_total "),
    )
}
