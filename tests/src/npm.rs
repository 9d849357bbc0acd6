//! npm parts for the package tests: verdaccio with no uplink as the upstream registry
//! (`scripts/test` installs it into `target/test-tools/npm` from `tests/tools/npm`), packages
//! published to it by the real npm CLI, and `npm install`, `pnpm install` and `yarn install`
//! (classic) as the clients.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::process::{Daemon, free_port, wait_http_ok};

fn tools() -> PathBuf {
    let target = crate::target_dir();
    let tools = target.join("test-tools/npm");
    assert!(
        tools.join("node_modules/.bin/verdaccio").exists(),
        "{} lacks verdaccio: run scripts/test (it installs the test tools)",
        tools.display()
    );
    tools
}

/// A verdaccio registry on 127.0.0.1 with no uplink: it serves only what was published to it.
pub struct Verdaccio {
    daemon: Daemon,
    port: u16,
    /// An npm user config holding a publish token for it.
    npmrc: PathBuf,
}

impl Verdaccio {
    /// Starts a registry keeping its data in `dir`, and registers a publisher.
    pub fn start(dir: &Path) -> Verdaccio {
        std::fs::create_dir_all(dir).expect("verdaccio dir");
        let port = free_port();
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "storage: {storage}\n\
                 auth:\n  htpasswd:\n    file: {htpasswd}\n    max_users: 10\n\
                 uplinks: {{}}\n\
                 packages:\n  '@*/*':\n    access: $all\n    publish: $authenticated\n  '**':\n    access: $all\n    publish: $authenticated\n\
                 web:\n  enable: false\n\
                 log: {{ type: stdout, format: pretty, level: http }}\n",
                storage = dir.join("storage").display(),
                htpasswd = dir.join("htpasswd").display(),
            ),
        )
        .expect("verdaccio config");
        let mut command = Command::new(tools().join("node_modules/.bin/verdaccio"));
        command
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        let daemon = Daemon::spawn(command, &dir.join("verdaccio.log"));
        let url = format!("http://127.0.0.1:{port}/");
        wait_http_ok(&format!("{url}-/ping"), Duration::from_secs(30), &|| {
            daemon.log_text()
        });
        // Register a publisher (verdaccio's htpasswd lets the first users sign up).
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut answer = agent
            .put(&format!("{url}-/user/org.couchdb.user:publisher"))
            .header("Content-Type", "application/json")
            .send(r#"{"name":"publisher","password":"publisher-password"}"#)
            .expect("register a publisher");
        let body = answer.body_mut().read_to_string().unwrap_or_default();
        let token = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no token from verdaccio: {body}"));
        let npmrc = dir.join("publisher.npmrc");
        std::fs::write(&npmrc, format!("//127.0.0.1:{port}/:_authToken={token}\n")).expect("npmrc");
        Verdaccio {
            daemon,
            port,
            npmrc,
        }
    }

    /// The registry URL, for `--npm-upstream`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Publishes the package in `package_dir` with the real npm CLI (its dist-tag `latest`
    /// then names it).
    pub fn publish(&self, package_dir: &Path) {
        self.publish_tagged(package_dir, "latest");
    }

    /// Publishes the package in `package_dir` under dist-tag `tag`.
    pub fn publish_tagged(&self, package_dir: &Path, tag: &str) {
        self.publish_with(Command::new("npm"), package_dir, tag);
    }

    /// Publishes `target` (a package directory or a packed tarball, published as it is)
    /// with the npm CLI `npm` (e.g. `node npm-cli.js` of a pinned npm) under dist-tag `tag`.
    pub fn publish_with(&self, mut npm: Command, package_dir: &Path, tag: &str) {
        let out = npm
            .arg("publish")
            .arg(package_dir)
            .args(["--tag", tag])
            .args(["--registry", &self.url(), "--userconfig"])
            .arg(&self.npmrc)
            .args(["--no-audit", "--no-fund", "--loglevel=error"])
            .output()
            .expect("npm publish");
        assert!(
            out.status.success(),
            "npm publish {}: {}\n{}\n{}",
            package_dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Stops the registry (the upstream goes down).
    pub fn stop(&mut self) {
        self.daemon.kill();
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        self.daemon.log_text()
    }

    /// Where the registry logs (readable after it stopped).
    pub fn log_file(&self) -> PathBuf {
        self.daemon.log.clone()
    }
}

/// Writes a package (`package.json` with `dependencies`, and an `index.js`) into `dir`.
pub fn write_package(dir: &Path, name: &str, version: &str, dependencies: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("package dir");
    let deps: serde_json::Map<String, serde_json::Value> = dependencies
        .iter()
        .map(|(n, v)| (n.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let manifest = serde_json::json!({
        "name": name,
        "version": version,
        "main": "index.js",
        "license": "MIT",
        "dependencies": deps,
    });
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .expect("package.json");
    std::fs::write(
        dir.join("index.js"),
        format!("module.exports = {{ name: {name:?}, version: {version:?} }};\n"),
    )
    .expect("index.js");
}

/// `npm install` in `project` (which has a `package.json`) from `registry`, with a cache of
/// its own in `cache` and no user config.
pub fn npm_install(registry: &str, project: &Path, cache: &Path) -> Output {
    let empty = project.join(".empty-npmrc");
    std::fs::write(&empty, "").expect("npmrc");
    Command::new("npm")
        .arg("install")
        .args(["--registry", registry, "--cache"])
        .arg(cache)
        .arg("--userconfig")
        .arg(&empty)
        .args([
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--fetch-retries=0",
        ])
        .current_dir(project)
        .output()
        .expect("npm install")
}

/// `pnpm install` in `project` from `registry`, with its store and cache in `cache` and no
/// user config.
pub fn pnpm_install(registry: &str, project: &Path, cache: &Path) -> Output {
    let empty = project.join(".empty-npmrc");
    std::fs::write(&empty, "").expect("npmrc");
    Command::new(tools().join("node_modules/.bin/pnpm"))
        .arg("install")
        .args(["--registry", registry, "--store-dir"])
        .arg(cache.join("store"))
        .arg("--cache-dir")
        .arg(cache.join("cache"))
        .args(["--config.fetch-retries=0", "--reporter=append-only"])
        .env("npm_config_userconfig", &empty)
        .current_dir(project)
        .output()
        .expect("pnpm install")
}

/// `yarn install` (classic) in `project` from `registry`, with a cache of its own in `cache`
/// and no user config.
pub fn yarn_install(registry: &str, project: &Path, cache: &Path) -> Output {
    Command::new(tools().join("node_modules/.bin/yarn"))
        .arg("install")
        .args(["--registry", registry, "--cache-folder"])
        .arg(cache)
        .args([
            "--no-default-rc",
            "--non-interactive",
            "--network-timeout",
            "20000",
        ])
        .current_dir(project)
        .output()
        .expect("yarn install")
}

/// The integrity `project`'s `package-lock.json` records for `package` (empty when none).
pub fn locked_integrity(project: &Path, package: &str) -> String {
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.join("package-lock.json")).unwrap()).unwrap();
    lock["packages"][format!("node_modules/{package}")]["integrity"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
