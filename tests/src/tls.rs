//! Test certificates: a throwaway CA (rcgen) that issues the node's certificate for
//! 127.0.0.1 and localhost, and curl as the TLS client that trusts only that CA.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};

/// A certificate authority of the test's own, its certificate written to [`TestCa::pem`].
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM), for clients that should trust it.
    pub pem: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `dir/<name>.pem`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        std::fs::create_dir_all(dir).expect("CA dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA");
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, issuer.pem()).expect("CA pem");
        TestCa { issuer, pem }
    }

    /// Issues a server certificate for `127.0.0.1` and `localhost`; writes it to `cert` and
    /// its key to `key` (PEM).
    pub fn issue(&self, cert: &Path, key: &Path) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = params.signed_by(&leaf_key, &self.issuer).expect("leaf");
        std::fs::write(cert, leaf.pem()).expect("cert pem");
        std::fs::write(key, leaf_key.serialize_pem()).expect("key pem");
    }
}

/// `curl` GET of `url` trusting only the CA certificate `ca` (its output, not checked).
pub fn curl_with_ca(url: &str, ca: &Path) -> Output {
    Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg(url)
        .output()
        .expect("curl")
}
