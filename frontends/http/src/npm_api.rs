//! The npm registry API on the node's port, for npm, pnpm and yarn
//! (`npm config set registry http://NODE/npm/`):
//!
//! - `GET /npm/{name}` (`@scope%2fname` for scoped packages): the packument, full or
//!   abbreviated by `Accept`, every `dist.tarball` on this node and nothing else changed;
//! - `GET /npm/{name}/-/{file}.tgz`: the tarball, checked against its `dist.integrity`
//!   before it is stored or served.
//!
//! When the upstream is down the last packument seen is served with `Warning: 110`. Errors
//! are npm's JSON `{"error": "…"}`.

use pyrsia_core::package::NpmName;
use pyrsia_core::package::npm_registry::PackumentFormat;
use pyrsia_core::tlog::coordinates::subject;
use pyrsia_core::tlog::entry::ECOSYSTEM_NPM;
use pyrsia_std::log::{PackageJob, PackageTags};
use pyrsia_std::packages::{PackageBlob, PackageError};
use tiny_http::Request;

use crate::handler::Reply;
use crate::node::Node;

/// Where the npm API lives on the node's port.
pub(crate) const PREFIX: &str = "/npm/";

/// Answers a request whose path starts with [`PREFIX`] (`rest` is what follows it).
pub(crate) fn respond(node: &Node, request: &Request, rest: &str) -> Reply {
    if !matches!(
        request.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    ) {
        return error(405, "this registry mirror is read-only");
    }
    let header = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str())
    };
    if let Some((name, file)) = rest.split_once("/-/") {
        return tarball(node, name, file);
    }
    let name = match NpmName::parse_path(rest) {
        Ok(name) => name,
        Err(e) => return error(404, &format!("{rest:?}: {e}")),
    };
    let format = PackumentFormat::negotiate(header("Accept"));
    match node.npm.packument(&name, format) {
        Ok(mut document) => {
            // Once per fetch from the upstream, not on every hit of the TTL memory.
            if document.fetched {
                node.observe_package_tags(PackageTags::npm(&name, &document.packument));
            }
            if node.verified_only {
                // Only the versions the log committed (their tarball's bytes are checked
                // against the commit when downloaded).
                // Its dist-tags are the ones the log observed (f+1 members saw them), not
                // the upstream's current ones.
                let subject = subject(ECOSYSTEM_NPM, &name.to_string()).into_owned();
                document.packument = std::sync::Arc::new(
                    document
                        .packument
                        .only_versions(|t| {
                            node.log.find_commit(&subject, &t.version).is_some()
                                && t.file().is_some_and(|file| {
                                    node.may_serve_reproduced(
                                        &PackageJob::npm(&name, &t.version),
                                        file,
                                    )
                                })
                        })
                        .with_dist_tags(&node.log.package_tags(&subject)),
                );
            }
            // Tarball URLs must be absolute for npm: this node, as the client reached it.
            let base = header("Host").map_or_else(String::new, |host| format!("http://{host}"));
            let path = name.path_form().to_string();
            let body = document
                .packument
                .with_tarballs_at(|file| format!("{base}{PREFIX}{path}/-/{file}"));
            let mut reply = Reply::bytes(200, format.media_type(), body);
            reply.headers.push(("Vary", "Accept".to_string()));
            if document.stale {
                reply.headers.push((
                    "Warning",
                    "110 pyrsia \"Response is Stale\" (the upstream registry is unreachable)"
                        .to_string(),
                ));
            }
            reply
        }
        Err(e) => npm_error(&e),
    }
}

fn tarball(node: &Node, name: &str, file: &str) -> Reply {
    let name = match NpmName::parse_path(name) {
        Ok(name) => name,
        Err(e) => return error(404, &format!("{name:?}: {e}")),
    };
    // Only `{name}-{version}.tgz` names a tarball: anything else is refused before the
    // upstream is asked.
    let version = match name.tarball_version(file) {
        Some(version) if !file.contains('/') => version,
        _ => return error(404, &format!("{file:?} is not a tarball of {name}")),
    };
    let release = PackageJob::npm(&name, version.as_str());
    match node.npm.tarball(&name, file) {
        Ok(PackageBlob { digest, blob }) => {
            let verified = node.may_serve_package(&release, &digest);
            let reproduced = node.may_serve_reproduced(&release, file);
            node.request_rebuild(&release);
            node.request_package_verification(release);
            if !verified {
                return error(
                    404,
                    "not committed to the transparency log (node serves verified content only); verification was requested",
                );
            }
            if !reproduced {
                return error(
                    404,
                    "not reproduced by repacking its contents (node serves reproduced releases only: see `pyrsia verify npm`)",
                );
            }
            Reply::immutable_file("application/octet-stream", blob)
        }
        Err(e) => npm_error(&e),
    }
}

fn npm_error(e: &PackageError) -> Reply {
    error(e.status(), &e.to_string())
}

fn error(status: u16, message: &str) -> Reply {
    let body = serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default();
    Reply::bytes(status, "application/json", body)
}
