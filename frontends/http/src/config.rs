//! The node's configuration: every `pyrsia node` option can also be set in a TOML file or an
//! environment variable. A flag beats the environment, the environment beats the file, the
//! file beats the built-in default.
//!
//! - The file is `--config FILE`, else `$PYRSIA_CONFIG`, else `config.toml` in the platform's
//!   config dir (`~/.config/pyrsia/config.toml` on Linux) if it exists. Its keys are the
//!   option names without `--` (`max-disk = "20G"`, `offline = true`,
//!   `peer = ["/dns4/…", …]`).
//! - The variable of an option is `PYRSIA_` and its name in capitals with `_` for `-`
//!   (`PYRSIA_MAX_DISK=20G`, `PYRSIA_OFFLINE=true`, `PYRSIA_PEER=addr1,addr2`).
//!
//! The options and their kinds (switch, one value, repeatable) are read from the node's own
//! argh definition, so a new option is configurable everywhere the day it is added; every
//! value from the file or the environment is checked by the same parser as the flag, and an
//! error names the key and the line (or the variable).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argh::FromArgs;

use crate::options::NodeOptions;

/// The variable that names the config file when `--config` does not.
pub const CONFIG_ENV: &str = "PYRSIA_CONFIG";

/// How an option takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A switch: `--offline`; in the file `true` or `false`.
    Switch,
    /// One value: `--max-disk 20G`; in the file a string or an integer.
    Value,
    /// Repeatable: `--peer A --peer B`; in the file an array (or one string).
    Repeated,
}

/// A node option that can be configured: its name without `--`, and its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The flag's name without `--`, which is also the file's key.
    pub name: &'static str,
    /// How it takes its value.
    pub kind: Kind,
}

/// Where an option's effective value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// The named environment variable.
    Env(String),
    /// The config file, at this line.
    File(usize),
    /// Nothing set it.
    Default,
}

/// One option set in the config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// The option.
    pub key: Key,
    /// Its values as flag arguments (empty for a switch that is off).
    pub values: Vec<String>,
    /// The 1-based line of the key.
    pub line: usize,
}

/// A parsed and checked config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// What it sets, in file order.
    pub entries: Vec<FileEntry>,
}

/// The options `pyrsia node` takes, with their kinds, read from its argh usage line (so
/// there is one list, the struct's), without `--config` itself.
pub fn keys() -> Vec<Key> {
    static KEYS: std::sync::OnceLock<Vec<Key>> = std::sync::OnceLock::new();
    KEYS.get_or_init(read_keys).clone()
}

fn read_keys() -> Vec<Key> {
    let help = NodeOptions::from_args(&["node"], &["--help"])
        .err()
        .map(|early| early.output)
        .unwrap_or_default();
    let usage = help.lines().next().unwrap_or_default();
    let mut keys = Vec::new();
    for group in usage.split('[').skip(1) {
        let group = group.split(']').next().unwrap_or_default();
        let mut words = group.split_whitespace();
        let Some(name) = words.next().and_then(|flag| flag.strip_prefix("--")) else {
            continue;
        };
        let kind = match words.next() {
            None => Kind::Switch,
            Some(value) if value.ends_with("...>") => Kind::Repeated,
            Some(_) => Kind::Value,
        };
        if name != "config" {
            keys.push(Key {
                name: leak(name),
                kind,
            });
        }
    }
    keys
}

/// Option names live for the whole run; the list is built once per process.
fn leak(name: &str) -> &'static str {
    Box::leak(name.to_string().into_boxed_str())
}

fn key_named(keys: &[Key], name: &str) -> Option<Key> {
    keys.iter().copied().find(|k| k.name == name)
}

/// The environment variable of option `name`: `max-disk` → `PYRSIA_MAX_DISK`.
pub fn env_var(name: &str) -> String {
    format!("PYRSIA_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// The default config file: `config.toml` in the platform's config dir.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("pyrsia").join("config.toml"))
}

/// Which config file applies: `flag` (`--config`), else `$PYRSIA_CONFIG`, else the default
/// path; and whether it was named (a named file must exist, the default one may not).
pub fn config_path(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(PathBuf, bool)> {
    if let Some(path) = flag {
        return Some((path.to_path_buf(), true));
    }
    if let Some(path) = env(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    default_path().map(|p| (p, false))
}

impl ConfigFile {
    /// Reads and checks the config file at `path`; `None` if it does not exist and was not
    /// `required`.
    pub fn read(path: &Path, required: bool) -> Result<Option<ConfigFile>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => ConfigFile::parse(path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
            Err(e) => Err(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )),
        }
    }

    /// Parses and checks `text` (read from `path`, which errors name): every key must be a
    /// node option and every value one its flag accepts.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, String> {
        let at = |offset: usize| 1 + text[..offset.min(text.len())].matches('\n').count();
        let table = toml::de::DeTable::parse(text).map_err(|e| {
            let line = e.span().map_or(0, |s| at(s.start));
            format!("{}:{line}: {}", path.display(), e.message())
        })?;
        let keys = keys();
        let mut entries = Vec::new();
        for (name, value) in table.get_ref() {
            let line = at(name.span().start);
            let here = |message: String| format!("{}:{line}: {message}", path.display());
            let key = key_named(&keys, name.get_ref()).ok_or_else(|| {
                here(format!(
                    "unknown key `{}`: not a `pyrsia node` option (see `pyrsia node --help`)",
                    name.get_ref()
                ))
            })?;
            let values = file_values(key, value.get_ref()).map_err(here)?;
            check_values(key, &values).map_err(here)?;
            entries.push(FileEntry { key, values, line });
        }
        Ok(ConfigFile {
            path: path.to_path_buf(),
            entries,
        })
    }

    fn entry(&self, name: &str) -> Option<&FileEntry> {
        self.entries.iter().find(|e| e.key.name == name)
    }
}

/// A file value as the flag arguments it stands for.
fn file_values(key: Key, value: &toml::de::DeValue<'_>) -> Result<Vec<String>, String> {
    use toml::de::DeValue;
    let scalar = |value: &DeValue<'_>| match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => Ok(i.as_str().to_string()),
        other => Err(format!(
            "`{}` takes a string or an integer, not a {}",
            key.name,
            other.type_str()
        )),
    };
    match (key.kind, value) {
        (Kind::Switch, DeValue::Boolean(on)) => {
            Ok(if *on { vec![String::new()] } else { Vec::new() })
        }
        (Kind::Switch, other) => Err(format!(
            "`{}` is a switch: true or false, not a {}",
            key.name,
            other.type_str()
        )),
        (Kind::Repeated, DeValue::Array(items)) => {
            items.iter().map(|item| scalar(item.get_ref())).collect()
        }
        (Kind::Value, DeValue::Array(_)) => {
            Err(format!("`{}` takes one value, not an array", key.name))
        }
        (_, value) => scalar(value).map(|v| vec![v]),
    }
}

/// Checks values with the flag's own parser, so that the file and the environment accept
/// exactly what the command line does.
fn check_values(key: Key, values: &[String]) -> Result<(), String> {
    if key.kind == Kind::Switch {
        return Ok(());
    }
    for value in values {
        let flag = format!("--{}", key.name);
        if let Err(early) = NodeOptions::from_args(&["node"], &[&flag, value]) {
            return Err(format!(
                "`{}` = {value:?}: {}",
                key.name,
                early.output.trim()
            ));
        }
    }
    Ok(())
}

/// An environment value as flag arguments: a switch is `true`/`1`/`yes` or
/// `false`/`0`/`no`/empty; a repeatable option takes a comma-separated list.
fn env_values(key: Key, variable: &str, text: &str) -> Result<Vec<String>, String> {
    let values = match key.kind {
        Kind::Switch => match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => vec![String::new()],
            "" | "0" | "false" | "no" | "off" => Vec::new(),
            _ => {
                return Err(format!(
                    "{variable}={text:?}: `{}` is a switch: true or false",
                    key.name
                ));
            }
        },
        Kind::Repeated => text
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect(),
        Kind::Value => vec![text.to_string()],
    };
    check_values(key, &values).map_err(|e| format!("{variable}: {e}"))?;
    Ok(values)
}

/// The node's options after layering: the arguments argh parses, and where each option
/// came from.
#[derive(Clone, Debug)]
pub struct Layered {
    /// Flag arguments: the file's and environment's options first, then the command line.
    pub args: Vec<String>,
    /// Where each option's value came from.
    pub sources: BTreeMap<&'static str, Source>,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Layers the command line `cli` (a node's arguments, after `node`), the environment `env`
/// and `file`: each option is taken from the first of the three that sets it.
pub fn layer(
    cli: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<&ConfigFile>,
) -> Result<Layered, String> {
    let on_command_line: Vec<&str> = cli.iter().filter_map(|a| a.strip_prefix("--")).collect();
    let mut args = Vec::new();
    let mut sources = BTreeMap::new();
    for key in keys() {
        let flag = format!("--{}", key.name);
        let push = |args: &mut Vec<String>, values: &[String]| {
            for value in values {
                args.push(flag.clone());
                if key.kind != Kind::Switch {
                    args.push(value.clone());
                }
            }
        };
        let variable = env_var(key.name);
        let source = if on_command_line.contains(&key.name) {
            Source::Flag
        } else if let Some(text) = env(&variable) {
            push(&mut args, &env_values(key, &variable, &text)?);
            Source::Env(variable)
        } else if let Some(entry) = file.and_then(|f| f.entry(key.name)) {
            push(&mut args, &entry.values);
            Source::File(entry.line)
        } else {
            Source::Default
        };
        sources.insert(key.name, source);
    }
    args.extend(cli.iter().cloned());
    Ok(Layered {
        args,
        sources,
        file: file.map(|f| f.path.clone()),
    })
}

/// The node's options: `flags`, parsed from the command line `cli` (its arguments after
/// `node`), layered over the process environment and the config file, and parsed again as
/// the flags are. Errors name the file and line or the variable.
pub fn node_options(flags: &NodeOptions, cli: &[String]) -> Result<(NodeOptions, Layered), String> {
    let env = |name: &str| std::env::var(name).ok();
    let file = match config_path(flags.config.as_deref(), &env) {
        Some((path, required)) => ConfigFile::read(&path, required)?,
        None => None,
    };
    let layered = layer(cli, &env, file.as_ref())?;
    let args: Vec<&str> = layered.args.iter().map(String::as_str).collect();
    let options = NodeOptions::from_args(&["node"], &args).map_err(|early| {
        let origin = layered
            .file
            .as_ref()
            .map(|f| format!(" (with {})", f.display()))
            .unwrap_or_default();
        format!("{}{origin}", early.output.trim())
    })?;
    Ok((options, layered))
}

/// The spelled command-line arguments after the `node` subcommand (those argh parsed).
pub fn node_args_from_env() -> Vec<String> {
    let args = crate::options::spelled(std::env::args());
    match args.iter().position(|a| a == "node") {
        Some(i) => args[i + 1..].to_vec(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn keys_come_from_the_node_options() {
        let keys = keys();
        let kind = |name: &str| key_named(&keys, name).map(|k| k.kind);
        assert_eq!(kind("max-disk"), Some(Kind::Value));
        assert_eq!(kind("offline"), Some(Kind::Switch));
        assert_eq!(kind("peer"), Some(Kind::Repeated));
        assert_eq!(kind("upstream"), Some(Kind::Repeated));
        assert_eq!(kind("tls-cert"), Some(Kind::Value));
        assert_eq!(kind("config"), None, "--config is not a file key");
        assert!(keys.len() > 30, "{keys:?}");
    }

    #[test]
    fn file_errors_name_the_key_and_line() {
        let path = Path::new("/etc/pyrsia/config.toml");
        let err = ConfigFile::parse(path, "offline = true\n\nmax-disck = \"2G\"\n").unwrap_err();
        assert!(
            err.starts_with("/etc/pyrsia/config.toml:3: unknown key `max-disck`"),
            "{err}"
        );
        let err = ConfigFile::parse(path, "# comment\nmax-disk = \"12X\"\n").unwrap_err();
        assert!(
            err.starts_with("/etc/pyrsia/config.toml:2: `max-disk` = \"12X\""),
            "{err}"
        );
        assert!(err.contains("invalid size unit"), "{err}");
        let err = ConfigFile::parse(path, "offline = \"yes\"\n").unwrap_err();
        assert!(err.contains(":1: `offline` is a switch"), "{err}");
        let err = ConfigFile::parse(path, "http = [\"a\"]\n").unwrap_err();
        assert!(err.contains(":1: `http` takes one value"), "{err}");
        let err = ConfigFile::parse(path, "http = \"127.0.0.1:1\"\nhttp = \"x\"\n").unwrap_err();
        assert!(
            err.contains(":2:"),
            "a duplicate key is a TOML error at its line: {err}"
        );
        let err = ConfigFile::parse(path, "index-ttl = 1.5\n").unwrap_err();
        assert!(err.contains("not a float"), "{err}");
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let text = "max-disk = \"1G\"\nhttp = \"127.0.0.1:1\"\nindex-ttl = 5\noffline = true\npeer = [\"/ip4/127.0.0.1/tcp/1\", \"/ip4/127.0.0.1/tcp/2\"]\n";
        let file = ConfigFile::parse(Path::new("c.toml"), text).unwrap();
        let env = |name: &str| match name {
            "PYRSIA_MAX_DISK" => Some("2G".to_string()),
            "PYRSIA_INDEX_TTL" => Some("7".to_string()),
            "PYRSIA_OFFLINE" => Some("false".to_string()),
            _ => None,
        };
        let cli = vec!["--index-ttl".to_string(), "9".to_string()];
        let layered = layer(&cli, &env, Some(&file)).unwrap();
        let args: Vec<&str> = layered.args.iter().map(String::as_str).collect();
        let options = NodeOptions::from_args(&["node"], &args).unwrap();
        assert_eq!(options.index_ttl, 9, "flag");
        assert_eq!(options.max_disk, Some(2 << 30), "env over file");
        assert!(!options.offline, "env false over file true");
        assert_eq!(options.http.port(), 1, "file");
        assert_eq!(options.peer.len(), 2, "file array");
        assert_eq!(options.http_workers, 128, "default");
        assert_eq!(layered.sources["index-ttl"], Source::Flag);
        assert_eq!(
            layered.sources["max-disk"],
            Source::Env("PYRSIA_MAX_DISK".into())
        );
        assert_eq!(layered.sources["http"], Source::File(2));
        assert_eq!(layered.sources["http-workers"], Source::Default);
    }

    #[test]
    fn env_values_are_checked_like_flags() {
        let env = |name: &str| (name == "PYRSIA_MAX_DISK").then(|| "lots".to_string());
        let err = layer(&[], &env, None).unwrap_err();
        assert!(
            err.starts_with("PYRSIA_MAX_DISK: `max-disk` = \"lots\""),
            "{err}"
        );
        let env = |name: &str| {
            (name == "PYRSIA_PEER").then(|| "/ip4/1.2.3.4/tcp/1, /ip4/1.2.3.5/tcp/1".to_string())
        };
        let layered = layer(&[], &env, None).unwrap();
        assert_eq!(layered.args.iter().filter(|a| *a == "--peer").count(), 2);
        assert!(layer(&[], &no_env, None).unwrap().args.is_empty());
    }

    #[test]
    fn config_path_precedence() {
        let env = |name: &str| (name == CONFIG_ENV).then(|| "/env.toml".to_string());
        let flag = Path::new("/flag.toml");
        assert_eq!(
            config_path(Some(flag), &env),
            Some(("/flag.toml".into(), true))
        );
        assert_eq!(config_path(None, &env), Some(("/env.toml".into(), true)));
        assert_eq!(
            config_path(None, &no_env).map(|(_, named)| named),
            Some(false)
        );
    }
}
