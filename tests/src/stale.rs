//! Whether a workspace binary is older than the sources it was built from. The end-to-end
//! tests spawn `target/<profile>/pyrsia`, and `cargo test -p pyrsia-tests` does not rebuild
//! it: after an edit, a test run without `cargo build --workspace --bins` first (the README's
//! test command does it) would test the previous build and prove nothing about the edit.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The sources cargo recorded for `binary` in its dep-info file (`<binary>.d`, beside it):
/// every file of the workspace and of path dependencies it was compiled from.
fn recorded_sources(binary: &Path) -> Vec<PathBuf> {
    let Ok(dep_info) = std::fs::read_to_string(binary.with_extension("d")) else {
        return Vec::new();
    };
    let Some((_, sources)) = dep_info.lines().next().and_then(|l| l.split_once(": ")) else {
        return Vec::new();
    };
    // Paths are separated by spaces; a space within a path is escaped as `\ `.
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = sources.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => paths.push(PathBuf::from(std::mem::take(&mut current))),
            _ => current.push(c),
        }
    }
    paths.push(PathBuf::from(current));
    paths.retain(|p| !p.as_os_str().is_empty());
    paths
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The first source of `binary` changed after it was built, if any (none when cargo left no
/// dep-info to compare with).
pub fn newer_source(binary: &Path) -> Option<PathBuf> {
    let built = modified(binary)?;
    recorded_sources(binary)
        .into_iter()
        .find(|source| modified(source).is_some_and(|changed| changed > built))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_changed_after_the_build_is_found_and_an_older_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (old, spaced, binary) = (
            dir.path().join("old.rs"),
            dir.path().join("with space.rs"),
            dir.path().join("bin"),
        );
        std::fs::write(&old, "").unwrap();
        std::fs::write(&spaced, "").unwrap();
        std::fs::write(&binary, "").unwrap();
        let escaped = spaced.display().to_string().replace(' ', "\\ ");
        std::fs::write(
            dir.path().join("bin.d"),
            format!("{}: {} {escaped}\n", binary.display(), old.display()),
        )
        .unwrap();
        let before = SystemTime::now() - std::time::Duration::from_secs(60);
        for source in [&old, &spaced] {
            std::fs::File::options()
                .write(true)
                .open(source)
                .unwrap()
                .set_modified(before)
                .unwrap();
        }
        assert_eq!(newer_source(&binary), None);
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&spaced)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(newer_source(&binary), Some(spaced));
    }
}
