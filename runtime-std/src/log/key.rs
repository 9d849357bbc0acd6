//! The node's signing key, kept in the data dir: created once from the operating system's
//! randomness, readable only by the node's user.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use pyrsia_core::identity::SecretKey;

/// The key file's name inside the data dir.
pub const KEY_FILE: &str = "node.key";

/// Loads the node key from `data_dir/node.key`, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> io::Result<SecretKey> {
    let path = data_dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a 32-byte key", path.display()),
                )
            })?;
            Ok(SecretKey::from_seed(seed))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| io::Error::other(e.to_string()))?;
            fs::create_dir_all(data_dir)?;
            let tmp = data_dir.join(format!("{KEY_FILE}.tmp"));
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(&seed)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            tracing::info!(path = %path.display(), "created a new node key");
            Ok(SecretKey::from_seed(seed))
        }
        Err(e) => Err(e),
    }
}
