//! Package coordinates beyond container images: npm names and versions, PyPI project names,
//! PEP 440 versions and distribution file names, and Maven coordinates with their
//! repository path form. Each type is parsed by hand from borrowed text: holding one proves
//! the text matches its ecosystem's grammar. Each type is also safe to use as a file-path
//! component: no `..`, no separators where the grammar has none, no NUL or non-ASCII bytes.
//!
//! These are what the package frontends route by and what the log's coordinates name.

mod maven;
pub mod maven_checksum;
#[cfg(feature = "alloc")]
pub mod maven_metadata;
pub mod maven_pom;
mod npm;
#[cfg(feature = "alloc")]
pub mod npm_registry;
mod pep440;
mod pypi;
#[cfg(feature = "alloc")]
pub mod rebuild;
#[cfg(feature = "alloc")]
pub mod rebuild_pypi;
#[cfg(feature = "alloc")]
pub mod simple;

pub use maven::{
    Checksum, Gav, GavError, Group, MAVEN_PATH_LEN_MAX, MAVEN_TAGS, MavenPath, MavenPathError,
    MavenSegment,
};
pub use npm::{
    NPM_DIST_TAG_LEN_MAX, NPM_NAME_LEN_MAX, NpmName, NpmNameError, NpmVersion, NpmVersionError,
    is_dist_tag,
};
pub use pep440::{PEP440_LEN_MAX, Pep440, Pep440Error};
pub use pypi::{
    DistFile, DistFileError, Normalized, PROJECT_NAME_LEN_MAX, ProjectName, ProjectNameError,
    SdistFormat,
};

#[cfg(test)]
mod npm_registry_tests;
#[cfg(test)]
mod simple_tests;
#[cfg(test)]
mod tests;
