//! The node configured the way operators configure daemons: a TOML file, environment
//! variables over it, flags over both (their order is unit-tested in the http crate). A real node reads a config file that sets its port,
//! data dir and upstream; an environment variable overrides the file's disk budget and a
//! flag the environment's; skopeo pulls through it. `pyrsia config set/show` write and
//! explain the same file. A file with a typo or a bad value stops the node before it
//! serves, with the file, line and key named. A node stopped (SIGTERM) the moment it first
//! answers stops cleanly: its signal handlers are in before its port serves anything.

use std::process::Command;
use std::time::Duration;

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::process::{Daemon, free_port, wait_http_ok};
use pyrsia_tests::registry::Registry;
use pyrsia_tests::{binary, output_text, pyrsia};

#[test]
fn file_then_environment_then_flags_configure_a_real_node() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    push_standard_images(work.path(), &registry.authority());
    let config = work.path().join("etc/pyrsia/config.toml");
    let port = free_port();
    let config_arg = config.to_str().unwrap();

    // `pyrsia config set` writes the file, each value checked as its flag checks it.
    let set = |key: &str, values: &[&str]| {
        let mut args = vec!["config", "--config", config_arg, "set", key];
        args.extend_from_slice(values);
        pyrsia(&args)
    };
    for (key, values) in [
        ("http", vec![format!("127.0.0.1:{port}")]),
        (
            "data-dir",
            vec![work.path().join("data").display().to_string()],
        ),
        ("upstream", vec![registry.url()]),
        ("max-disk", vec!["1G".to_string()]),
        ("no-mdns", vec!["true".to_string()]),
        (
            "p2p-listen",
            vec![format!("/ip4/127.0.0.1/tcp/{}", free_port())],
        ),
        ("index-ttl", vec!["30".to_string()]),
    ] {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let out = set(key, &values);
        assert!(
            out.status.success(),
            "config set {key}: {}",
            output_text(&out)
        );
    }
    let refused = set("max-disk", &["lots"]);
    assert!(!refused.status.success(), "a bad size must be refused");
    assert!(
        output_text(&refused).contains("invalid size"),
        "{}",
        output_text(&refused)
    );
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("max-disk = \"1G\""),
        "a refused set must leave the file as it was"
    );

    // The node reads the file; PYRSIA_MAX_DISK beats the file.
    let mut command = Command::new(binary("pyrsia"));
    command
        .args(["node", "--config", config_arg])
        .env("PYRSIA_MAX_DISK", "2G")
        .env("RUST_LOG", "info,fjall=warn,lsm_tree=warn");
    let node = Daemon::spawn(command, &work.path().join("node.log"));
    let url = format!("http://127.0.0.1:{port}");
    wait_http_ok(&format!("{url}/healthz"), Duration::from_secs(20), &|| {
        node.log_text()
    });
    let status: serde_json::Value = serde_json::from_str(
        &pyrsia_tests::http::get(&format!("{url}/status"))
            .unwrap()
            .small_body,
    )
    .unwrap();
    assert_eq!(
        status["mirror"]["max_bytes"],
        2u64 << 30,
        "env over file: {status}"
    );
    assert_eq!(
        status["mirror"]["upstreams"][0][1],
        registry.url(),
        "upstream from the file: {status}"
    );
    let out = skopeo_copy(
        &format!("127.0.0.1:{port}"),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "skopeo through the configured node", &node.log_text());
    assert!(
        work.path().join("data").exists(),
        "the file's data-dir is used"
    );

    // `pyrsia config show` says where each value comes from.
    let show = Command::new(binary("pyrsia"))
        .args(["config", "--config", config_arg, "show"])
        .env("PYRSIA_MAX_DISK", "2G")
        .output()
        .unwrap();
    let shown = output_text(&show);
    assert!(show.status.success(), "{shown}");
    assert!(
        shown.contains("max-disk = 2147483648  # environment, PYRSIA_MAX_DISK"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("http = \"127.0.0.1:{port}\"  # file, line 1")),
        "{shown}"
    );
    assert!(shown.contains("http-workers = 128  # default"), "{shown}");
    drop(node);

    // `pyrsia config edit` runs $EDITOR on a draft: a good edit replaces the file, a bad one
    // leaves it and keeps the draft.
    let edit = |editor: &str| {
        Command::new(binary("pyrsia"))
            .args(["config", "--config", config_arg, "edit"])
            .env_remove("VISUAL")
            .env("EDITOR", editor)
            .output()
            .unwrap()
    };
    let out = edit("sed -i s/1G/3G/");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("max-disk = \"3G\"")
    );
    let out = edit("sed -i s/max-disk/max-disque/");
    assert!(
        !out.status.success(),
        "a draft with an unknown key is refused"
    );
    assert!(
        output_text(&out).contains("unknown key `max-disque`"),
        "{}",
        output_text(&out)
    );
    assert!(
        output_text(&out).contains("your draft is kept in"),
        "{}",
        output_text(&out)
    );
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("max-disk = \"3G\""),
        "the refused edit left the file as it was"
    );

    // A typo stops the node before it serves, naming file, line and key.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("max-disck = \"3G\"\n");
    std::fs::write(&config, &text).unwrap();
    let lines = text.lines().count();
    let out = pyrsia(&["node", "--config", config_arg]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains(&format!("config.toml:{lines}: unknown key `max-disck`")),
        "{}",
        output_text(&out)
    );
    // So does a bad value in the environment, naming the variable.
    std::fs::write(&config, text.replace("max-disck = \"3G\"\n", "")).unwrap();
    let out = Command::new(binary("pyrsia"))
        .args(["node", "--config", config_arg])
        .env("PYRSIA_HTTP_WORKERS", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("PYRSIA_HTTP_WORKERS: `http-workers` = \"many\""),
        "{}",
        output_text(&out)
    );
}

/// A supervisor that stops a node the moment it answers its health check gets a clean stop
/// (exit status 0 after "stopped"), not SIGTERM's default action: CI once caught a node
/// killed in the gap between its first HTTP answer and its signal handlers. Ten rounds, each
/// SIGTERM sent as soon as `/healthz` answers.
#[test]
fn a_node_stopped_the_moment_it_answers_stops_cleanly() {
    let work = tempfile::tempdir().unwrap();
    for round in 0..10 {
        let dir = work.path().join(format!("node{round}"));
        let mut node = pyrsia_tests::node::Node::start(&dir, &[]);
        assert!(
            node.terminate(),
            "round {round}: the node did not stop cleanly\n{}",
            node.log()
        );
        assert!(
            node.log().contains("stopped"),
            "round {round}: no clean stop logged\n{}",
            node.log()
        );
    }
}
