//! Rebuilds (issue 16): reading the upstream's artifact and a rebuild of it into the entries
//! core's comparison decides on ([`pyrsia_core::package::rebuild`]). A wheel is a zip; an
//! npm tarball is a gzipped tar, compared uncompressed (gzip bytes differ across zlib
//! versions). This module does the IO; the verdict and the diff are core's.

mod archive;
mod pypi;
pub mod sandbox;

pub use archive::{ArchiveKind, compare_files, entries};
pub use pypi::PypiRebuilder;

#[cfg(test)]
mod tests;
