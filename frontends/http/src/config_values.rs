//! The effective value of each node option as text, for `pyrsia config show`, and rewriting
//! the config file for `pyrsia config set` with its comments and order kept.

use crate::config::{ConfigFile, Key, Kind, keys};
use crate::options::NodeOptions;

/// The value `options` holds for option `name`, as it would be written after the flag (a
/// switch is `true` or `false`; a repeatable option its values joined by `, `; an unset
/// optional value is empty). `None` for a name that is not an option.
pub fn effective_value(options: &NodeOptions, name: &str) -> Option<String> {
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let list = |v: &[String]| v.join(", ");
    Some(match name {
        "data-dir" => match &options.data_dir {
            Some(dir) => dir.display().to_string(),
            None => crate::options::default_data_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        },
        "http" => options.http.to_string(),
        "tls-cert" => path(&options.tls_cert),
        "tls-key" => path(&options.tls_key),
        "upstream" => list(&options.upstream),
        "allow-upstream" => options
            .allow_upstream
            .iter()
            .map(|h| h.as_str().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        "pypi-upstream" => options.pypi_upstream.clone(),
        "npm-upstream" => options.npm_upstream.clone(),
        "maven-upstream" => options.maven_upstream.clone(),
        "index-ttl" => options.index_ttl.to_string(),
        "offline" => options.offline.to_string(),
        "max-disk" => options.max_disk.map(|b| b.to_string()).unwrap_or_default(),
        "scrub-rate" => options.scrub_rate.to_string(),
        "scrub-every" => options.scrub_every.to_string(),
        "upstream-connect-timeout" => options.upstream_connect_timeout.to_string(),
        "upstream-read-timeout" => options.upstream_read_timeout.to_string(),
        "http-workers" => options.http_workers.to_string(),
        "genesis" => path(&options.genesis),
        "verified-only" => options.verified_only.to_string(),
        "reproduced-only" => options.reproduced_only.to_string(),
        "rebuild" => options.rebuild.to_string(),
        "rebuild-python" => options.rebuild_python.display().to_string(),
        "rebuild-node" => options.rebuild_node.display().to_string(),
        "rebuild-timeout" => options.rebuild_timeout.to_string(),
        "log-from" => options.log_from.clone().unwrap_or_default(),
        "p2p-listen" => options.p2p_listen.clone(),
        "peer" => list(&options.peer),
        "external-addr" => list(&options.external_addr),
        "relay-server" => options.relay_server.to_string(),
        "no-mdns" => options.no_mdns.to_string(),
        "no-quic" => options.no_quic.to_string(),
        "quic-on-lan" => options.quic_on_lan.to_string(),
        "no-piece-links" => options.no_piece_links.to_string(),
        "piece-link-port" => options.piece_link_port.to_string(),
        "max-upload-rate" => options
            .max_upload_rate
            .map(|r| r.to_string())
            .unwrap_or_default(),
        "max-download-rate" => options
            .max_download_rate
            .map(|r| r.to_string())
            .unwrap_or_default(),
        "max-peers" => options.max_peers.map(|n| n.to_string()).unwrap_or_default(),
        "edge-listen" => options
            .edge_listen
            .map(|a| a.to_string())
            .unwrap_or_default(),
        "round-timeout-ms" => options.round_timeout_ms.to_string(),
        "build-timeout" => options.build_timeout.to_string(),
        "max-builds" => options.max_builds.to_string(),
        "checkpoint-refresh" => options.checkpoint_refresh.to_string(),
        "test-byzantine" => options
            .test_byzantine
            .map(|b| format!("{b:?}"))
            .unwrap_or_default(),
        _ => return None,
    })
}

/// `text` (the config file at `path`, or empty for a new one) with option `name` set to
/// `values`: one value for an option that takes one, `true`/`false` for a switch, any
/// number for a repeatable option. The values are checked as the flag checks them; comments,
/// order and the other keys stay as they were.
pub fn set_in_text(
    path: &std::path::Path,
    text: &str,
    name: &str,
    values: &[String],
) -> Result<String, String> {
    let key = keys()
        .into_iter()
        .find(|k| k.name == name)
        .ok_or_else(|| format!("unknown key `{name}`: not a `pyrsia node` option"))?;
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    document[name] = toml_edit::Item::Value(toml_value(key, values)?);
    let updated = document.to_string();
    ConfigFile::parse(path, &updated)?;
    Ok(updated)
}

fn toml_value(key: Key, values: &[String]) -> Result<toml_edit::Value, String> {
    match (key.kind, values) {
        (Kind::Switch, [one]) => match one.as_str() {
            "true" => Ok(true.into()),
            "false" => Ok(false.into()),
            _ => Err(format!("`{}` is a switch: true or false", key.name)),
        },
        (Kind::Value, [one]) => Ok(match one.parse::<i64>() {
            Ok(number) => number.into(),
            Err(_) => one.as_str().into(),
        }),
        (Kind::Repeated, values) => Ok(toml_edit::Value::Array(
            values.iter().map(String::as_str).collect(),
        )),
        _ => Err(format!("`{}` takes exactly one value", key.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argh::FromArgs;
    use std::path::Path;

    #[test]
    fn every_option_has_an_effective_value() {
        let options = NodeOptions::from_args(&["node"], &[]).unwrap();
        for key in keys() {
            assert!(
                effective_value(&options, key.name).is_some(),
                "--{} is missing from effective_value",
                key.name
            );
        }
        assert_eq!(effective_value(&options, "http").unwrap(), "127.0.0.1:7888");
        assert_eq!(effective_value(&options, "offline").unwrap(), "false");
    }

    #[test]
    fn set_keeps_comments_and_checks_values() {
        let path = Path::new("c.toml");
        let text = "# my mirror\nhttp = \"0.0.0.0:7888\" # LAN\n";
        let one = |v: &str| vec![v.to_string()];
        let updated = set_in_text(path, text, "max-disk", &one("20G")).unwrap();
        assert!(
            updated.starts_with("# my mirror\nhttp = \"0.0.0.0:7888\" # LAN\n"),
            "{updated}"
        );
        assert!(updated.contains("max-disk = \"20G\""), "{updated}");
        let updated = set_in_text(path, &updated, "index-ttl", &one("30")).unwrap();
        assert!(updated.contains("index-ttl = 30"), "{updated}");
        let updated = set_in_text(path, &updated, "offline", &one("true")).unwrap();
        assert!(updated.contains("offline = true"), "{updated}");
        let peers = vec![
            "/ip4/127.0.0.1/tcp/1".to_string(),
            "/ip4/127.0.0.1/tcp/2".to_string(),
        ];
        let updated = set_in_text(path, &updated, "peer", &peers).unwrap();
        assert!(
            updated.contains("peer = [\"/ip4/127.0.0.1/tcp/1\", \"/ip4/127.0.0.1/tcp/2\"]"),
            "{updated}"
        );
        assert!(
            set_in_text(path, text, "max-disk", &one("12X"))
                .unwrap_err()
                .contains("invalid size unit")
        );
        assert!(
            set_in_text(path, text, "nope", &one("1"))
                .unwrap_err()
                .contains("unknown key `nope`")
        );
        assert!(set_in_text(path, text, "offline", &one("maybe")).is_err());
        assert!(set_in_text(path, text, "http", &[]).is_err());
    }
}
