//! Registry hosts (`docker.io`, `ghcr.io`, `localhost:5000`, `[::1]:5000`) and Docker Hub's
//! aliases.

use core::fmt;

/// Longest registry host accepted, in bytes, port included.
pub const HOST_LEN_MAX: usize = 255;

/// Docker Hub's canonical host name, as containerd sends it in `?ns=` and as references use it.
pub const DOCKER_HUB: &str = "docker.io";

/// Other names clients use for Docker Hub; they normalise to [`DOCKER_HUB`].
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];

/// A validated, lowercased registry host with an optional port. Owned and fixed-size, so it can
/// be decoded from a percent-encoded query value without an allocator.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Host(heapless::String<HOST_LEN_MAX>);

/// Why a registry host was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum HostError {
    /// The host is empty.
    Empty,
    /// The host is longer than [`HOST_LEN_MAX`].
    TooLong,
    /// An empty label (`a..b`, leading or trailing `.`).
    EmptyLabel,
    /// A byte outside the host grammar, or a label starting or ending with `-`.
    InvalidCharacter {
        /// Byte offset of the byte.
        position: usize,
    },
    /// The port is not a number from 1 to 65535.
    InvalidPort,
}

impl HostError {
    /// A short static description, suitable for an OCI error message.
    pub const fn reason(&self) -> &'static str {
        match self {
            HostError::Empty => "registry host is empty",
            HostError::TooLong => "registry host is too long",
            HostError::EmptyLabel => "registry host has an empty label",
            HostError::InvalidCharacter { .. } => "registry host has an invalid character",
            HostError::InvalidPort => "registry host has an invalid port",
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl core::error::Error for HostError {}

impl Host {
    /// Docker Hub (`docker.io`), the default upstream.
    pub fn docker_hub() -> Self {
        let mut s = heapless::String::new();
        // DOCKER_HUB is far shorter than HOST_LEN_MAX.
        let _ = s.push_str(DOCKER_HUB);
        Host(s)
    }

    /// Validates and lowercases `text`; Docker Hub's aliases become `docker.io`.
    pub fn parse(text: &str) -> Result<Self, HostError> {
        if text.is_empty() {
            return Err(HostError::Empty);
        }
        if text.len() > HOST_LEN_MAX {
            return Err(HostError::TooLong);
        }
        let port_at = if text.starts_with('[') {
            let close = text.find(']').ok_or(HostError::InvalidCharacter {
                position: text.len(),
            })?;
            check_ipv6(&text[1..close])?;
            close + 1
        } else {
            let end = text.find(':').unwrap_or(text.len());
            check_domain(&text[..end])?;
            end
        };
        match &text[port_at..] {
            "" => {}
            port => check_port(port)?,
        }
        let mut host = heapless::String::new();
        for c in text.chars() {
            // Length was checked above and lowercasing ASCII keeps it.
            let _ = host.push(c.to_ascii_lowercase());
        }
        if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
            return Ok(Host::docker_hub());
        }
        Ok(Host(host))
    }

    /// The host text, lowercased.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is Docker Hub, whose single-component names live under `library/`.
    pub fn is_docker_hub(&self) -> bool {
        self.0 == DOCKER_HUB
    }
}

fn check_domain(domain: &str) -> Result<(), HostError> {
    if domain.is_empty() {
        return Err(HostError::Empty);
    }
    let mut offset = 0;
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        let bytes = label.as_bytes();
        for (i, &c) in bytes.iter().enumerate() {
            let edge = i == 0 || i == bytes.len() - 1;
            if !(c.is_ascii_alphanumeric() || (c == b'-' && !edge)) {
                return Err(HostError::InvalidCharacter {
                    position: offset + i,
                });
            }
        }
        offset += label.len() + 1;
    }
    Ok(())
}

fn check_ipv6(inner: &str) -> Result<(), HostError> {
    if inner.is_empty() || !inner.contains(':') {
        return Err(HostError::InvalidCharacter { position: 1 });
    }
    match inner
        .bytes()
        .position(|c| !(c.is_ascii_hexdigit() || c == b':' || c == b'.'))
    {
        Some(i) => Err(HostError::InvalidCharacter { position: 1 + i }),
        None => Ok(()),
    }
}

fn check_port(port: &str) -> Result<(), HostError> {
    let digits = port.strip_prefix(':').ok_or(HostError::InvalidPort)?;
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(HostError::InvalidPort);
    }
    match digits.parse::<u32>() {
        Ok(1..=65535) => Ok(()),
        _ => Err(HostError::InvalidPort),
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Host({:?})", self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_normalises() {
        for (input, expected) in [
            ("docker.io", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("Registry-1.Docker.IO", "docker.io"),
            ("ghcr.io", "ghcr.io"),
            ("localhost:5000", "localhost:5000"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("[::1]:5000", "[::1]:5000"),
            ("[fe80::1]", "[fe80::1]"),
        ] {
            assert_eq!(Host::parse(input).unwrap().as_str(), expected, "{input}");
        }
        assert!(Host::parse("index.docker.io").unwrap().is_docker_hub());
    }

    #[test]
    fn rejects_bad_hosts() {
        let cases: &[(&str, HostError)] = &[
            ("", HostError::Empty),
            (":5000", HostError::Empty),
            ("a..b", HostError::EmptyLabel),
            (".a", HostError::EmptyLabel),
            ("-a.io", HostError::InvalidCharacter { position: 0 }),
            ("a_b.io", HostError::InvalidCharacter { position: 1 }),
            ("a/b", HostError::InvalidCharacter { position: 1 }),
            ("a\0", HostError::InvalidCharacter { position: 1 }),
            ("host:0", HostError::InvalidPort),
            ("host:65536", HostError::InvalidPort),
            ("host:", HostError::InvalidPort),
            ("host:12a", HostError::InvalidPort),
            ("[::1", HostError::InvalidCharacter { position: 4 }),
            ("[zz]", HostError::InvalidCharacter { position: 1 }),
        ];
        for (input, expected) in cases {
            assert_eq!(Host::parse(input), Err(*expected), "input {input:?}");
        }
        assert_eq!(Host::parse(&"a".repeat(256)), Err(HostError::TooLong));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            if let Ok(h) = Host::parse(&s) {
                prop_assert_eq!(Host::parse(h.as_str()), Ok(h.clone()));
            }
        }
    }
}
