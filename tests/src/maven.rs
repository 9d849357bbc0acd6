//! Maven in tests: a static repository directory served by Python's `http.server` (the
//! upstream), artifacts written into it with their `.sha1` files (as Maven deploys them), and
//! the real `mvn dependency:get`, run from Debian's `/usr/share/maven-repo` (its plugins) with
//! the node as the `<mirror>` of every repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::process::{Daemon, free_port, wait_http_ok};

/// A static Maven repository: a directory served over HTTP as it is.
pub struct StaticRepo {
    daemon: Daemon,
    port: u16,
    /// The repository's root directory.
    pub root: PathBuf,
}

impl StaticRepo {
    /// Serves `root` on 127.0.0.1.
    pub fn start(root: &Path, log_dir: &Path) -> StaticRepo {
        std::fs::create_dir_all(root).expect("repository dir");
        let port = free_port();
        let mut command = Command::new("python3");
        command
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .arg("--directory")
            .arg(root);
        let daemon = Daemon::spawn(command, &log_dir.join("maven-repo.log"));
        let repo = StaticRepo {
            daemon,
            port,
            root: root.to_path_buf(),
        };
        wait_http_ok(&repo.url(), Duration::from_secs(20), &|| {
            repo.daemon.log_text()
        });
        repo
    }

    /// The repository URL, for `--maven-upstream`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (the upstream goes down).
    pub fn stop(&mut self) {
        self.daemon.kill();
    }

    /// How many times `file` (a path's last part) was fetched, by the access log.
    pub fn fetches(&self, file: &str) -> usize {
        self.daemon
            .log_text()
            .lines()
            .filter(|l| l.contains(&format!("/{file} HTTP")) && l.contains("\"GET "))
            .count()
    }
}

/// Writes `group:artifact:version` (a pom listing `dependencies`, each `group:artifact:version`,
/// and a jar holding `content`) into the repository at `root`, each with its `.sha1`, and the
/// artifact's `maven-metadata.xml`. Returns the jar's path.
pub fn deploy(
    root: &Path,
    group: &str,
    artifact: &str,
    version: &str,
    dependencies: &[&str],
    content: &[u8],
) -> PathBuf {
    let dir = root
        .join(group.replace('.', "/"))
        .join(artifact)
        .join(version);
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let deps: String = dependencies
        .iter()
        .map(|gav| {
            let mut parts = gav.split(':');
            let (g, a, v) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            format!("<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>")
        })
        .collect();
    let pom = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<project xmlns=\"http://maven.apache.org/POM/4.0.0\"><modelVersion>4.0.0</modelVersion>\
         <groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version><packaging>jar</packaging>\
         <dependencies>{deps}</dependencies></project>\n"
    );
    let jar = dir.join(format!("{artifact}-{version}.jar"));
    let pom_path = dir.join(format!("{artifact}-{version}.pom"));
    for (path, bytes) in [(pom_path, pom.as_bytes()), (jar.clone(), content)] {
        std::fs::write(&path, bytes).expect("artifact file");
        write_sha1(&path);
    }
    let metadata = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata><groupId>{group}</groupId><artifactId>{artifact}</artifactId>\
         <versioning><latest>{version}</latest><release>{version}</release><versions><version>{version}</version></versions></versioning></metadata>\n"
    );
    let metadata_path = dir.parent().unwrap().join("maven-metadata.xml");
    std::fs::write(&metadata_path, metadata).expect("metadata");
    write_sha1(&metadata_path);
    jar
}

/// Writes `{path}.sha1` as Maven does (the hex digest alone).
pub fn write_sha1(path: &Path) {
    let out = Command::new("sha1sum").arg(path).output().expect("sha1sum");
    let line = String::from_utf8_lossy(&out.stdout);
    let hex = line.split_whitespace().next().expect("sha1sum output");
    let mut name = path.as_os_str().to_owned();
    name.push(".sha1");
    std::fs::write(PathBuf::from(name), hex).expect("sha1 file");
}

/// `mvn dependency:get` of `gav` (and what it depends on) with `mirror` as the mirror of every
/// repository, into a fresh local repository in `work` seeded with Debian's Maven plugins.
/// Returns the output and the local repository.
pub fn mvn_get(mirror: &str, work: &Path, gav: &str) -> (Output, PathBuf) {
    std::fs::create_dir_all(work).expect("mvn work dir");
    let local = work.join("local-repo");
    let copied = Command::new("cp")
        .args(["-rL", "/usr/share/maven-repo"])
        .arg(&local)
        .status()
        .expect("cp");
    assert!(copied.success(), "copying /usr/share/maven-repo failed");
    let settings = work.join("settings.xml");
    std::fs::write(
        &settings,
        format!(
            "<settings><localRepository>{}</localRepository>\
             <mirrors><mirror><id>pyrsia</id><mirrorOf>*</mirrorOf><url>{mirror}</url></mirror></mirrors></settings>\n",
            local.display()
        ),
    )
    .expect("settings.xml");
    let out = Command::new("mvn")
        .args(["-B", "-q", "-s"])
        .arg(&settings)
        .arg("org.apache.maven.plugins:maven-dependency-plugin:3.5.0:get")
        .arg(format!("-Dartifact={gav}"))
        .env_remove("MAVEN_OPTS")
        .output()
        .expect("mvn");
    (out, local)
}
