//! The PyPI simple repository API on the node's port, for pip, uv and other installers
//! (`--index-url http://NODE/pypi/simple/`):
//!
//! - `GET /pypi/simple/`: the projects this node holds pages of;
//! - `GET /pypi/simple/{project}/`: the project's page, PEP 691 JSON or PEP 503 HTML by
//!   `Accept` (`Vary: Accept`), every file's URL on this node; a name that is not normalised
//!   is redirected to the normalised one;
//! - `GET /pypi/files/{project}/{file}` (and `{file}.metadata`): the file, checked against the
//!   sha256 its page gives before it is stored or served.
//!
//! When the upstream is down the last page seen is served with `Warning: 110`.

use std::collections::HashMap;

use pyrsia_core::digest::Digest;
use pyrsia_core::package::rebuild_pypi::is_pure_wheel;
use pyrsia_core::package::simple::{IndexFormat, render_root};
use pyrsia_core::package::{DistFile, ProjectName};
use pyrsia_std::log::PackageJob;
use pyrsia_std::packages::{PackageBlob, PackageError};
use pyrsia_std::pypi::Resource;
use tiny_http::Request;

use crate::handler::Reply;
use crate::node::Node;

/// Where the PyPI API lives on the node's port.
pub(crate) const PREFIX: &str = "/pypi/";

/// Answers a request whose path starts with [`PREFIX`] (`rest` is what follows it).
pub(crate) fn respond(node: &Node, request: &Request, rest: &str) -> Reply {
    if !matches!(
        request.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    ) {
        return text(405, "the PyPI simple API is read-only");
    }
    let accept = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Accept"))
        .map(|h| h.value.as_str());
    let format = IndexFormat::negotiate(accept);
    if rest == "simple/" || rest == "simple" {
        let projects = node.pypi.known_projects();
        let body = render_root(format, &projects, |p| format!("{PREFIX}simple/{p}/"));
        return page_reply(format, body, false);
    }
    if let Some(name) = rest.strip_prefix("simple/") {
        return project_page(node, name, format);
    }
    if let Some(path) = rest.strip_prefix("files/") {
        return file(node, path);
    }
    text(404, "no such PyPI endpoint (the index is at /pypi/simple/)")
}

fn project_page(node: &Node, name: &str, format: IndexFormat) -> Reply {
    let (name, slash) = match name.strip_suffix('/') {
        Some(name) => (name, true),
        None => (name, false),
    };
    let project = match ProjectName::parse(name) {
        Ok(project) => project,
        Err(e) => return text(404, &format!("{name:?}: {e}")),
    };
    // PEP 503: one URL per project, the normalised name with a trailing slash.
    if !slash || !project.is_normalized() {
        let mut reply = text(301, "moved to the normalised project URL");
        reply.headers.push((
            "Location",
            format!("{PREFIX}simple/{}/", project.normalized()),
        ));
        return reply;
    }
    match node.pypi.project(&project) {
        Ok(mut page) => {
            // Metadata is offered only where its hash is known: only checked files are served.
            for file in &mut page.index.files {
                if file.metadata == Some(None) {
                    file.metadata = None;
                }
            }
            if node.verified_only {
                // Only the files a commit of their release lists; no metadata, which no
                // commit covers (installers read it from the verified file instead).
                // Each release's commit is read once, however many files it has.
                let mut committed: HashMap<String, Option<Vec<Digest>>> = HashMap::new();
                page.index.files.retain(|file| {
                    let (Ok(dist), Some(digest)) =
                        (DistFile::parse_for(&project, &file.filename), file.sha256)
                    else {
                        return false;
                    };
                    let release = PackageJob::pypi(&dist);
                    committed
                        .entry(release.version.clone())
                        .or_insert_with(|| node.committed_outputs(&release))
                        .as_ref()
                        .is_some_and(|outputs| outputs.contains(&digest))
                });
                for file in &mut page.index.files {
                    file.metadata = None;
                }
                if node.reproduced_only {
                    page.index.files.retain(|file| {
                        DistFile::parse_for(&project, &file.filename).is_ok_and(|dist| {
                            node.may_serve_reproduced(&PackageJob::pypi(&dist), &file.filename)
                        })
                    });
                }
            }
            let normal = project.normalized();
            let body = page.index.render(format, |file| {
                format!("{PREFIX}files/{normal}/{}", file.filename)
            });
            page_reply(format, body, page.stale)
        }
        Err(e) => error(&e),
    }
}

fn file(node: &Node, path: &str) -> Reply {
    let Some((name, filename)) = path.split_once('/') else {
        return text(404, "expected /pypi/files/{project}/{file}");
    };
    let project = match ProjectName::parse(name) {
        Ok(project) => project,
        Err(e) => return text(404, &format!("{name:?}: {e}")),
    };
    if filename.is_empty() || filename.contains('/') {
        return text(404, "expected /pypi/files/{project}/{file}");
    }
    let (filename, resource) = match filename.strip_suffix(".metadata") {
        Some(file) => (file, Resource::Metadata),
        None => (filename, Resource::File),
    };
    // Only a wheel or sdist of this project is looked up: anything else is refused before
    // the upstream is asked.
    let (release, pure_wheel) = match DistFile::parse_for(&project, filename) {
        Ok(dist) => (PackageJob::pypi(&dist), is_pure_wheel(&dist)),
        Err(e) => return text(404, &format!("{filename:?}: {e}")),
    };
    if node.verified_only && resource == Resource::Metadata {
        return text(
            404,
            "metadata is not covered by the transparency log (node serves verified content only)",
        );
    }
    match node.pypi.file(&project, filename, resource) {
        Ok(PackageBlob { digest, blob }) => {
            if resource == Resource::File {
                let verified = node.may_serve_package(&release, &digest);
                let reproduced = node.may_serve_reproduced(&release, filename);
                if pure_wheel {
                    node.request_rebuild(&release);
                }
                node.request_package_verification(release);
                if !verified {
                    return text(
                        404,
                        "not committed to the transparency log (node serves verified content only); verification was requested",
                    );
                }
                if !reproduced {
                    return text(
                        404,
                        "not reproduced from its source (node serves reproduced releases only: see `pyrsia verify pypi`)",
                    );
                }
            }
            Reply::immutable_file(content_type(filename, resource), blob)
        }
        Err(e) => error(&e),
    }
}

fn content_type(filename: &str, resource: Resource) -> &'static str {
    match resource {
        Resource::Metadata => "text/plain; charset=utf-8",
        Resource::File if filename.ends_with(".tar.gz") => "application/gzip",
        Resource::File if filename.ends_with(".whl") || filename.ends_with(".zip") => {
            "application/zip"
        }
        Resource::File => "application/octet-stream",
    }
}

fn page_reply(format: IndexFormat, body: Vec<u8>, stale: bool) -> Reply {
    let mut reply = Reply::bytes(200, format.content_type(), body);
    reply.headers.push(("Vary", "Accept".to_string()));
    if stale {
        reply.headers.push((
            "Warning",
            "110 pyrsia \"Response is Stale\" (the upstream index is unreachable)".to_string(),
        ));
    }
    reply
}

fn error(e: &PackageError) -> Reply {
    text(e.status(), &e.to_string())
}

fn text(status: u16, message: &str) -> Reply {
    Reply::bytes(
        status,
        "text/plain; charset=utf-8",
        format!("{message}\n").into_bytes(),
    )
}
