//! Names of things in a registry: repository [`Name`]s, [`Tag`]s, manifest [`Reference`]s,
//! registry [`Host`]s and user-typed [`ImageRef`]s, all per the OCI distribution-spec grammar,
//! parsed by hand (no regex engine) into borrowed, validated types.

mod host;
mod image;
mod name;
mod tag;

pub use host::{DOCKER_HUB, HOST_LEN_MAX, Host, HostError};
pub use image::{ImageRef, ImageRefError, RepositoryPath};
pub use name::{NAME_LEN_MAX, Name, NameError};
pub use tag::{Reference, ReferenceError, TAG_LEN_MAX, Tag, TagError};
