use super::simple::*;
use crate::digest::Digest;

const HEX: &str = "0f343b0931126a20f133d67c2b018a3b5b1d6f1e4b1d6f1e4b1d6f1e4b1d6f1e";

fn sha(hex: &str) -> Digest {
    Digest::parse(&format!("sha256:{hex}")).unwrap()
}

#[test]
fn html_pages_are_read_with_hashes_markers_and_relative_urls() {
    let page = format!(
        "<!DOCTYPE html><html><body><h1>Links for demo</h1>\n\
         <a href=\"../../packages/demo-1.0-py3-none-any.whl#sha256={HEX}\" data-requires-python=\"&gt;=3.8\" data-dist-info-metadata=\"sha256={HEX}\">demo-1.0-py3-none-any.whl</a><br>\n\
         <A HREF='/packages/demo-0.9.tar.gz' data-yanked>demo-0.9.tar.gz</A>\n\
         <a href=\"https://files.example/demo-0.8.tar.gz#md5=abc\" data-yanked=\"broken &amp; old\">demo-0.8.tar.gz</a>\n\
         </body></html>"
    );
    let index = ProjectIndex::parse(
        IndexFormat::Html,
        page.as_bytes(),
        "http://127.0.0.1:8080/simple/demo/",
        "demo",
    )
    .unwrap();
    assert_eq!(index.files.len(), 3);
    let wheel = &index.files[0];
    assert_eq!(wheel.filename, "demo-1.0-py3-none-any.whl");
    assert_eq!(
        wheel.url,
        "http://127.0.0.1:8080/packages/demo-1.0-py3-none-any.whl"
    );
    assert_eq!(wheel.sha256, Some(sha(HEX)));
    assert_eq!(wheel.requires_python.as_deref(), Some(">=3.8"));
    assert_eq!(wheel.metadata, Some(Some(sha(HEX))));
    assert_eq!(wheel.yanked, None);
    let yanked = &index.files[1];
    assert_eq!(yanked.url, "http://127.0.0.1:8080/packages/demo-0.9.tar.gz");
    assert_eq!(yanked.yanked.as_deref(), Some(""));
    assert_eq!(yanked.sha256, None);
    let old = &index.files[2];
    assert_eq!(old.yanked.as_deref(), Some("broken & old"));
    assert_eq!(old.url, "https://files.example/demo-0.8.tar.gz");
}

#[test]
fn json_pages_are_read_and_both_formats_written() {
    let page = format!(
        r#"{{"meta":{{"api-version":"1.1"}},"name":"demo","files":[
            {{"filename":"demo-1.0.tar.gz","url":"/files/demo-1.0.tar.gz","hashes":{{"sha256":"{HEX}"}},
              "requires-python":">=3.8","yanked":"bad build","core-metadata":{{"sha256":"{HEX}"}}}},
            {{"filename":"demo-0.1.tar.gz","url":"https://cdn.example/demo-0.1.tar.gz","hashes":{{}},"dist-info-metadata":true}}
        ]}}"#
    );
    let index = ProjectIndex::parse(
        IndexFormat::Json,
        page.as_bytes(),
        "http://up.example/simple/demo/",
        "demo",
    )
    .unwrap();
    assert_eq!(
        index.files[0].url,
        "http://up.example/files/demo-1.0.tar.gz"
    );
    assert_eq!(index.files[0].yanked.as_deref(), Some("bad build"));
    assert_eq!(index.files[0].metadata, Some(Some(sha(HEX))));
    assert_eq!(index.files[1].metadata, Some(None));
    assert_eq!(index.files[1].sha256, None);

    let node_url = |file: &IndexFile| format!("/pypi/files/demo/{}", file.filename);
    for format in [IndexFormat::Json, IndexFormat::Html] {
        let written = index.render(format, node_url);
        let again =
            ProjectIndex::parse(format, &written, "http://node/pypi/simple/demo/", "demo").unwrap();
        assert_eq!(
            again.files[0].url,
            "http://node/pypi/files/demo/demo-1.0.tar.gz"
        );
        for (read, original) in again.files.iter().zip(&index.files) {
            assert_eq!(read.filename, original.filename);
            assert_eq!(read.sha256, original.sha256);
            assert_eq!(read.requires_python, original.requires_python);
            assert_eq!(read.yanked, original.yanked);
            assert_eq!(read.metadata, original.metadata, "{format:?}");
        }
    }
    let html = String::from_utf8(index.render(IndexFormat::Html, node_url)).unwrap();
    assert!(html.contains("data-requires-python=\"&gt;=3.8\""), "{html}");

    let stored = ProjectIndex::from_stored(&index.to_stored()).unwrap();
    assert_eq!(stored, index);
}

#[test]
fn bad_json_is_a_clear_error() {
    for page in [
        &b"not json"[..],
        br#"{"files":[]}"#,
        br#"{"name":"x","files":[{"url":"/a"}]}"#,
    ] {
        assert!(matches!(
            ProjectIndex::parse(IndexFormat::Json, page, "http://x/", "x"),
            Err(IndexError::Json(_))
        ));
    }
}

#[test]
fn the_format_follows_accept() {
    assert_eq!(IndexFormat::negotiate(None), IndexFormat::Html);
    assert_eq!(IndexFormat::negotiate(Some("text/html")), IndexFormat::Html);
    assert_eq!(IndexFormat::negotiate(Some(SIMPLE_JSON)), IndexFormat::Json);
    // pip's header: JSON first, HTML at lower weights.
    assert_eq!(
        IndexFormat::negotiate(Some(
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
        )),
        IndexFormat::Json
    );
    assert_eq!(
        IndexFormat::negotiate(Some("application/vnd.pypi.simple.v1+json;q=0.2, text/html")),
        IndexFormat::Html
    );
}

#[test]
fn relative_urls_resolve_like_a_browser() {
    let page = "http://h:1/simple/demo/";
    assert_eq!(resolve(page, "https://x/y"), "https://x/y");
    assert_eq!(resolve(page, "//cdn/y"), "http://cdn/y");
    assert_eq!(resolve(page, "/p/f.whl"), "http://h:1/p/f.whl");
    assert_eq!(resolve(page, "f.whl"), "http://h:1/simple/demo/f.whl");
    assert_eq!(resolve(page, "../../p/f.whl"), "http://h:1/p/f.whl");
    assert_eq!(resolve(page, "../other/"), "http://h:1/simple/other/");
    assert_eq!(
        resolve("http://h:1/simple/demo", "f.whl"),
        "http://h:1/simple/f.whl"
    );
}

#[test]
fn a_release_is_the_project_files_of_its_version_with_a_sha256() {
    let page = format!(
        "<a href=\"/p/demo_pkg-1.0-py3-none-any.whl#sha256={HEX}\">demo_pkg-1.0-py3-none-any.whl</a>\
         <a href=\"/p/demo-pkg-1.0.tar.gz\">demo-pkg-1.0.tar.gz</a>\
         <a href=\"/p/demo_pkg-1.0RC1-py3-none-any.whl#sha256={HEX}\">demo_pkg-1.0RC1-py3-none-any.whl</a>\
         <a href=\"/p/demo_pkg-1.0.1-py3-none-any.whl#sha256={HEX}\">demo_pkg-1.0.1-py3-none-any.whl</a>\
         <a href=\"/p/other-1.0-py3-none-any.whl#sha256={HEX}\">other-1.0-py3-none-any.whl</a>"
    );
    let index = ProjectIndex::parse(
        IndexFormat::Html,
        page.as_bytes(),
        "http://127.0.0.1/simple/demo-pkg/",
        "demo-pkg",
    )
    .unwrap();
    let project = crate::package::ProjectName::parse("Demo.Pkg").unwrap();
    let (checked, unchecked) = index.release(&project, "1.0");
    let names: Vec<&str> = checked.iter().map(|(f, _)| f.filename.as_str()).collect();
    assert_eq!(names, ["demo_pkg-1.0-py3-none-any.whl"]);
    assert_eq!(checked[0].1, sha(HEX));
    // The sdist has no hash: never fetched, so not part of what is attested.
    assert_eq!(unchecked, ["demo-pkg-1.0.tar.gz"]);
    // Versions compare as file names spell them, in lower case.
    let (rc, _) = index.release(&project, "1.0rc1");
    assert_eq!(rc.len(), 1);
    let file = crate::package::DistFile::parse("demo_pkg-1.0RC1-py3-none-any.whl").unwrap();
    assert_eq!(release_version(&file), "1.0rc1");
    assert!(index.release(&project, "2.0").0.is_empty());
}
