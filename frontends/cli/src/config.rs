//! `pyrsia config show|set|edit`: the node's configuration file, as operators of the original
//! Pyrsia knew it from `pyrsia config`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;
use std::io::Write;

use pyrsia_http::config::{ConfigFile, Kind, Source, config_path, env_var, keys, layer};
use pyrsia_http::config_values::{effective_value, set_in_text};

/// Show or change the node's configuration file (TOML; every `pyrsia node` option).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "config")]
pub(crate) struct ConfigCmd {
    /// the config file (default: $PYRSIA_CONFIG, else config.toml in the platform's config
    /// dir, e.g. ~/.config/pyrsia/config.toml)
    #[argh(option)]
    config: Option<PathBuf>,

    #[argh(subcommand)]
    action: Action,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Action {
    Show(ShowCmd),
    Set(SetCmd),
    Edit(EditCmd),
}

/// Print every node option with the value `pyrsia node` would use and where it comes from
/// (file line, environment variable, or default).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "show")]
struct ShowCmd {}

/// Set an option in the config file, checked as the flag checks it: `pyrsia config set
/// max-disk 20G`, `… set offline true`, `… set peer ADDR1 ADDR2`.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "set")]
struct SetCmd {
    /// the option's name without `--`
    #[argh(positional)]
    key: String,
    /// its value (several for a repeatable option)
    #[argh(positional)]
    values: Vec<String>,
}

/// Edit the config file in $VISUAL or $EDITOR (default vi); the result is checked before it
/// replaces the file, and kept aside with the error if it does not pass.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "edit")]
struct EditCmd {}

/// Runs `pyrsia config`.
pub(crate) fn run(cmd: &ConfigCmd) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let path = match &cmd.config {
        Some(path) => path.clone(),
        None => match config_path(None, &env) {
            Some((path, _)) => path,
            None => {
                eprintln!("pyrsia config: no config dir on this platform; pass --config FILE");
                return ExitCode::from(2);
            }
        },
    };
    let result = match &cmd.action {
        Action::Show(_) => show(&path),
        Action::Set(set) => write_set(&path, &set.key, &set.values),
        Action::Edit(_) => edit(&path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pyrsia config: {e}");
            ExitCode::FAILURE
        }
    }
}

fn show(path: &Path) -> Result<(), String> {
    let env = |name: &str| std::env::var(name).ok();
    let file = ConfigFile::read(path, false)?;
    let layered = layer(&[], &env, file.as_ref())?;
    let args: Vec<&str> = layered.args.iter().map(String::as_str).collect();
    let options = <pyrsia_http::NodeOptions as FromArgs>::from_args(&["node"], &args)
        .map_err(|early| early.output)?;
    let mut out = std::io::stdout().lock();
    let heading = match &file {
        Some(_) => format!("# config file: {}", path.display()),
        None => format!(
            "# config file: {} (not there; defaults apply)",
            path.display()
        ),
    };
    // A closed pipe (`| head`) ends the listing quietly.
    let _ = writeln!(out, "{heading}");
    for key in keys() {
        let value = effective_value(&options, key.name).unwrap_or_default();
        let source = match &layered.sources[key.name] {
            Source::File(line) => format!("file, line {line}"),
            Source::Env(variable) => format!("environment, {variable}"),
            Source::Flag => "flag".to_string(),
            Source::Default => format!("default; {} or --{}", env_var(key.name), key.name),
        };
        if writeln!(
            out,
            "{} = {}  # {source}",
            key.name,
            as_toml(key.kind, &value)
        )
        .is_err()
        {
            break;
        }
    }
    Ok(())
}

/// An effective value as it would be written in the file.
fn as_toml(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Switch => value.to_string(),
        Kind::Value if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
            value.to_string()
        }
        Kind::Value => format!("{value:?}"),
        Kind::Repeated => {
            let items: Vec<String> = value
                .split(", ")
                .filter(|v| !v.is_empty())
                .map(|v| format!("{v:?}"))
                .collect();
            format!("[{}]", items.join(", "))
        }
    }
}

fn write_set(path: &Path, key: &str, values: &[String]) -> Result<(), String> {
    let text = read_or_empty(path)?;
    let updated = set_in_text(path, &text, key, values)?;
    replace_file(path, &updated)?;
    println!("{}: {key} set", path.display());
    Ok(())
}

fn edit(path: &Path) -> Result<(), String> {
    let text = read_or_empty(path)?;
    let draft = path.with_extension("toml.edit");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&draft, if text.is_empty() { TEMPLATE } else { &text })
        .map_err(|e| format!("{}: {e}", draft.display()))?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_string());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&draft)
        .status()
        .map_err(|e| format!("cannot run the editor {editor:?}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "the editor {editor:?} failed ({status}); your draft is {}",
            draft.display()
        ));
    }
    let edited =
        std::fs::read_to_string(&draft).map_err(|e| format!("{}: {e}", draft.display()))?;
    if let Err(e) = ConfigFile::parse(path, &edited) {
        return Err(format!(
            "{e}\nthe config file is unchanged; your draft is kept in {}",
            draft.display()
        ));
    }
    replace_file(path, &edited)?;
    let _ = std::fs::remove_file(&draft);
    println!("{}: saved", path.display());
    Ok(())
}

/// What `pyrsia config edit` starts a new file from.
const TEMPLATE: &str = "\
# Pyrsia node configuration: every `pyrsia node` option, without its `--`.
# A flag beats a PYRSIA_* environment variable, which beats this file.
# See `pyrsia node --help` and `pyrsia config show`.

# http = \"127.0.0.1:7888\"
# max-disk = \"20G\"
# upstream = [\"https://registry-1.docker.io\"]
# peer = [\"/dns4/boot.example.org/tcp/44000\"]
# offline = false
";

fn read_or_empty(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes `text` beside `path` and renames it over, so a crash never leaves half a file.
fn replace_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let temp = path.with_extension("toml.tmp");
    std::fs::write(&temp, text).map_err(|e| format!("{}: {e}", temp.display()))?;
    std::fs::rename(&temp, path).map_err(|e| format!("{}: {e}", path.display()))
}
