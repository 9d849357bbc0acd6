//! The Maven repository layout on the node's port, for Maven, Gradle and sbt (a `<mirror>`
//! in `settings.xml` with `<url>http://NODE/maven2/</url>`):
//!
//! - `GET /maven2/{group path}/{artifact}/{version}/{file}`: a release artifact (any
//!   classifier and extension), checked against the strongest checksum file the upstream
//!   publishes before it is stored or served;
//! - checksum files, `.asc` signatures, `maven-metadata.xml` and snapshot files: as the
//!   upstream serves them, the last one seen when it is down (`Warning: 110`).
//!
//! Serving a release's file asks for the release to be verified and committed to the log
//! (`maven-fetch/v1`: its pom and main artifact). With `--verified-only` the node serves a
//! release file only when the release's commit lists its sha256, and the checksum files of
//! such a file are computed from the stored bytes; an artifact's `maven-metadata.xml` lists
//! only committed versions (core's `maven_metadata::only_versions`, its checksum files made
//! from the filtered document); signatures, snapshots and files no commit covers
//! (classifiers) are refused.
//!
//! The layout is read by `pyrsia_core::package::MavenPath`: anything else is refused before the
//! upstream is asked. Errors are plain text, as repository managers answer.

use pyrsia_core::package::maven_checksum::ChecksumWriter;
use pyrsia_core::package::maven_metadata::{artifact_of, only_versions};
use pyrsia_core::package::{Checksum, MavenPath};
use pyrsia_core::tlog::coordinates::subject;
use pyrsia_core::tlog::entry::ECOSYSTEM_MAVEN;
use pyrsia_std::log::{PackageJob, PackageTags};
use pyrsia_std::maven::Served;
use pyrsia_std::packages::FileSource;
use tiny_http::Request;

use crate::handler::Reply;
use crate::node::Node;

/// Where the Maven repository lives on the node's port.
pub(crate) const PREFIX: &str = "/maven2/";

/// Answers a request whose path starts with [`PREFIX`] (`rest` is what follows it).
pub(crate) fn respond(node: &Node, request: &Request, rest: &str) -> Reply {
    if !matches!(
        request.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    ) {
        return text(405, "this repository mirror is read-only");
    }
    let parsed = match MavenPath::parse(rest) {
        Ok(parsed) => parsed,
        Err(e) => return text(404, &format!("{rest:?}: {e}")),
    };
    if node.verified_only {
        return verified_only(node, rest, &parsed);
    }
    match node.maven.get(rest, &parsed) {
        Ok(Served::Artifact(file)) => {
            if let MavenPath::Artifact { gav, .. } = &parsed
                && let Some(release) = PackageJob::maven(gav)
            {
                node.request_package_verification(release);
            }
            Reply::immutable_file(content_type(rest), file.blob)
        }
        Ok(Served::Document(document)) => {
            if let MavenPath::Metadata {
                directory,
                checksum: None,
            } = &parsed
                && document.fetched
                && let Some(tags) = artifact_of(directory)
                    .and_then(|name| PackageTags::maven(&name, &document.bytes))
            {
                node.observe_package_tags(tags);
            }
            marked_stale(
                Reply::bytes(200, content_type(rest), document.bytes),
                document.stale,
            )
        }
        Err(e) => text(e.status(), &e.to_string()),
    }
}

/// A `--verified-only` answer: a release file whose sha256 the release's commit lists, or a
/// checksum of one computed from its stored bytes; nothing else.
fn verified_only(node: &Node, path: &str, parsed: &MavenPath<'_>) -> Reply {
    const REFUSED: &str =
        "not committed to the transparency log (node serves verified content only)";
    if let MavenPath::Metadata {
        directory,
        checksum,
    } = parsed
    {
        return committed_metadata(node, path, directory, *checksum);
    }
    let MavenPath::Artifact {
        gav,
        snapshot: None,
        checksum,
        signature: false,
    } = parsed
    else {
        return text(
            404,
            &format!("{REFUSED}: signatures and snapshots are not committed"),
        );
    };
    let Some(release) = PackageJob::maven(gav) else {
        return text(404, &format!("{REFUSED}: a snapshot is never committed"));
    };
    let artifact_path = match checksum {
        Some(algorithm) => &path[..path.len() - algorithm.suffix().len()],
        None => path,
    };
    let file = match node
        .maven
        .artifact(artifact_path, FileSource::PeersThenUpstream)
    {
        Ok(file) => file,
        Err(e) => return text(e.status(), &e.to_string()),
    };
    let verified = node.may_serve_package(&release, &file.digest);
    node.request_package_verification(release);
    if !verified {
        return text(
            404,
            &format!("{REFUSED}; verification of the release was requested"),
        );
    }
    match checksum {
        None => Reply::immutable_file(content_type(path), file.blob),
        Some(algorithm) => match pyrsia_std::maven::checksum_of(&file, *algorithm) {
            Ok(hex) => Reply::bytes(200, "text/plain", hex.into_bytes()),
            Err(e) => text(e.status(), &e.to_string()),
        },
    }
}

/// An artifact's `maven-metadata.xml` (or its checksum) listing only the versions the log
/// committed; the metadata of a snapshot directory, or one this node cannot read, is refused.
fn committed_metadata(
    node: &Node,
    path: &str,
    directory: &str,
    checksum: Option<Checksum>,
) -> Reply {
    if directory.ends_with("-SNAPSHOT") {
        return text(404, "a snapshot's metadata is never committed");
    }
    let Some(name) = artifact_of(directory) else {
        return text(404, "not an artifact's metadata");
    };
    let document_path = match checksum {
        Some(algorithm) => &path[..path.len() - algorithm.suffix().len()],
        None => path,
    };
    let document = match node.maven.get(
        document_path,
        &MavenPath::Metadata {
            directory,
            checksum: None,
        },
    ) {
        Ok(Served::Document(document)) => document,
        Ok(Served::Artifact(_)) => return text(404, "not an artifact's metadata"),
        Err(e) => return text(e.status(), &e.to_string()),
    };
    let subject = subject(ECOSYSTEM_MAVEN, &name);
    let filtered = match only_versions(&document.bytes, |version| {
        node.log.find_commit(&subject, version).is_some()
    }) {
        Ok(filtered) => filtered,
        Err(e) => return text(404, &format!("{name}'s metadata: {e}")),
    };
    let (content_type, body) = match checksum {
        None => ("text/xml", filtered),
        Some(algorithm) => match ChecksumWriter::new(algorithm) {
            Some(mut writer) => {
                writer.update(&filtered);
                ("text/plain", writer.finish().as_bytes().to_vec())
            }
            None => return text(404, "md5 checksums are not made by this node"),
        },
    };
    marked_stale(Reply::bytes(200, content_type, body), document.stale)
}

/// `reply` with `Warning: 110` when what it carries is the last document seen, not a fresh one.
fn marked_stale(mut reply: Reply, stale: bool) -> Reply {
    if stale {
        reply.headers.push((
            "Warning",
            "110 pyrsia \"Response is Stale\" (the upstream repository is unreachable)".to_string(),
        ));
    }
    reply
}

fn content_type(path: &str) -> &'static str {
    if path.ends_with(".pom") || path.ends_with(".xml") {
        "text/xml"
    } else if path.ends_with(".jar") {
        "application/java-archive"
    } else if [".sha1", ".sha256", ".sha512", ".md5", ".asc"]
        .iter()
        .any(|s| path.ends_with(s))
    {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}

fn text(status: u16, message: &str) -> Reply {
    Reply::bytes(
        status,
        "text/plain; charset=utf-8",
        format!("{message}\n").into_bytes(),
    )
}
