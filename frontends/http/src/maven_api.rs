//! The Maven repository layout on the node's port, for Maven, Gradle and sbt (a `<mirror>`
//! in `settings.xml` with `<url>http://NODE/maven2/</url>`):
//!
//! - `GET /maven2/{group path}/{artifact}/{version}/{file}`: a release artifact (any
//!   classifier and extension), checked against the strongest checksum file the upstream
//!   publishes before it is stored or served;
//! - checksum files, `.asc` signatures, `maven-metadata.xml` and snapshot files: as the
//!   upstream serves them, the last one seen when it is down (`Warning: 110`).
//!
//! The layout is read by `pyrsia_core::package::MavenPath`: anything else is refused before the
//! upstream is asked. Errors are plain text, as repository managers answer.

use pyrsia_core::package::MavenPath;
use pyrsia_std::maven::Served;
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
        return text(
            404,
            "not committed to the transparency log (node serves verified content only; Maven artifacts are not in the log yet)",
        );
    }
    match node.maven.get(rest, &parsed) {
        Ok(Served::Artifact(file)) => Reply::immutable_file(content_type(rest), file.blob),
        Ok(Served::Document(document)) => {
            let mut reply = Reply::bytes(200, content_type(rest), document.bytes);
            if document.stale {
                reply.headers.push((
                    "Warning",
                    "110 pyrsia \"Response is Stale\" (the upstream repository is unreachable)"
                        .to_string(),
                ));
            }
            reply
        }
        Err(e) => text(e.status(), &e.to_string()),
    }
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
