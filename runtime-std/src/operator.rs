//! The operator token: a secret in the data dir, readable only by the node's user, that
//! mutating admin endpoints (endorsing a membership change) require as `Authorization: Bearer
//! TOKEN`. Whoever can read the data dir operates the node; a process of another user, or a
//! web page reaching the port through DNS rebinding, cannot.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// The token file's name inside the data dir.
pub const TOKEN_FILE: &str = "operator-token";

/// The operator token in `data_dir`, created (64 hex digits from the operating system's
/// randomness, mode 0600) on first use.
pub fn load_or_create(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    match fs::read_to_string(&path) {
        Ok(token) => Ok(token.trim().to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| io::Error::other(e.to_string()))?;
            let token: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            fs::create_dir_all(data_dir)?;
            let tmp = data_dir.join(format!("{TOKEN_FILE}.tmp"));
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(token.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            Ok(token)
        }
        Err(e) => Err(e),
    }
}

/// Whether `presented` is the token, compared in constant time.
pub fn matches(token: &str, presented: &str) -> bool {
    let (a, b) = (token.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_compared_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let token = load_or_create(dir.path()).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(load_or_create(dir.path()).unwrap(), token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches(&token, &token));
        assert!(!matches(&token, &token[1..]));
        assert!(!matches(&token, ""));
    }
}
