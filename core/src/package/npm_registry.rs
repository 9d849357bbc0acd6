//! The npm registry's package documents ("packuments") and tarball integrity, as a mirror
//! needs them: the format a client asks for, every tarball URL pointed at the node with
//! nothing else changed, a tarball found by file name, and Subresource Integrity strings
//! (`sha512-…`) checked while the bytes stream.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use base64ct::{Base64, Encoding};
use serde_json::Value;

use crate::package::NpmVersion;
use sha2::{Digest as _, Sha256, Sha512};

/// The abbreviated ("corgi") packument media type npm and pnpm ask for when installing.
pub const NPM_ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// Which form of a packument a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackumentFormat {
    /// Every field of every version (`application/json`).
    Full,
    /// What installing needs ([`NPM_ABBREVIATED`]).
    Abbreviated,
}

impl PackumentFormat {
    /// The form an `Accept` header asks for: abbreviated when it names [`NPM_ABBREVIATED`]
    /// with a weight above zero, else full.
    pub fn negotiate(accept: Option<&str>) -> PackumentFormat {
        let asks = accept.is_some_and(|accept| {
            accept.split(',').any(|item| {
                let mut parts = item.split(';');
                parts.next().is_some_and(|m| m.trim() == NPM_ABBREVIATED)
                    && !parts.any(|p| {
                        p.trim()
                            .strip_prefix("q=")
                            .and_then(|q| q.trim().parse::<f32>().ok())
                            .is_some_and(|q| q <= 0.0)
                    })
            })
        });
        if asks {
            PackumentFormat::Abbreviated
        } else {
            PackumentFormat::Full
        }
    }

    /// The `Accept` to send upstream for this form, and the `Content-Type` to answer with.
    pub const fn media_type(self) -> &'static str {
        match self {
            PackumentFormat::Full => "application/json",
            PackumentFormat::Abbreviated => NPM_ABBREVIATED,
        }
    }
}

/// Why a packument was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackumentError {
    /// Not JSON, or not an object with a `versions` object.
    NotAPackument(String),
    /// A version's `dist.tarball` is missing or not a URL with a file name.
    Tarball(String),
}

impl fmt::Display for PackumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackumentError::NotAPackument(why) => write!(f, "not an npm packument: {why}"),
            PackumentError::Tarball(version) => {
                write!(
                    f,
                    "version {version} of the packument has no usable dist.tarball"
                )
            }
        }
    }
}

impl core::error::Error for PackumentError {}

/// A tarball a packument lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarballRef {
    /// The version it is the tarball of.
    pub version: String,
    /// Where the upstream serves it.
    pub url: String,
    /// Its `dist.integrity`, when given.
    pub integrity: Option<Integrity>,
}

impl TarballRef {
    /// The tarball's file name (`name-1.0.0.tgz`), the last segment of its URL.
    pub fn file(&self) -> Option<&str> {
        file_name(&self.url)
    }
}

/// The largest `package.json` read from a committed tarball.
pub const PACKAGE_JSON_LEN_MAX: usize = 1 << 20;

/// The `package.json` fields a packument's version manifest carries: what npm, pnpm and yarn
/// read to resolve and install a version (the registry copies them at publish time).
const MANIFEST_FIELDS: [&str; 16] = [
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bundleDependencies",
    "bundledDependencies",
    "acceptDependencies",
    "bin",
    "directories",
    "engines",
    "os",
    "cpu",
    "deprecated",
    "license",
    "main",
];

/// Why a committed tarball's `package.json` makes no version manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not a JSON object, or longer than [`PACKAGE_JSON_LEN_MAX`].
    NotJson,
    /// Its `name` or `version` is not the committed coordinates'.
    OtherPackage,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ManifestError::NotJson => "package.json is not a JSON object of bounded size",
            ManifestError::OtherPackage => {
                "package.json names another package or version than the commit"
            }
        })
    }
}

impl core::error::Error for ManifestError {}

/// The version manifest of `name@version` made from its tarball's `package.json`: the fields
/// npm installs by ([`MANIFEST_FIELDS`]) as the publisher shipped them, and `dist` with the
/// tarball `file` (`name-1.0.0.tgz`), its `integrity` and `shasum`
/// ([`TarballDigests`]). What a node serves for a committed version when it has no packument
/// from the upstream; a `package.json` of another package or version is refused.
pub fn version_manifest(
    package_json: &[u8],
    name: &str,
    version: &str,
    file: &str,
    digests: &(String, String),
) -> Result<Value, ManifestError> {
    if package_json.len() > PACKAGE_JSON_LEN_MAX {
        return Err(ManifestError::NotJson);
    }
    let document: Value =
        serde_json::from_slice(package_json).map_err(|_| ManifestError::NotJson)?;
    let fields = document.as_object().ok_or(ManifestError::NotJson)?;
    if fields.get("name").and_then(Value::as_str) != Some(name)
        || fields.get("version").and_then(Value::as_str) != Some(version)
    {
        return Err(ManifestError::OtherPackage);
    }
    let mut manifest = serde_json::Map::new();
    manifest.insert("name".into(), Value::String(name.into()));
    manifest.insert("version".into(), Value::String(version.into()));
    for field in MANIFEST_FIELDS {
        if let Some(value) = fields.get(field) {
            manifest.insert(field.into(), value.clone());
        }
    }
    let (integrity, shasum) = digests;
    manifest.insert(
        "dist".into(),
        serde_json::json!({
            "tarball": alloc::format!("{name}/-/{file}"),
            "integrity": integrity,
            "shasum": shasum,
        }),
    );
    Ok(Value::Object(manifest))
}

/// A tarball's `dist.integrity` (a sha512 Subresource Integrity string) and `dist.shasum`
/// (sha1, lower-case hex), computed as its bytes stream.
#[derive(Clone, Default)]
pub struct TarballDigests {
    sha512: Sha512,
    sha1: sha1::Sha1,
}

impl TarballDigests {
    /// A fresh pair of hashes.
    pub fn new() -> TarballDigests {
        TarballDigests::default()
    }

    /// Feeds the next bytes of the tarball.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha512.update(bytes);
        self.sha1.update(bytes);
    }

    /// The integrity and the shasum.
    pub fn finish(self) -> (String, String) {
        let mut buf = [0u8; 128];
        let sha512 = self.sha512.finalize();
        let integrity = match Base64::encode(&sha512, &mut buf) {
            Ok(encoded) => alloc::format!("sha512-{encoded}"),
            Err(_) => String::new(),
        };
        let shasum = self
            .sha1
            .finalize()
            .iter()
            .map(|b| alloc::format!("{b:02x}"))
            .collect();
        (integrity, shasum)
    }
}

/// The most dist-tags of one packument the node observes in the log.
pub const DIST_TAGS_OBSERVED_MAX: usize = 8;

/// A parsed packument.
#[derive(Clone, Debug, PartialEq)]
pub struct Packument {
    document: Value,
}

impl Packument {
    /// Reads a packument as the registry sent it.
    pub fn parse(bytes: &[u8]) -> Result<Packument, PackumentError> {
        let document: Value = serde_json::from_slice(bytes)
            .map_err(|e| PackumentError::NotAPackument(e.to_string()))?;
        if !document["versions"].is_object() {
            return Err(PackumentError::NotAPackument("no versions object".into()));
        }
        Ok(Packument { document })
    }

    /// Every tarball listed, in version order as the document gives them.
    pub fn tarballs(&self) -> Result<Vec<TarballRef>, PackumentError> {
        let Some(versions) = self.document["versions"].as_object() else {
            return Ok(Vec::new());
        };
        versions
            .iter()
            .map(|(version, manifest)| {
                let dist = &manifest["dist"];
                let url = dist["tarball"]
                    .as_str()
                    .filter(|url| file_name(url).is_some())
                    .ok_or_else(|| PackumentError::Tarball(version.clone()))?;
                Ok(TarballRef {
                    version: version.clone(),
                    url: url.to_string(),
                    integrity: dist["integrity"]
                        .as_str()
                        .and_then(|sri| Integrity::parse(sri).ok()),
                })
            })
            .collect()
    }

    /// The tarball of `version`, if the packument lists it: what an `npm-fetch/v1` builder
    /// fetches (and only with an integrity to check it against).
    pub fn version_tarball(&self, version: &str) -> Option<TarballRef> {
        self.tarballs()
            .ok()?
            .into_iter()
            .find(|t| t.version == version)
    }

    /// The version of the npm CLI that published `version` (its manifest's `_npmVersion`, in
    /// the full packument only), if it is a plain version: the `npm pack` an `npm-rebuild/v1`
    /// rebuilder repacks with.
    pub fn publishing_npm(&self, version: &str) -> Option<&str> {
        self.document["versions"][version]["_npmVersion"]
            .as_str()
            .filter(|v| crate::package::NpmVersion::parse(v).is_ok())
    }

    /// The tarball whose URL ends in `file` (`name-1.0.0.tgz`).
    pub fn tarball(&self, file: &str) -> Option<TarballRef> {
        self.tarballs()
            .ok()?
            .into_iter()
            .find(|t| file_name(&t.url) == Some(file))
    }

    /// A packument of `name` listing `manifests` (version, [`version_manifest`]), with the
    /// `dist_tags` that name a listed version: what a node serves from the log when it has
    /// no packument from the upstream.
    pub fn from_manifests(
        name: &str,
        manifests: Vec<(String, Value)>,
        dist_tags: &[(String, String)],
    ) -> Packument {
        let versions: serde_json::Map<String, Value> = manifests.into_iter().collect();
        let document = serde_json::json!({ "name": name, "versions": versions });
        Packument { document }.with_dist_tags(dist_tags)
    }

    /// The dist-tags the log may record: (tag, version) for each tag in the dist-tag grammar
    /// ([`crate::package::is_dist_tag`]) naming a semver version, `latest` first, then in
    /// document order, at most [`DIST_TAGS_OBSERVED_MAX`] (a packument with hundreds of
    /// tags costs the members a bounded number of lookups).
    pub fn dist_tags(&self) -> Vec<(String, String)> {
        let Some(tags) = self.document["dist-tags"].as_object() else {
            return Vec::new();
        };
        let mut found: Vec<(String, String)> = tags
            .iter()
            .filter_map(|(tag, version)| {
                let version = version.as_str()?;
                (crate::package::is_dist_tag(tag) && NpmVersion::parse(version).is_ok())
                    .then(|| (tag.clone(), version.to_string()))
            })
            .collect();
        found.sort_by_key(|(tag, _)| tag != "latest");
        found.truncate(DIST_TAGS_OBSERVED_MAX);
        found
    }

    /// The version dist-tag `tag` names, if the packument sets it.
    pub fn dist_tag(&self, tag: &str) -> Option<&str> {
        self.document["dist-tags"][tag].as_str()
    }

    /// The packument without the versions `keep` refuses, and without the dist-tags that
    /// pointed at them (a `latest` naming a version that is not listed makes npm fail rather
    /// than choose another): what a `--verified-only` node lists.
    pub fn only_versions(&self, keep: impl Fn(&TarballRef) -> bool) -> Packument {
        let kept: Vec<String> = self
            .tarballs()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| keep(t))
            .map(|t| t.version)
            .collect();
        let mut document = self.document.clone();
        if let Some(versions) = document["versions"].as_object_mut() {
            versions.retain(|version, _| kept.contains(version));
        }
        if let Some(tags) = document["dist-tags"].as_object_mut() {
            tags.retain(|_, version| {
                version
                    .as_str()
                    .is_some_and(|v| kept.iter().any(|k| k == v))
            });
        }
        Packument { document }
    }

    /// The packument with its dist-tags set to `tags` (tag, version), keeping only those
    /// naming a version it lists: what a `--verified-only` node serves, with the tags the log
    /// observed instead of the upstream's current ones.
    pub fn with_dist_tags(&self, tags: &[(String, String)]) -> Packument {
        let mut document = self.document.clone();
        let listed = |version: &str| document["versions"].get(version).is_some();
        let kept: serde_json::Map<String, Value> = tags
            .iter()
            .filter(|(_, version)| listed(version))
            .map(|(tag, version)| (tag.clone(), Value::String(version.clone())))
            .collect();
        document["dist-tags"] = Value::Object(kept);
        Packument { document }
    }

    /// The document with every `dist.tarball` replaced by `url_for(file name)`; integrity,
    /// shasum and everything else are left exactly as they were.
    pub fn with_tarballs_at(&self, url_for: impl Fn(&str) -> String) -> Vec<u8> {
        let mut document = self.document.clone();
        if let Some(versions) = document["versions"].as_object_mut() {
            for manifest in versions.values_mut() {
                let dist = &mut manifest["dist"];
                if let Some(file) = dist["tarball"].as_str().and_then(file_name) {
                    dist["tarball"] = Value::String(url_for(file));
                }
            }
        }
        serde_json::to_vec(&document).unwrap_or_default()
    }
}

/// The last path segment of a URL, if it names a `.tgz` file.
fn file_name(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    let file = path.rsplit('/').next()?;
    (file.len() > 4 && file.ends_with(".tgz") && !file.contains('%')).then_some(file)
}

/// A Subresource Integrity value: the strongest hash it lists (sha512 over sha256 over sha1
/// and anything else, which is ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Integrity {
    /// `sha512-…`
    Sha512([u8; 64]),
    /// `sha256-…`
    Sha256([u8; 32]),
}

/// Why an integrity string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntegrityError;

impl fmt::Display for IntegrityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no sha512 or sha256 value in the integrity string")
    }
}

impl core::error::Error for IntegrityError {}

impl Integrity {
    /// Parses `sha512-BASE64` (space-separated alternatives allowed, options after `?`
    /// ignored), keeping the strongest hash.
    pub fn parse(sri: &str) -> Result<Integrity, IntegrityError> {
        let mut best = None;
        for token in sri.split_ascii_whitespace() {
            let token = token.split('?').next().unwrap_or("");
            let Some((algorithm, value)) = token.split_once('-') else {
                continue;
            };
            let mut buf = [0u8; 64];
            let candidate = match algorithm {
                "sha512" => match Base64::decode(value, &mut buf) {
                    Ok(bytes) if bytes.len() == 64 => Some(Integrity::Sha512(buf)),
                    _ => None,
                },
                "sha256" => match Base64::decode(value, &mut buf) {
                    Ok(bytes) if bytes.len() == 32 => {
                        let mut hash = [0u8; 32];
                        hash.copy_from_slice(bytes);
                        Some(Integrity::Sha256(hash))
                    }
                    _ => None,
                },
                _ => None,
            };
            best = match (best, candidate) {
                (Some(Integrity::Sha512(h)), _) => Some(Integrity::Sha512(h)),
                (_, Some(c)) => Some(c),
                (b, None) => b,
            };
        }
        best.ok_or(IntegrityError)
    }

    /// A hasher that checks streamed bytes against this value.
    pub fn checker(&self) -> IntegrityChecker {
        match self {
            Integrity::Sha512(expected) => IntegrityChecker::Sha512(Sha512::new(), *expected),
            Integrity::Sha256(expected) => IntegrityChecker::Sha256(Sha256::new(), *expected),
        }
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 88];
        let (algorithm, bytes): (&str, &[u8]) = match self {
            Integrity::Sha512(h) => ("sha512", h),
            Integrity::Sha256(h) => ("sha256", h),
        };
        let encoded = Base64::encode(bytes, &mut buf).map_err(|_| fmt::Error)?;
        write!(f, "{algorithm}-{encoded}")
    }
}

/// Checks streamed bytes against an [`Integrity`]; see [`Integrity::checker`].
#[derive(Clone, Debug)]
pub enum IntegrityChecker {
    /// Hashing with sha512.
    Sha512(Sha512, [u8; 64]),
    /// Hashing with sha256.
    Sha256(Sha256, [u8; 32]),
}

impl IntegrityChecker {
    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            IntegrityChecker::Sha512(hasher, _) => hasher.update(bytes),
            IntegrityChecker::Sha256(hasher, _) => hasher.update(bytes),
        }
    }

    /// Whether everything fed matches.
    pub fn matches(self) -> bool {
        match self {
            IntegrityChecker::Sha512(hasher, expected) => hasher.finalize()[..] == expected[..],
            IntegrityChecker::Sha256(hasher, expected) => hasher.finalize()[..] == expected[..],
        }
    }
}
