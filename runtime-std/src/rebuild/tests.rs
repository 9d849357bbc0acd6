//! Archives written here, read back and compared: a wheel re-zipped in another order with
//! other times and a reordered `RECORD` reproduces after stabilising; one with a module its
//! source does not produce is not reproduced, and the module is named. Tarballs likewise.

use std::io::Write;
use std::path::Path;

use pyrsia_core::package::rebuild::Verdict;
use zip::write::SimpleFileOptions;

use super::{ArchiveKind, compare_files};

const INIT: &[u8] = b"VERSION = '1.0'\n";
const RECORD: &str = "demo/__init__.py,sha256=x,16\ndemo-1.0.dist-info/METADATA,sha256=y,11\ndemo-1.0.dist-info/RECORD,,\n";

/// A wheel at `path` holding `files` in that order, deflated as wheels are (stored once the
/// year is 2024 or later), with modification year `year`.
fn wheel(path: &Path, files: &[(&str, &[u8])], year: u16) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let time = zip::DateTime::from_date_and_time(year, 1, 2, 3, 4, 6).unwrap();
    let method = if year >= 2024 {
        zip::CompressionMethod::Stored
    } else {
        zip::CompressionMethod::Deflated
    };
    let options = SimpleFileOptions::default()
        .compression_method(method)
        .last_modified_time(time);
    for (name, content) in files {
        zip.start_file(*name, options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap();
}

/// An npm tarball at `path` holding `files` under `package/`, with modification time `mtime`.
fn tarball(path: &Path, files: &[(&str, &[u8])], mtime: u64) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        tar.append_data(&mut header, format!("package/{name}"), *content)
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn wheels_reproduce_bit_for_bit_after_stabilising_or_not_with_the_injected_module_named() {
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, &[u8]); 3] = [
        ("demo/__init__.py", INIT),
        ("demo-1.0.dist-info/METADATA", b"Name: demo\n"),
        ("demo-1.0.dist-info/RECORD", RECORD.as_bytes()),
    ];
    let upstream = dir.path().join("upstream.whl");
    wheel(&upstream, &files, 2020);
    let same = dir.path().join("same.whl");
    wheel(&same, &files, 2020);
    let c = compare_files(&upstream, &same, ArchiveKind::Wheel).unwrap();
    assert_eq!(c.verdict, Verdict::Reproduced);

    // Another order, other times, the RECORD's lines in another order.
    let reordered_record: String = RECORD.lines().rev().map(|l| format!("{l}\n")).collect();
    let restamped = dir.path().join("restamped.whl");
    wheel(
        &restamped,
        &[
            ("demo-1.0.dist-info/RECORD", reordered_record.as_bytes()),
            ("demo-1.0.dist-info/METADATA", b"Name: demo\n"),
            ("demo/__init__.py", INIT),
        ],
        2024,
    );
    let c = compare_files(&upstream, &restamped, ArchiveKind::Wheel).unwrap();
    assert_eq!(c.verdict, Verdict::ReproducedStabilized);
    assert_eq!(c.upstream_stabilized, c.rebuilt_stabilized);

    // The upstream's wheel carries a module its source does not produce.
    let injected = dir.path().join("injected.whl");
    let mut with_backdoor = files.to_vec();
    with_backdoor.push(("demo/_backdoor.py", b"import socket\n"));
    wheel(&injected, &with_backdoor, 2020);
    let c = compare_files(&injected, &same, ArchiveKind::Wheel).unwrap();
    assert_eq!(c.verdict, Verdict::NotReproduced);
    let missing: Vec<&str> = c.diff.missing().map(|e| e.name.as_str()).collect();
    assert_eq!(missing, ["demo/_backdoor.py"]);
    assert_eq!(c.diff.entries.len(), 1);

    // Not a zip: an error, not a verdict.
    let junk = dir.path().join("junk.whl");
    std::fs::write(&junk, b"not a zip").unwrap();
    assert!(compare_files(&junk, &same, ArchiveKind::Wheel).is_err());
}

#[test]
fn tarballs_compare_uncompressed_and_an_altered_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, &[u8]); 2] = [
        ("package.json", b"{\"name\":\"demo\",\"version\":\"1.0.0\"}"),
        ("index.js", b"module.exports = 1;\n"),
    ];
    let upstream = dir.path().join("upstream.tgz");
    tarball(&upstream, &files, 499162500);
    let repacked = dir.path().join("repacked.tgz");
    tarball(&repacked, &[files[1], files[0]], 1_700_000_000);
    let c = compare_files(&upstream, &repacked, ArchiveKind::NpmTarball).unwrap();
    assert_eq!(c.verdict, Verdict::ReproducedStabilized);

    let altered = dir.path().join("altered.tgz");
    tarball(
        &altered,
        &[files[0], ("index.js", b"require('child_process');\n")],
        499162500,
    );
    let c = compare_files(&altered, &repacked, ArchiveKind::NpmTarball).unwrap();
    assert_eq!(c.verdict, Verdict::NotReproduced);
    let differing: Vec<&str> = c.diff.differing().map(|e| e.name.as_str()).collect();
    assert_eq!(differing, ["package/index.js"]);
}
