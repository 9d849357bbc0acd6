//! Issue 15: a PyPI upstream that serves PEP 691 JSON with relative file URLs, under a path
//! (`--pypi-upstream http://…/root/dev/+simple/`), as devpi and company indexes do. pip
//! installs through the node online and with the upstream down; the node's pages carry the
//! upstream's sha256 and `requires-python`, with file URLs on the node.

use pyrsia_core::package::simple::SIMPLE_JSON;
use pyrsia_tests::devpi::Devpi;
use pyrsia_tests::http::get_full;
use pyrsia_tests::node::Node;
use pyrsia_tests::output::assert_ok;
use pyrsia_tests::pypi::{make_wheel, make_wheel_for_python, pip_install, sha256_hex};

#[test]
fn pip_installs_through_the_node_from_a_devpi_index_of_json_pages_under_a_path() {
    let work = tempfile::tempdir().unwrap();
    let packages = work.path().join("packages");
    let dep = make_wheel_for_python(&packages, "demo-dep", "1.0", &[], Some(">=3.8"));
    make_wheel(&packages, "demo-pkg", "1.0", &["demo-dep>=1.0"]);
    let mut upstream = Devpi::start(&work.path().join("devpi"), &packages);
    let node = Node::start(
        &work.path().join("node"),
        &["--pypi-upstream", &upstream.simple_url()],
    );
    let index = format!("{}/pypi/simple/", node.url());
    let devpi_log = upstream.log_file();
    let logs = || {
        let devpi = std::fs::read_to_string(&devpi_log).unwrap_or_default();
        format!("{}\n----- devpi\n{devpi}", node.log())
    };
    let installed = |target: &std::path::Path| {
        for module in ["demo_pkg", "demo_dep"] {
            let code = std::fs::read_to_string(target.join(module).join("__init__.py"))
                .unwrap_or_else(|_| panic!("{module} not installed\n{}", logs()));
            assert_eq!(code, "VERSION = '1.0'\n");
        }
    };

    let first = work.path().join("t1");
    assert_ok(
        &pip_install(&index, &first, &["demo-pkg"]),
        "pip install",
        &logs,
    );
    installed(&first);

    // The node's page: devpi's sha256 and requires-python, the file on the node.
    let page = get_full(
        &node.authority(),
        "/pypi/simple/demo-dep/",
        &[("Accept", SIMPLE_JSON)],
    );
    let body = page.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {page}"));
    let file = &json["files"][0];
    assert_eq!(file["filename"], "demo_dep-1.0-py3-none-any.whl", "{page}");
    assert_eq!(file["hashes"]["sha256"], sha256_hex(&dep), "{page}");
    assert_eq!(file["requires-python"], ">=3.8", "{page}");
    let url = file["url"].as_str().unwrap_or_default();
    assert!(
        url.contains("/pypi/files/demo-dep/demo_dep-1.0-py3-none-any.whl"),
        "{page}"
    );

    // The upstream goes down: the pages seen and the files stored still install.
    upstream.stop();
    let second = work.path().join("t2");
    assert_ok(
        &pip_install(&index, &second, &["demo-pkg"]),
        "pip install, upstream down",
        &logs,
    );
    installed(&second);
}
