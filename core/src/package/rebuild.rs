//! Comparing a rebuilt package archive with the one the registry serves: what a rebuilder
//! (`pypi-rebuild/v1` for wheels, `npm-rebuild/v1` for tarballs; issue 16) decides from the
//! two archives. The runtime reads each archive (a wheel's zip, an npm tarball's tar) into
//! [`ArchiveEntry`]s; this module decides, sans IO:
//!
//! 1. **Reproduced**: the two files are the same bytes (equal sha256).
//! 2. **ReproducedStabilized**: not the same bytes, but the same entries once stabilised:
//!    sorted by name, times and permissions ignored, each entry's content compared by sha256
//!    and size, and a wheel's `RECORD` compared as the set of its lines
//!    ([`record_digest`]), whose order a build backend does not fix.
//! 3. **NotReproduced**, with a [`Diff`]: the entries added (in the rebuild only: nothing),
//!    missing (in the upstream's only: the injected-package attack shows here, as a module the
//!    source does not produce) and differing, each with its sizes and sha256s.
//!
//! The stabilised digest ([`stabilized_digest`]) is what rebuilders attest next to the two
//! files' digests: members that stabilised the same entries attest the same value.

use alloc::string::String;
use alloc::vec::Vec;

use crate::digest::{Digest, Hasher};

/// The most entries one archive may have for a comparison (a wheel or tarball with more is
/// refused rather than compared).
pub const ARCHIVE_ENTRIES_MAX: usize = 65_536;
/// The most differing entries a [`Diff`] names; the rest are counted.
pub const DIFF_ENTRIES_MAX: usize = 64;

/// One file of an archive, as the runtime read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Its path in the archive.
    pub name: String,
    /// Its uncompressed size.
    pub size: u64,
    /// The sha256 of its uncompressed content, or for a wheel's `RECORD` its
    /// [`record_digest`].
    pub sha256: Digest,
}

/// How a rebuild compares with the upstream's artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// The same bytes.
    Reproduced,
    /// The same entries once stabilised.
    ReproducedStabilized,
    /// Different entries.
    NotReproduced,
}

/// An entry's side of a difference: its size and sha256.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Side {
    /// Uncompressed size.
    pub size: u64,
    /// Content sha256.
    pub sha256: Digest,
}

/// One entry that differs: present on one side only, or on both with other content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryDiff {
    /// The entry's path.
    pub name: String,
    /// The upstream's entry, if it has one.
    pub upstream: Option<Side>,
    /// The rebuild's entry, if it has one.
    pub rebuilt: Option<Side>,
}

/// What differs between the upstream's archive and the rebuild, named entry by entry (at
/// most [`DIFF_ENTRIES_MAX`], in name order).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diff {
    /// The differing entries named.
    pub entries: Vec<EntryDiff>,
    /// Differing entries beyond those named.
    pub more: usize,
}

impl Diff {
    /// Entries only the upstream's archive has (what the source did not produce).
    pub fn missing(&self) -> impl Iterator<Item = &EntryDiff> {
        self.entries.iter().filter(|e| e.rebuilt.is_none())
    }

    /// Entries only the rebuild has.
    pub fn added(&self) -> impl Iterator<Item = &EntryDiff> {
        self.entries.iter().filter(|e| e.upstream.is_none())
    }

    /// Entries both have, with other content.
    pub fn differing(&self) -> impl Iterator<Item = &EntryDiff> {
        self.entries
            .iter()
            .filter(|e| e.upstream.is_some() && e.rebuilt.is_some())
    }
}

/// The diff as a rebuild statement carries it ([`crate::tlog::rebuilt::RebuildStatement::diff`]):
/// postcard, at most [`crate::tlog::rebuilt::DIFF_LEN_MAX`] bytes (named entries beyond that
/// are counted in `more`). Empty for a diff with nothing in it.
pub fn encode_diff(diff: &Diff) -> Vec<u8> {
    if diff.entries.is_empty() && diff.more == 0 {
        return Vec::new();
    }
    let mut diff = diff.clone();
    loop {
        let bytes = postcard::to_allocvec(&diff).unwrap_or_default();
        if bytes.len() <= crate::tlog::rebuilt::DIFF_LEN_MAX || diff.entries.is_empty() {
            return bytes;
        }
        diff.entries.pop();
        diff.more += 1;
    }
}

/// Reads a rebuild statement's diff ([`encode_diff`]); `None` when it does not decode.
pub fn decode_diff(bytes: &[u8]) -> Option<Diff> {
    if bytes.is_empty() {
        return Some(Diff::default());
    }
    postcard::from_bytes(bytes).ok()
}

impl Verdict {
    /// The log's verdict for this comparison's.
    pub fn in_log(self) -> crate::tlog::rebuilt::RebuildVerdict {
        use crate::tlog::rebuilt::RebuildVerdict;
        match self {
            Verdict::Reproduced => RebuildVerdict::Reproduced,
            Verdict::ReproducedStabilized => RebuildVerdict::ReproducedStabilized,
            Verdict::NotReproduced => RebuildVerdict::NotReproduced,
        }
    }
}

/// Why two archives could not be compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompareError {
    /// More than [`ARCHIVE_ENTRIES_MAX`] entries.
    TooManyEntries,
    /// Two entries with one name: which one a client unpacks is the client's choice, so the
    /// archive has no single meaning to compare.
    DuplicateEntry,
}

impl core::fmt::Display for CompareError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CompareError::TooManyEntries => "the archive has too many entries to compare",
            CompareError::DuplicateEntry => "the archive has two entries with one name",
        })
    }
}

impl core::error::Error for CompareError {}

/// The outcome of comparing a rebuild with the upstream's artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// The verdict.
    pub verdict: Verdict,
    /// The upstream archive's stabilised digest.
    pub upstream_stabilized: Digest,
    /// The rebuild's stabilised digest.
    pub rebuilt_stabilized: Digest,
    /// What differs (empty unless `NotReproduced`).
    pub diff: Diff,
}

/// Whether `name` is a wheel's `RECORD` (`{name}-{version}.dist-info/RECORD`), whose lines
/// are compared as a set: read its content and pass [`record_digest`] as its sha256.
pub fn is_record(name: &str) -> bool {
    name.strip_suffix("/RECORD")
        .is_some_and(|dir| dir.ends_with(".dist-info") && !dir.contains('/'))
}

/// A wheel `RECORD`'s stabilised content digest: its non-empty lines (line endings
/// normalised), sorted.
pub fn record_digest(content: &[u8]) -> Digest {
    let mut lines: Vec<&[u8]> = content
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .collect();
    lines.sort_unstable();
    let mut hasher = Hasher::new();
    for line in lines {
        hasher.update(line);
        hasher.update(b"\n");
    }
    hasher.finish()
}

/// The stabilised digest of an archive's entries: the sha256 over each entry, in name
/// order, of its name, size and content sha256 (times and permissions are not part of it).
pub fn stabilized_digest(entries: &[ArchiveEntry]) -> Result<Digest, CompareError> {
    let sorted = sorted(entries)?;
    let mut hasher = Hasher::new();
    for entry in sorted {
        hasher.update(&(entry.name.len() as u64).to_be_bytes());
        hasher.update(entry.name.as_bytes());
        hasher.update(&entry.size.to_be_bytes());
        hasher.update(entry.sha256.as_bytes());
    }
    Ok(hasher.finish())
}

/// Compares the upstream's artifact (its file sha256 and entries) with the rebuild's.
pub fn compare(
    upstream: (Digest, &[ArchiveEntry]),
    rebuilt: (Digest, &[ArchiveEntry]),
) -> Result<Comparison, CompareError> {
    let upstream_stabilized = stabilized_digest(upstream.1)?;
    let rebuilt_stabilized = stabilized_digest(rebuilt.1)?;
    let verdict = if upstream.0 == rebuilt.0 {
        Verdict::Reproduced
    } else if upstream_stabilized == rebuilt_stabilized {
        Verdict::ReproducedStabilized
    } else {
        Verdict::NotReproduced
    };
    let diff = if verdict == Verdict::NotReproduced {
        diff(&sorted(upstream.1)?, &sorted(rebuilt.1)?)
    } else {
        Diff::default()
    };
    Ok(Comparison {
        verdict,
        upstream_stabilized,
        rebuilt_stabilized,
        diff,
    })
}

/// The entries in name order; refused when there are too many or a name repeats.
fn sorted(entries: &[ArchiveEntry]) -> Result<Vec<&ArchiveEntry>, CompareError> {
    if entries.len() > ARCHIVE_ENTRIES_MAX {
        return Err(CompareError::TooManyEntries);
    }
    let mut sorted: Vec<&ArchiveEntry> = entries.iter().collect();
    sorted.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    if sorted.windows(2).any(|w| w[0].name == w[1].name) {
        return Err(CompareError::DuplicateEntry);
    }
    Ok(sorted)
}

/// A merge of two name-sorted entry lists into the entries that differ.
fn diff(upstream: &[&ArchiveEntry], rebuilt: &[&ArchiveEntry]) -> Diff {
    let side = |e: &ArchiveEntry| Side {
        size: e.size,
        sha256: e.sha256,
    };
    let mut out = Diff::default();
    let mut push = |name: &str, upstream: Option<Side>, rebuilt: Option<Side>| {
        if out.entries.len() < DIFF_ENTRIES_MAX {
            out.entries.push(EntryDiff {
                name: String::from(name),
                upstream,
                rebuilt,
            });
        } else {
            out.more += 1;
        }
    };
    let (mut u, mut r) = (0, 0);
    while u < upstream.len() || r < rebuilt.len() {
        match (upstream.get(u), rebuilt.get(r)) {
            (Some(a), Some(b)) if a.name == b.name => {
                if (a.size, a.sha256) != (b.size, b.sha256) {
                    push(&a.name, Some(side(a)), Some(side(b)));
                }
                u += 1;
                r += 1;
            }
            (Some(a), Some(b)) if a.name < b.name => {
                push(&a.name, Some(side(a)), None);
                u += 1;
            }
            (Some(_), Some(b)) => {
                push(&b.name, None, Some(side(b)));
                r += 1;
            }
            (Some(a), None) => {
                push(&a.name, Some(side(a)), None);
                u += 1;
            }
            (None, Some(b)) => {
                push(&b.name, None, Some(side(b)));
                r += 1;
            }
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    fn entry(name: &str, content: &[u8]) -> ArchiveEntry {
        ArchiveEntry {
            name: name.into(),
            size: content.len() as u64,
            sha256: Digest::sha256(content),
        }
    }

    fn wheel() -> Vec<ArchiveEntry> {
        vec![
            entry("demo/__init__.py", b"VERSION = '1.0'\n"),
            entry("demo-1.0.dist-info/METADATA", b"Name: demo\n"),
            ArchiveEntry {
                name: "demo-1.0.dist-info/RECORD".into(),
                size: 40,
                sha256: record_digest(b"demo/__init__.py,sha256=a,16\nMETADATA,,\n"),
            },
        ]
    }

    #[test]
    fn the_same_bytes_are_reproduced() {
        let file = Digest::sha256(b"wheel");
        let c = compare((file, &wheel()), (file, &wheel())).unwrap();
        assert_eq!(c.verdict, Verdict::Reproduced);
        assert_eq!(c.upstream_stabilized, c.rebuilt_stabilized);
        assert!(c.diff.entries.is_empty());
    }

    #[test]
    fn the_same_entries_in_another_order_with_a_reordered_record_reproduce_stabilized() {
        let mut rebuilt = wheel();
        rebuilt.reverse();
        rebuilt[0].sha256 = record_digest(b"METADATA,,\r\ndemo/__init__.py,sha256=a,16\n\n");
        let c = compare(
            (Digest::sha256(b"upstream zip"), &wheel()),
            (Digest::sha256(b"rebuilt zip"), &rebuilt),
        )
        .unwrap();
        assert_eq!(c.verdict, Verdict::ReproducedStabilized);
        assert!(c.diff.entries.is_empty());
    }

    #[test]
    fn an_injected_module_is_not_reproduced_and_named_as_missing_from_the_rebuild() {
        let mut upstream = wheel();
        upstream.push(entry("demo/_backdoor.py", b"import os\n"));
        upstream[0] = entry("demo/__init__.py", b"from . import _backdoor\n");
        let mut rebuilt = wheel();
        rebuilt.push(entry("demo/py.typed", b""));
        let c = compare(
            (Digest::sha256(b"upstream zip"), &upstream),
            (Digest::sha256(b"rebuilt zip"), &rebuilt),
        )
        .unwrap();
        assert_eq!(c.verdict, Verdict::NotReproduced);
        let names = |it: &mut dyn Iterator<Item = &EntryDiff>| -> Vec<String> {
            it.map(|e| e.name.clone()).collect()
        };
        assert_eq!(names(&mut c.diff.missing()), ["demo/_backdoor.py"]);
        assert_eq!(names(&mut c.diff.added()), ["demo/py.typed"]);
        assert_eq!(names(&mut c.diff.differing()), ["demo/__init__.py"]);
        let changed = c.diff.differing().next().unwrap();
        assert_eq!(
            changed.upstream.unwrap().sha256,
            Digest::sha256(b"from . import _backdoor\n")
        );
    }

    #[test]
    fn diffs_are_bounded_and_duplicate_names_are_refused() {
        let upstream: Vec<ArchiveEntry> = (0..DIFF_ENTRIES_MAX + 10)
            .map(|i| entry(&alloc::format!("f{i:03}"), b"a"))
            .collect();
        let c = compare(
            (Digest::sha256(b"u"), &upstream),
            (Digest::sha256(b"r"), &[]),
        )
        .unwrap();
        assert_eq!((c.diff.entries.len(), c.diff.more), (DIFF_ENTRIES_MAX, 10));
        let twice = vec![entry("a", b"1"), entry("a", b"2")];
        assert_eq!(
            compare(
                (Digest::sha256(b"u"), &twice),
                (Digest::sha256(b"r"), &wheel())
            ),
            Err(CompareError::DuplicateEntry)
        );
        assert!(is_record("demo-1.0.dist-info/RECORD"));
        assert!(!is_record("demo/RECORD") && !is_record("x/demo-1.0.dist-info/RECORD"));
    }
}
