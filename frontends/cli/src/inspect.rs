//! `pyrsia inspect-log docker --image NAME[:TAG|@DIGEST]` (or `npm|pypi --package NAME[…]`, `maven --gav GROUP:ARTIFACT[:VERSION]`):
//! the log's record of an image or package (tag observations, requests, commits) as JSON, CSV or a table. A listing, not a proof: run
//! `pyrsia verify` to check signatures and inclusion.

use std::process::ExitCode;

use argh::FromArgs;
use pyrsia_core::reference::ImageRef;
use pyrsia_core::tlog::coordinates::tag_target;
use pyrsia_core::tlog::entry::{ECOSYSTEM_DOCKER, Entry};
use serde_json::{Map, Value};

use crate::client::{DEFAULT_NODE, NodeClient};
use crate::log::{describe, entry};
use crate::packages::PackageSpec;

/// Show what the transparency log records about an image.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "inspect-log")]
pub(crate) struct InspectCmd {
    /// the ecosystem: docker, npm, pypi or maven
    #[argh(positional)]
    ecosystem: String,
    /// the image (docker): NAME, NAME:TAG or NAME@DIGEST
    #[argh(option)]
    image: Option<String>,
    /// the package (npm, pypi): NAME or NAME@VERSION (npm), NAME or NAME==VERSION (pypi)
    #[argh(option)]
    package: Option<String>,
    /// the Maven artifact (maven): GROUP:ARTIFACT or GROUP:ARTIFACT:VERSION
    #[argh(option)]
    gav: Option<String>,
    /// output format: table (default), json or csv
    #[argh(option, default = "String::from(\"table\")")]
    format: String,
    /// only the latest observation of the tag and the commit it points at
    #[argh(switch)]
    latest: bool,
    /// comma-separated fields to show (default: index,kind,name,tag,version,digest,build_type,attestations,verdict,time)
    #[argh(option)]
    fields: Option<String>,
    /// the node's URL (default http://127.0.0.1:7888)
    #[argh(option, default = "String::from(DEFAULT_NODE)")]
    node: String,
}

const DEFAULT_FIELDS: &str =
    "index,kind,name,tag,version,digest,build_type,attestations,verdict,time";

pub(crate) fn run(cmd: &InspectCmd) -> ExitCode {
    if !matches!(cmd.format.as_str(), "table" | "json" | "csv") {
        eprintln!("pyrsia inspect-log: --format must be table, json or csv");
        return ExitCode::from(2);
    }
    let client = NodeClient::new(&cmd.node);
    let found = if cmd.ecosystem == "docker" {
        let Some(image) = &cmd.image else {
            eprintln!("pyrsia inspect-log: name the image: docker --image NAME[:TAG]");
            return ExitCode::from(2);
        };
        match ImageRef::parse(image) {
            Ok(image) => rows(&client, &image, cmd.latest),
            Err(e) => {
                eprintln!("pyrsia inspect-log: invalid image {image:?}: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let spec = match cmd.package.as_ref().or(cmd.gav.as_ref()) {
            Some(text) => PackageSpec::parse(&cmd.ecosystem, text, false),
            None => Err(crate::packages::name_it(&cmd.ecosystem)),
        };
        match spec {
            Ok(spec) => package_rows(&client, &spec),
            Err(e) => {
                eprintln!("pyrsia inspect-log: {e}");
                return ExitCode::from(2);
            }
        }
    };
    match found {
        Ok(rows) => {
            let fields: Vec<&str> = cmd
                .fields
                .as_deref()
                .unwrap_or(DEFAULT_FIELDS)
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect();
            print!("{}", render(&rows, &fields, &cmd.format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pyrsia inspect-log: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every entry about `subject` (an image's name, a package's `{ecosystem}:{name}`),
/// described, oldest first.
fn history(client: &NodeClient, subject: &str) -> Result<Vec<Map<String, Value>>, String> {
    let history = client.get_json(&format!(
        "/pyrsia/log/history?name={}",
        crate::packages::query_escape(subject)
    ))?;
    let indices: Vec<u64> = history["entries"]
        .as_array()
        .ok_or("unexpected history answer")?
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let mut all = Vec::new();
    // A package tag names a version by its commit's tag target.
    let mut targets = std::collections::HashMap::new();
    for index in indices {
        let bytes = entry(client, index)?;
        let decoded = Entry::decode(&bytes).map_err(|e| format!("entry {index}: {e}"))?;
        let mut row = describe(index, &decoded);
        match &decoded {
            Entry::Commit(c) => {
                let coordinates = c.statement.coordinates;
                let outputs = Some(c.statement.outputs.0);
                if let Some(target) =
                    tag_target(coordinates.ecosystem, coordinates.version, outputs)
                {
                    targets.insert(target, coordinates.version.to_string());
                }
            }
            Entry::TagObservation(t) if t.statement.tag.ecosystem != ECOSYSTEM_DOCKER => {
                if let Some(version) = targets.get(&t.statement.digest) {
                    row.insert("version".into(), Value::from(version.as_str()));
                }
            }
            _ => {}
        }
        all.push(row);
    }
    Ok(all)
}

/// The entries about a package, or about one version of it, described, oldest first.
fn package_rows(
    client: &NodeClient,
    spec: &PackageSpec,
) -> Result<Vec<Map<String, Value>>, String> {
    let mut all = history(client, &spec.subject())?;
    // The rebuilds of a rebuilt ecosystem's versions are entries of their own subject.
    let coordinates = spec.coordinates();
    if let Some(ecosystem) = pyrsia_core::tlog::rebuilt::rebuild_ecosystem(coordinates.ecosystem) {
        let rebuild = pyrsia_core::tlog::entry::Coordinates {
            ecosystem,
            ..coordinates
        };
        all.extend(history(client, &rebuild.subject())?);
        all.sort_by_key(|row| row["index"].as_u64());
    }
    if let Some(version) = &spec.version {
        // The version's entries and the tags that name it.
        all.retain(|r| r["version"] == version.as_str());
    }
    Ok(all)
}

/// The entries about `image`, described, oldest first.
fn rows(
    client: &NodeClient,
    image: &ImageRef<'_>,
    latest: bool,
) -> Result<Vec<Map<String, Value>>, String> {
    let name = format!("{}/{}", image.host, image.repository_path());
    let all = history(client, &name)?;
    let tag = image.tag.map(|t| t.as_str().to_string());
    let digest = image.digest.map(|d| d.to_string());
    // The digests the tag was seen at (all of them, or the latest only).
    let mut observations: Vec<&Map<String, Value>> = all
        .iter()
        .filter(|r| r["kind"] == "tag-observation" && tag.as_deref().is_none_or(|t| r["tag"] == t))
        .collect();
    if latest {
        observations = observations.split_off(observations.len().saturating_sub(1));
    }
    let mut versions: Vec<String> = observations
        .iter()
        .filter_map(|r| r["digest"].as_str().map(str::to_string))
        .collect();
    if let Some(d) = &digest {
        versions.retain(|v| v == d);
        versions.push(d.clone());
    }
    let keep_all = tag.is_none() && digest.is_none() && !latest;
    let kept = all
        .iter()
        .filter(|r| {
            keep_all
                || observations.contains(r)
                || r["version"]
                    .as_str()
                    .is_some_and(|v| versions.iter().any(|x| x == v))
        })
        .cloned()
        .collect();
    Ok(kept)
}

fn cell(row: &Map<String, Value>, field: &str) -> String {
    match row.get(field) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
    }
}

fn render(rows: &[Map<String, Value>], fields: &[&str], format: &str) -> String {
    match format {
        "json" => {
            let selected: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let picked: Map<String, Value> = fields
                        .iter()
                        .filter_map(|f| r.get(*f).map(|v| (f.to_string(), v.clone())))
                        .collect();
                    Value::Object(picked)
                })
                .collect();
            format!(
                "{}\n",
                serde_json::to_string_pretty(&selected).unwrap_or_default()
            )
        }
        "csv" => {
            let mut out = fields.join(",") + "\n";
            for r in rows {
                let line: Vec<String> = fields.iter().map(|f| csv_cell(&cell(r, f))).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            out
        }
        _ => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| fields.iter().map(|f| cell(r, f)).collect())
                .collect();
            let widths: Vec<usize> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    cells
                        .iter()
                        .map(|c| c[i].len())
                        .chain([f.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |values: &[String]| {
                let padded: Vec<String> = values
                    .iter()
                    .zip(&widths)
                    .map(|(v, w)| format!("{v:<w$}"))
                    .collect();
                padded.join("  ").trim_end().to_string() + "\n"
            };
            let header: Vec<String> = fields.iter().map(|f| f.to_uppercase()).collect();
            let mut out = line(&header);
            for c in &cells {
                out.push_str(&line(c));
            }
            out
        }
    }
}

fn csv_cell(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn formats_select_fields() {
        let rows = vec![
            row(json!({"index": 3, "kind": "commit", "outputs": ["sha256:a", "sha256:b"]})),
            row(json!({"index": 4, "kind": "tag-observation", "tag": "v,1"})),
        ];
        let fields = ["index", "kind", "tag", "outputs"];
        assert_eq!(
            render(&rows, &fields, "csv"),
            "index,kind,tag,outputs\n3,commit,,sha256:a sha256:b\n4,tag-observation,\"v,1\",\n"
        );
        let table = render(&rows, &fields[..2], "table");
        assert_eq!(
            table,
            "INDEX  KIND\n3      commit\n4      tag-observation\n"
        );
        let parsed: Value = serde_json::from_str(&render(&rows, &["kind"], "json")).unwrap();
        assert_eq!(
            parsed,
            json!([{"kind": "commit"}, {"kind": "tag-observation"}])
        );
    }
}
