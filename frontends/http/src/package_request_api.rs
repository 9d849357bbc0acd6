//! `POST /pyrsia/packages/request?ecosystem=pypi&name=N&version=V` (or `npm`, or `maven` with
//! `name=GROUP:ARTIFACT`): asks the node to verify a package version nobody downloaded yet, as
//! `pyrsia build npm|pypi|maven` does. It is
//! the request a download makes, without the download: a node serving `--verified-only` lists
//! only committed versions, so a client cannot name the files of a new one. The version must
//! exist upstream with at least one file the node can check, so that nobody fills the log
//! with requests for versions that do not exist.

use pyrsia_core::registry::{Code, OciError};
use pyrsia_core::tlog::entry::Coordinates;
use pyrsia_std::log::PackageJob;
use serde_json::json;

use crate::node::Node;

/// The endpoint's path.
pub(crate) const PATH: &str = "/pyrsia/packages/request";

const POST_ONLY: OciError =
    OciError::new(Code::Unsupported, "request a verification with POST").with_status(405);
const BAD_COORDINATES: OciError = OciError::new(
    Code::NameInvalid,
    "ecosystem must be npm, pypi or maven, with a name and a version valid in it (PyPI: normalised name, lower-case version; Maven: GROUP:ARTIFACT and a release version)",
)
.with_status(400);

/// Requests the verification of the version `query` names; answers what was requested.
pub(crate) fn request(
    node: &Node,
    request: &tiny_http::Request,
    query: &str,
) -> Result<Vec<u8>, OciError> {
    if *request.method() != tiny_http::Method::Post {
        return Err(POST_ONLY);
    }
    let value = |key: &str| crate::log_api::text(query, key).ok();
    let (Some(ecosystem), Some(name), Some(version)) =
        (value("ecosystem"), value("name"), value("version"))
    else {
        return Err(BAD_COORDINATES);
    };
    let coordinates = Coordinates {
        ecosystem: &ecosystem,
        name: &name,
        version: &version,
    };
    let job = PackageJob::from_coordinates(&coordinates).ok_or(BAD_COORDINATES)?;
    match node.packages.checkable_files(&job) {
        Ok(0) => Err(OciError::new(
            Code::ManifestUnknown,
            "the upstream lists no file of that version with a digest this node can check",
        )
        .with_status(404)),
        Ok(files) => {
            node.request_package_verification(job);
            Ok(json!({
                "ecosystem": ecosystem,
                "name": name,
                "version": version,
                "files": files,
                "requested": true,
            })
            .to_string()
            .into_bytes())
        }
        Err(why) => {
            tracing::info!(%ecosystem, %name, %version, %why, "cannot request a package verification");
            Err(OciError::new(
                Code::ManifestUnknown,
                "the upstream does not list that version (or cannot be reached)",
            )
            .with_status(404))
        }
    }
}
