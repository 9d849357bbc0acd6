//! A token server that behaves like Docker Hub's `auth.docker.io` for distribution's
//! `auth: token:` mode: anonymous pull tokens as ES256 JWTs, signed by a key whose
//! self-signed certificate the registry trusts (`rootcertbundle`), carried in the `x5c`
//! header.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;
use tiny_http::{Header, Response, Server};

/// The `service` the registry expects in tokens.
pub const SERVICE: &str = "pyrsia-test-registry";
/// The issuer the registry trusts.
pub const ISSUER: &str = "pyrsia-test-issuer";

/// A running token server.
pub struct TokenServer {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
    requests: Arc<AtomicUsize>,
    /// The realm URL (`http://127.0.0.1:port/token`).
    pub realm: String,
    /// The certificate bundle for the registry's `rootcertbundle`.
    pub cert_path: PathBuf,
}

impl TokenServer {
    /// Generates a key and certificate under `dir` and starts serving tokens valid for
    /// `lifetime_secs`.
    pub fn start(dir: &Path, lifetime_secs: u64) -> TokenServer {
        Self::start_claiming(dir, lifetime_secs, lifetime_secs)
    }

    /// As [`TokenServer::start`], but the responses claim `expires_in: claimed_secs` whatever
    /// the tokens' real lifetime (a lying upstream).
    pub fn start_claiming(dir: &Path, lifetime_secs: u64, claimed_secs: u64) -> TokenServer {
        std::fs::create_dir_all(dir).expect("token dir");
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let signer =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .expect("key");
        let key = rcgen::KeyPair::try_from(pkcs8.as_ref()).expect("rcgen key");
        let mut params =
            rcgen::CertificateParams::new(vec!["pyrsia-token-issuer".into()]).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("certificate");
        let cert_path = dir.join("token-root.crt");
        std::fs::write(&cert_path, cert.pem()).expect("cert");
        let x5c = STANDARD.encode(cert.der());

        let server = Arc::new(Server::http("127.0.0.1:0").expect("token listen"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let (srv, count) = (server.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            while let Ok(request) = srv.recv() {
                count.fetch_add(1, Ordering::SeqCst);
                let scope = request
                    .url()
                    .split_once('?')
                    .map(|(_, q)| q)
                    .unwrap_or("")
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("scope="))
                    .map(percent_decode)
                    .unwrap_or_default();
                let token = sign_token(&signer, &rng, &x5c, &scope, lifetime_secs);
                let body =
                    json!({"token": token, "access_token": token, "expires_in": claimed_secs})
                        .to_string();
                let header = Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                    .expect("header");
                let _ = request.respond(Response::from_string(body).with_header(header));
            }
        });
        TokenServer {
            server,
            thread: Some(thread),
            requests,
            realm: format!("http://127.0.0.1:{port}/token"),
            cert_path,
        }
    }

    /// Tokens handed out so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `repository:library/x:pull` → the JWT `access` claim granting pull on that repository.
fn sign_token(
    signer: &EcdsaKeyPair,
    rng: &SystemRandom,
    x5c: &str,
    scope: &str,
    lifetime_secs: u64,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let access: Vec<_> = scope
        .split(' ')
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(json!({"type": kind, "name": name, "actions": actions.split(',').filter(|a| *a == "pull").collect::<Vec<_>>()}))
        })
        .collect();
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = json!({
        "iss": ISSUER, "sub": "", "aud": SERVICE,
        "exp": now + lifetime_secs, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", rand_suffix(rng)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signer.sign(rng, signing_input.as_bytes()).expect("sign");
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

fn rand_suffix(rng: &SystemRandom) -> u64 {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(rng, &mut bytes).expect("rng");
    u64::from_le_bytes(bytes)
}
