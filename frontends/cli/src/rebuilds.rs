//! `pyrsia rebuilds`: the rebuild verdicts the log committed (issue 16), newest first: which
//! releases reproduced from their source and, for those that did not, every entry that
//! differs (what the upstream's artifact has that the source does not produce) or why the
//! build failed.

use std::process::ExitCode;

use argh::FromArgs;
use serde_json::Value;

use crate::client::{DEFAULT_NODE, NodeClient};

/// List the rebuild verdicts in the log, with what differs.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rebuilds")]
pub(crate) struct RebuildsCmd {
    /// only these verdicts: reproduced, reproduced-stabilized, not-reproduced or unverifiable
    #[argh(option)]
    verdict: Option<String>,
    /// at most this many (default 100)
    #[argh(option, default = "100")]
    limit: u64,
    /// the node's URL (default http://127.0.0.1:7888)
    #[argh(option, default = "String::from(DEFAULT_NODE)")]
    node: String,
}

pub(crate) fn run(cmd: &RebuildsCmd) -> ExitCode {
    let client = NodeClient::new(&cmd.node);
    let mut query = format!("/pyrsia/log/rebuilds?limit={}", cmd.limit);
    if let Some(verdict) = &cmd.verdict {
        query.push_str(&format!(
            "&verdict={}",
            crate::packages::query_escape(verdict)
        ));
    }
    match client.get_json(&query) {
        Ok(answer) => {
            let rebuilds = answer["rebuilds"].as_array().cloned().unwrap_or_default();
            print!("{}", render(&rebuilds));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pyrsia rebuilds: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One block per verdict: the release and its verdict, the recipe, then each differing entry
/// or the failure.
fn render(rebuilds: &[Value]) -> String {
    if rebuilds.is_empty() {
        return "no rebuild verdicts in the log\n".into();
    }
    let mut out = String::new();
    for r in rebuilds {
        let text = |key: &str| r[key].as_str().unwrap_or("").to_string();
        out.push_str(&format!(
            "#{} {} {}=={} {}: {}\n",
            r["index"],
            text("ecosystem"),
            text("name"),
            text("version"),
            text("artifact"),
            text("verdict")
        ));
        out.push_str(&format!("    recipe   {}\n", text("recipe")));
        if !text("failure").is_empty() {
            out.push_str(&format!("    failure  {}\n", text("failure")));
        }
        let side = |v: &Value| match v {
            Value::Null => "absent".to_string(),
            v => format!("{} bytes {}", v["size"], v["sha256"].as_str().unwrap_or("")),
        };
        for e in r["diff"]["entries"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "    diff     {}: upstream {}, rebuilt {}\n",
                e["name"].as_str().unwrap_or(""),
                side(&e["upstream"]),
                side(&e["rebuilt"])
            ));
        }
        if let Some(more) = r["diff"]["more"].as_u64().filter(|m| *m > 0) {
            out.push_str(&format!("    diff     … and {more} more entries\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_not_reproduced_verdict_names_each_differing_entry() {
        let rebuilds = [json!({
            "index": 7, "ecosystem": "pypi", "name": "demo", "version": "1.0",
            "artifact": "demo-1.0-py3-none-any.whl", "verdict": "not-reproduced",
            "recipe": "pypi-rebuild/v1; backend flit_core==3.9.0", "failure": "",
            "diff": { "entries": [
                { "name": "demo/injected.py", "upstream": { "size": 12, "sha256": "sha256:ab" }, "rebuilt": null }
            ], "more": 0 }
        })];
        let text = render(&rebuilds);
        assert!(text.contains("#7 pypi demo==1.0 demo-1.0-py3-none-any.whl: not-reproduced"));
        assert!(
            text.contains("diff     demo/injected.py: upstream 12 bytes sha256:ab, rebuilt absent")
        );
        assert_eq!(render(&[]), "no rebuild verdicts in the log\n");
    }
}
