//! TLS on the mirror port (`--tls-cert`, `--tls-key`): PEM files read at start and read again
//! when the node gets SIGHUP, so a renewed certificate (certbot, an internal CA's rotation)
//! takes effect without a restart. New handshakes use the new certificate; connections
//! already open keep theirs. A reload that fails (a missing file, a key that does not match
//! the certificate) is logged and changes nothing: the node goes on with the certificate it
//! has.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the node's certificate chain and private key are, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain: the node's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// The private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The certificate the mirror port presents, swapped in place by [`ReloadableCert::reload`].
#[derive(Debug)]
pub struct ReloadableCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Reads `files`; fails with a message naming the file when either cannot be used.
    pub fn load(files: TlsFiles) -> Result<Arc<ReloadableCert>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = RwLock::new(Arc::new(read_certified_key(&files, &provider)?));
        Ok(Arc::new(ReloadableCert {
            files,
            provider,
            current,
        }))
    }

    /// Reads the files again and, if they make a usable certificate and key, presents that
    /// from the next handshake on. On error the current certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = read_certified_key(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// The rustls server configuration for the mirror port: HTTP/1.1 only, this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The files this certificate is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn read_certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "--tls-key {}: no usable private key: {e}",
            files.key.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        format!(
            "--tls-key {} does not fit --tls-cert {}: {e}",
            files.key.display(),
            files.cert.display()
        )
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM certificate in the file",
            path.display()
        ));
    }
    Ok(chain)
}
