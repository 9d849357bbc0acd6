//! Package archives read entry by entry, each entry's content streamed through sha256, with
//! bounds on the number of entries, a `RECORD`'s length and the bytes unpacked in all (a
//! zip or gzip bomb is refused, not unpacked).

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;

use pyrsia_core::digest::{Digest, Hasher};
use pyrsia_core::package::rebuild::{
    ARCHIVE_ENTRIES_MAX, ArchiveEntry, Comparison, compare, is_record, record_digest,
};

/// The most bytes one archive may unpack to.
const UNPACKED_MAX: u64 = 4 << 30;
/// The longest wheel `RECORD` read.
const RECORD_LEN_MAX: u64 = 16 << 20;

/// What kind of package archive a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    /// A wheel (zip).
    Wheel,
    /// An npm tarball (gzipped tar).
    NpmTarball,
}

/// The file entries of the archive at `path` (directories are not entries).
pub fn entries(path: &Path, kind: ArchiveKind) -> Result<Vec<ArchiveEntry>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match kind {
        ArchiveKind::Wheel => wheel_entries(file),
        ArchiveKind::NpmTarball => tarball_entries(file),
    }
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// Compares the upstream's artifact at `upstream` with the rebuild at `rebuilt`: core's
/// verdict, stabilised digests and diff.
pub fn compare_files(
    upstream: &Path,
    rebuilt: &Path,
    kind: ArchiveKind,
) -> Result<Comparison, String> {
    let upstream_entries = entries(upstream, kind)?;
    let rebuilt_entries = entries(rebuilt, kind)?;
    compare(
        (file_digest(upstream)?, &upstream_entries),
        (file_digest(rebuilt)?, &rebuilt_entries),
    )
    .map_err(|e| e.to_string())
}

/// The sha256 of a gzipped file's uncompressed bytes (at most the unpacking budget): what
/// an npm tarball is compared and attested by, since gzip bytes differ across zlib versions.
pub(crate) fn gunzipped_digest(path: &Path) -> Result<Digest, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (digest, size) = hash(flate2::read::GzDecoder::new(file).take(UNPACKED_MAX + 1))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if size > UNPACKED_MAX {
        return Err(format!(
            "{}: unpacks to more than {UNPACKED_MAX} bytes",
            path.display()
        ));
    }
    Ok(digest)
}

/// The sha256 of a whole file.
pub(crate) fn file_digest(path: &Path) -> Result<Digest, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (digest, _) = hash(file).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(digest)
}

fn wheel_entries(file: impl Read + Seek) -> Result<Vec<ArchiveEntry>, String> {
    let mut archive = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    if archive.len() > ARCHIVE_ENTRIES_MAX {
        return Err("too many entries".into());
    }
    let mut budget = UNPACKED_MAX;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| e.to_string())?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map_err(|e| e.to_string())?.into_owned();
        out.push(read_entry(name, &mut entry, &mut budget)?);
    }
    Ok(out)
}

fn tarball_entries(file: impl Read) -> Result<Vec<ArchiveEntry>, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut budget = UNPACKED_MAX;
    let mut out = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if entry.header().entry_type().is_dir() {
            continue;
        }
        if out.len() >= ARCHIVE_ENTRIES_MAX {
            return Err("too many entries".into());
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        out.push(read_entry(name, &mut entry, &mut budget)?);
    }
    Ok(out)
}

/// One entry: its content's size and sha256 (a `RECORD`'s stabilised digest), within what
/// is left of the unpacking budget.
fn read_entry(name: String, content: impl Read, budget: &mut u64) -> Result<ArchiveEntry, String> {
    let too_big = || format!("{name}: the archive unpacks to more than {UNPACKED_MAX} bytes");
    if is_record(&name) {
        let mut bytes = Vec::new();
        content
            .take(RECORD_LEN_MAX.min(*budget) + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{name}: {e}"))?;
        let size = bytes.len() as u64;
        if size > RECORD_LEN_MAX || size > *budget {
            return Err(too_big());
        }
        *budget -= size;
        return Ok(ArchiveEntry {
            name,
            size,
            sha256: record_digest(&bytes),
        });
    }
    let (sha256, size) = hash(content.take(*budget + 1)).map_err(|e| format!("{name}: {e}"))?;
    if size > *budget {
        return Err(too_big());
    }
    *budget -= size;
    Ok(ArchiveEntry { name, size, sha256 })
}

/// The sha256 and length of what `reader` yields (bound it with `take`).
fn hash(mut reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut hasher = Hasher::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut size = 0u64;
    loop {
        let read = reader.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&chunk[..read]);
    }
    Ok((hasher.finish(), size))
}
