//! Packages on the command line (`pyrsia build|verify|inspect-log npm|pypi --package …`,
//! `maven --gav …`): reading `NAME@VERSION` (npm), `NAME==VERSION` (PyPI) and
//! `GROUP:ARTIFACT:VERSION` (Maven) into log coordinates, and finding a version's files on a
//! node (its project page, packument or pom, through the node's own package API), for the
//! commands to request, hash and check.

use pyrsia_core::digest::Digest;
use pyrsia_core::package::maven_pom::{POM_LEN_MAX, release_files};
use pyrsia_core::package::npm_registry::Packument;
use pyrsia_core::package::simple::{IndexFormat, ProjectIndex, SIMPLE_JSON};
use pyrsia_core::package::{Gav, NpmName, NpmVersion, Pep440, ProjectName};
use pyrsia_core::tlog::coordinates::subject;
use pyrsia_core::tlog::entry::{Coordinates, ECOSYSTEM_MAVEN, ECOSYSTEM_NPM, ECOSYSTEM_PYPI};

use crate::client::NodeClient;

/// A package named on the command line, as the log's coordinates spell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PackageSpec {
    /// `npm`, `pypi` or `maven`.
    pub(crate) ecosystem: &'static str,
    /// The npm name, the normalised PyPI project name, or the Maven `GROUP:ARTIFACT`.
    pub(crate) name: String,
    /// The version, when one was named.
    pub(crate) version: Option<String>,
}

/// One file of a package version as the node serves it.
pub(crate) struct NodeFile {
    /// The file name.
    pub(crate) name: String,
    /// Its path on the node.
    pub(crate) path: String,
}

impl PackageSpec {
    /// Reads `--package` of `ecosystem`: `NAME@VERSION` or `@scope/NAME@VERSION` for npm,
    /// `NAME==VERSION` for PyPI (the name is normalised, the version lower-cased as file
    /// names spell it), `--gav GROUP:ARTIFACT:VERSION` for Maven (a release version); the
    /// version may be left out where `versioned` is false.
    pub(crate) fn parse(ecosystem: &str, text: &str, versioned: bool) -> Result<Self, String> {
        let (ecosystem, name, version) = match ecosystem {
            "npm" => {
                // The version follows the last '@' that is not the scope's.
                let (name, version) = match text.get(1..).and_then(|t| t.rfind('@')) {
                    Some(at) => (&text[..=at], Some(&text[at + 2..])),
                    None => (text, None),
                };
                let name = NpmName::parse(name).map_err(|e| format!("{name:?}: {e}"))?;
                if let Some(version) = version {
                    NpmVersion::parse(version).map_err(|e| format!("{version:?}: {e}"))?;
                }
                (ECOSYSTEM_NPM, name.to_string(), version.map(str::to_string))
            }
            "pypi" => {
                let (name, version) = match text.split_once("==") {
                    Some((name, version)) => (name, Some(version)),
                    None => (text, None),
                };
                let project = ProjectName::parse(name).map_err(|e| format!("{name:?}: {e}"))?;
                if let Some(version) = version {
                    Pep440::parse(version).map_err(|e| format!("{version:?}: {e}"))?;
                }
                (
                    ECOSYSTEM_PYPI,
                    project.normalized().to_string(),
                    version.map(str::to_ascii_lowercase),
                )
            }
            "maven" => {
                let (name, version) = match text.split(':').count() {
                    3 => text
                        .rsplit_once(':')
                        .map_or((text, None), |(n, v)| (n, Some(v))),
                    _ => (text, None),
                };
                // A name alone is checked with a stand-in release version.
                Gav::release(name, version.unwrap_or("1"))
                    .map_err(|e| format!("{text:?}: {e} (GROUP:ARTIFACT:VERSION, a release)"))?;
                (
                    ECOSYSTEM_MAVEN,
                    name.to_string(),
                    version.map(str::to_string),
                )
            }
            other => {
                return Err(format!(
                    "unknown ecosystem {other:?} (supported: docker, npm, pypi, maven)"
                ));
            }
        };
        if versioned && version.is_none() {
            return Err(match ecosystem {
                ECOSYSTEM_NPM => "name a version: --package NAME@VERSION".to_string(),
                ECOSYSTEM_MAVEN => "name a version: --gav GROUP:ARTIFACT:VERSION".to_string(),
                _ => "name a version: --package NAME==VERSION".to_string(),
            });
        }
        Ok(PackageSpec {
            ecosystem,
            name,
            version,
        })
    }

    /// The name the log's index keys the package by (`pypi:requests`).
    pub(crate) fn subject(&self) -> String {
        subject(self.ecosystem, &self.name).into_owned()
    }

    /// The coordinates of the named version (empty version when none was named).
    pub(crate) fn coordinates(&self) -> Coordinates<'_> {
        Coordinates {
            ecosystem: self.ecosystem,
            name: &self.name,
            version: self.version.as_deref().unwrap_or(""),
        }
    }

    /// `NAME@VERSION`, `NAME==VERSION` or `GROUP:ARTIFACT:VERSION`, as the user wrote it.
    pub(crate) fn label(&self) -> String {
        let separator = match self.ecosystem {
            ECOSYSTEM_NPM => "@",
            ECOSYSTEM_MAVEN => ":",
            _ => "==",
        };
        match &self.version {
            Some(version) => format!("{}{separator}{version}", self.name),
            None => self.name.clone(),
        }
    }

    /// The query of `/pyrsia/log/lookup` for the rebuild of the named version, when its
    /// ecosystem is rebuilt.
    pub(crate) fn rebuild_lookup_query(&self) -> Option<String> {
        let coordinates = self.coordinates();
        let ecosystem = pyrsia_core::tlog::rebuilt::rebuild_ecosystem(coordinates.ecosystem)?;
        let rebuild = Coordinates {
            ecosystem,
            ..coordinates
        };
        Some(format!(
            "name={}&version={}",
            query_escape(&rebuild.subject()),
            query_escape(rebuild.version)
        ))
    }

    /// The query of `/pyrsia/log/lookup` for the named version.
    pub(crate) fn lookup_query(&self) -> String {
        format!(
            "name={}&version={}",
            query_escape(&self.subject()),
            query_escape(self.version.as_deref().unwrap_or(""))
        )
    }

    /// The query of `POST /pyrsia/packages/request` for the named version.
    pub(crate) fn request_query(&self) -> String {
        format!(
            "ecosystem={}&name={}&version={}",
            self.ecosystem,
            query_escape(&self.name),
            query_escape(self.version.as_deref().unwrap_or(""))
        )
    }

    /// The files of the named version as the node lists them: the release's files a project
    /// page gives a sha256 for, the version's tarball, or a Maven release's pom and main
    /// artifact, with their expected digest when the index gives a sha256.
    pub(crate) fn files_on_node(
        &self,
        client: &NodeClient,
    ) -> Result<Vec<(NodeFile, Option<Digest>)>, String> {
        let version = self.version.as_deref().unwrap_or("");
        if self.ecosystem == ECOSYSTEM_MAVEN {
            return self.maven_files_on_node(client, version);
        }
        if self.ecosystem == ECOSYSTEM_PYPI {
            let path = format!("/pypi/simple/{}/", self.name);
            let mut response = client.open(&path, &[("Accept", SIMPLE_JSON)])?;
            let body = read_document(&mut response, &path)?;
            let url = format!("{}{path}", client.base());
            let page = ProjectIndex::parse(IndexFormat::Json, &body, &url, &self.name)
                .map_err(|e| format!("{path}: {e}"))?;
            let project = ProjectName::parse(&self.name).map_err(|e| e.to_string())?;
            let (checked, _) = page.release(&project, version);
            if checked.is_empty() {
                return Err(format!("the node lists no file of {}", self.label()));
            }
            return Ok(checked
                .into_iter()
                .map(|(file, digest)| {
                    let node_file = NodeFile {
                        name: file.filename.clone(),
                        path: node_path(client, &file.url),
                    };
                    (node_file, Some(digest))
                })
                .collect());
        }
        let name = NpmName::parse(&self.name).map_err(|e| e.to_string())?;
        let path = format!("/npm/{}", name.path_form());
        let mut response = client.open(&path, &[])?;
        let body = read_document(&mut response, &path)?;
        let packument = Packument::parse(&body).map_err(|e| format!("{path}: {e}"))?;
        let tarball = packument
            .version_tarball(version)
            .ok_or_else(|| format!("the node lists no version {}", self.label()))?;
        let file = tarball.file().unwrap_or_default().to_string();
        Ok(vec![(
            NodeFile {
                name: file,
                path: node_path(client, &tarball.url),
            },
            None,
        )])
    }
}

impl PackageSpec {
    /// A Maven release's files on the node: its pom, read for the packaging that names the
    /// main artifact (core's [`release_files`]), and that artifact.
    fn maven_files_on_node(
        &self,
        client: &NodeClient,
        version: &str,
    ) -> Result<Vec<(NodeFile, Option<Digest>)>, String> {
        let release = Gav::release(&self.name, version).map_err(|e| e.to_string())?;
        let pom_path = format!("/maven2/{}", release.path());
        let mut response = client.open(&pom_path, &[])?;
        let pom = response
            .body_mut()
            .with_config()
            .limit(POM_LEN_MAX as u64)
            .read_to_vec()
            .map_err(|e| format!("{pom_path}: {e}"))?;
        let files = release_files(&release, &pom).map_err(|e| format!("{pom_path}: {e}"))?;
        Ok([Some(files.pom), files.main]
            .into_iter()
            .flatten()
            .map(|gav| {
                let path = gav.path().to_string();
                let name = path.rsplit('/').next().unwrap_or_default().to_string();
                let file = NodeFile {
                    name,
                    path: format!("/maven2/{path}"),
                };
                (file, None)
            })
            .collect())
    }
}

/// What to say when a package command names no package: the option `ecosystem` takes.
pub(crate) fn name_it(ecosystem: &str) -> String {
    match ecosystem {
        "maven" => "name the release: maven --gav GROUP:ARTIFACT:VERSION".to_string(),
        other => format!("name the package: {other} --package …"),
    }
}

/// The largest index document read from a node.
const MAX_DOCUMENT: u64 = 128 << 20;

fn read_document(
    response: &mut ureq::http::Response<ureq::Body>,
    path: &str,
) -> Result<Vec<u8>, String> {
    response
        .body_mut()
        .with_config()
        .limit(MAX_DOCUMENT)
        .read_to_vec()
        .map_err(|e| format!("{path}: {e}"))
}

/// A URL the node wrote into a document, as a path on the node the command talks to.
fn node_path(client: &NodeClient, url: &str) -> String {
    match url.strip_prefix(client.base()) {
        Some(path) => path.to_string(),
        None => match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
            None => url.to_string(),
        },
    }
}

/// `text` percent-encoded for a query value.
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_arguments_become_log_coordinates() {
        let p = PackageSpec::parse("npm", "@scope/pkg@1.2.3", true).unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_deref()),
            ("@scope/pkg", Some("1.2.3"))
        );
        assert_eq!(p.subject(), "npm:@scope/pkg");
        assert_eq!(p.lookup_query(), "name=npm%3A%40scope%2Fpkg&version=1.2.3");
        let p = PackageSpec::parse("npm", "left-pad", false).unwrap();
        assert_eq!(p.version, None);
        let p = PackageSpec::parse("pypi", "Zope.Interface==1.0RC1", true).unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_deref()),
            ("zope-interface", Some("1.0rc1"))
        );
        assert_eq!(p.coordinates().check(), Ok(()));
        let p = PackageSpec::parse("maven", "org.example:lib:1.0", true).unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_deref()),
            ("org.example:lib", Some("1.0"))
        );
        assert_eq!(
            (p.subject(), p.label()),
            (
                "maven:org.example:lib".to_string(),
                "org.example:lib:1.0".to_string()
            )
        );
        assert_eq!(p.coordinates().check(), Ok(()));
        let p = PackageSpec::parse("maven", "org.example:lib", false).unwrap();
        assert_eq!(p.version, None);
        for (ecosystem, text) in [
            ("npm", "left-pad"),
            ("npm", "left-pad@v1"),
            ("pypi", "demo==not a version"),
            ("maven", "g:a"),
            ("maven", "g:a:1-SNAPSHOT"),
            ("maven", "g:a:jar:1"),
            ("cargo", "serde@1.0.0"),
        ] {
            assert!(PackageSpec::parse(ecosystem, text, true).is_err(), "{text}");
        }
    }

    #[test]
    fn urls_the_node_wrote_become_paths() {
        let client = NodeClient::new("http://127.0.0.1:7888");
        assert_eq!(
            node_path(&client, "http://127.0.0.1:7888/npm/x/-/x-1.0.0.tgz"),
            "/npm/x/-/x-1.0.0.tgz"
        );
        assert_eq!(
            node_path(&client, "http://localhost:7888/npm/x/-/x-1.0.0.tgz"),
            "/npm/x/-/x-1.0.0.tgz"
        );
        assert_eq!(
            node_path(&client, "/pypi/files/d/d-1.whl"),
            "/pypi/files/d/d-1.whl"
        );
    }
}
