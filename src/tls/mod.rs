//! TLS for every listener (rustls with the ring provider, which builds for
//! aarch64 musl): the certificate in use (an ACME one, else the configured
//! files, else a self-signed one made here), reloaded when its files
//! change and swapped in place when a new one is obtained, so a renewed
//! certificate needs no restart; and the answers to TLS-ALPN-01
//! challenges, for clients asking for `acme-tls/1`.

pub mod der;
pub mod selfsigned;

use crate::config::Config;
use crate::store::disk;
use crate::store::durable::{create_dir_durable, replace_file};
use der::CertInfo;
use futures_rustls::server::TlsStream;
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use smol::net::TcpStream;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Where a certificate comes from, in the order one is preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Issued by the `[acme]` service, kept in DATA/tls/.
    Acme,
    /// The `[tls]` files.
    Configured,
    /// Made here for the host name, kept in DATA/tls/.
    SelfSigned,
}

impl Origin {
    pub fn describe(self) -> &'static str {
        match self {
            Origin::Acme => "ACME",
            Origin::Configured => "configured files",
            Origin::SelfSigned => "self-signed",
        }
    }
}

/// The files an ACME certificate is kept in, below DATA/tls/.
pub const ACME_CERT_FILE: &str = "acme-cert.pem";
pub const ACME_KEY_FILE: &str = "acme-key.pem";

/// Where the certificate and key are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub origin: Origin,
}

impl CertPaths {
    /// The certificate served while no ACME one is: the `[tls]` files,
    /// else the self-signed one.
    pub fn of(config: &Config) -> CertPaths {
        match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => CertPaths {
                cert: cert.clone(),
                key: key.clone(),
                origin: Origin::Configured,
            },
            _ => {
                let dir = dir(config);
                CertPaths {
                    cert: dir.join("cert.pem"),
                    key: dir.join("key.pem"),
                    origin: Origin::SelfSigned,
                }
            }
        }
    }

    /// Where an ACME certificate is kept.
    pub fn acme(config: &Config) -> CertPaths {
        let dir = dir(config);
        CertPaths {
            cert: dir.join(ACME_CERT_FILE),
            key: dir.join(ACME_KEY_FILE),
            origin: Origin::Acme,
        }
    }

    /// The certificate to serve at `now` (seconds since 1970): the ACME
    /// one while `[acme]` is enabled and it fits its key and has not
    /// expired, else [`CertPaths::of`].
    pub fn in_use(config: &Config, now: i64) -> CertPaths {
        let acme = CertPaths::acme(config);
        let valid = |info: &CertInfo| info.valid_from <= now && now < info.valid_until;
        match config.acme.enabled && usable(&acme).is_ok_and(|info| valid(&info)) {
            true => acme,
            false => CertPaths::of(config),
        }
    }
}

/// DATA/tls: the certificates made or obtained here.
pub fn dir(config: &Config) -> PathBuf {
    config.data_dir.join("tls")
}

/// Seconds since 1970 now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Writes a new self-signed certificate for `hostname` at `paths`.
pub fn make_self_signed(paths: &CertPaths, hostname: &str) -> Result<CertInfo, String> {
    let (cert, key) = selfsigned::generate(hostname)?;
    if let Some(dir) = paths.cert.parent() {
        create_dir_durable(disk::system(), dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Key first: a crash in between leaves a key without a certificate,
    // which the next start replaces, never a certificate without its key.
    replace_file(disk::system(), &paths.key, key.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", paths.key.display()))?;
    replace_file(disk::system(), &paths.cert, cert.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", paths.cert.display()))?;
    let der = CertificateDer::from_pem_slice(cert.as_bytes())
        .map_err(|e| format!("generated certificate unreadable: {e}"))?;
    der::cert_info(&der).ok_or_else(|| "generated certificate unreadable".to_string())
}

/// Makes the self-signed certificate if it is ours to make and missing.
pub fn ensure_certificate(config: &Config) -> Result<CertPaths, String> {
    let paths = CertPaths::of(config);
    if paths.origin == Origin::SelfSigned && !(paths.cert.exists() && paths.key.exists()) {
        make_self_signed(&paths, &config.hostname)?;
        log::info!(
            "generated a self-signed certificate for {} in {}",
            config.hostname,
            paths.cert.display()
        );
    }
    Ok(paths)
}

/// The certificate chain and key at `paths`, checked to load.
fn load(
    paths: &CertPaths,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&paths.cert)
        .and_then(|iter| iter.collect())
        .map_err(|e| format!("cannot read certificate {}: {e}", paths.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", paths.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&paths.key)
        .map_err(|e| format!("cannot read private key {}: {e}", paths.key.display()))?;
    Ok((certs, key))
}

/// Subject, validity and fingerprint of the certificate at `paths`.
pub fn show(paths: &CertPaths) -> Result<CertInfo, String> {
    let (certs, _) = load(paths)?;
    der::cert_info(&certs[0])
        .ok_or_else(|| format!("cannot parse certificate {}", paths.cert.display()))
}

/// What the certificate at `paths` says, once it is known to fit its key
/// (a crash between writing a new key and its certificate leaves a pair
/// that does not).
pub fn usable(paths: &CertPaths) -> Result<CertInfo, String> {
    server_config(paths).map(|(_, info)| info)
}

fn server_config(paths: &CertPaths) -> Result<(Arc<rustls::ServerConfig>, CertInfo), String> {
    let (certs, key) = load(paths)?;
    let info = der::cert_info(&certs[0])
        .ok_or_else(|| format!("cannot parse certificate {}", paths.cert.display()))?;
    let config = builder()?.with_single_cert(certs, key).map_err(|e| {
        format!(
            "certificate {} and key do not fit: {e}",
            paths.cert.display()
        )
    })?;
    Ok((Arc::new(config), info))
}

fn builder(
) -> Result<rustls::ConfigBuilder<rustls::ServerConfig, rustls::server::WantsServerCert>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth())
}

/// Modification times of both files: a change means reload.
fn stamp(paths: &CertPaths) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(&paths.cert)?, modified(&paths.key)?))
}

/// The ALPN protocol of TLS-ALPN-01 challenges (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Certificates answering TLS-ALPN-01 challenges, by the DNS name they
/// prove; the handshake threads of rustls only read them.
#[derive(Debug, Default, Clone)]
pub struct ChallengeCerts(Arc<Mutex<HashMap<String, Arc<CertifiedKey>>>>);

impl ChallengeCerts {
    /// Answers challenges for `name` with this certificate and key (DER).
    pub fn insert(
        &self,
        name: &str,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), String> {
        let key = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| format!("challenge key unusable: {e}"))?;
        let certified = Arc::new(CertifiedKey::new(vec![cert], key));
        self.lock().insert(name.to_ascii_lowercase(), certified);
        Ok(())
    }

    pub fn remove(&self, name: &str) {
        self.lock().remove(&name.to_ascii_lowercase());
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CertifiedKey>>> {
        // A panic while holding it left a plain map: still sound to use.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResolvesServerCert for ChallengeCerts {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        let offered = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        offered.then(|| self.lock().get(&name).cloned()).flatten()
    }
}

/// What answers a handshake: the certificate in use, or, for a client
/// offering `acme-tls/1`, the challenge certificates.
#[derive(Clone)]
pub struct Acceptor {
    config: Arc<rustls::ServerConfig>,
    challenge: Arc<rustls::ServerConfig>,
}

impl Acceptor {
    /// Reads the ClientHello and finishes the handshake with the
    /// settings it asks for.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let acceptor = rustls::server::Acceptor::default();
        let start = futures_rustls::LazyConfigAcceptor::new(acceptor, tcp).await?;
        let hello = start.client_hello();
        let challenge = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        let config = match challenge {
            true => self.challenge.clone(),
            false => self.config.clone(),
        };
        start.into_stream(config).await
    }
}

struct Loaded {
    paths: CertPaths,
    stamp: Option<(SystemTime, SystemTime)>,
    config: Arc<rustls::ServerConfig>,
    info: CertInfo,
}

/// The server's TLS state on the executor thread.
pub struct Tls {
    /// Served while no ACME certificate is.
    fallback: CertPaths,
    loaded: RefCell<Loaded>,
    challenges: ChallengeCerts,
    challenge: Arc<rustls::ServerConfig>,
}

impl Tls {
    pub fn open(config: &Config) -> Result<Tls, String> {
        let fallback = ensure_certificate(config)?;
        let mut paths = CertPaths::in_use(config, unix_now());
        let stamp = stamp(&paths);
        let (server_config, info) = match server_config(&paths) {
            Ok(loaded) => loaded,
            Err(e) if paths.origin == Origin::Acme => {
                log::warn!(
                    "ACME certificate unusable, serving the {} one: {e}",
                    fallback.origin.describe()
                );
                paths = fallback.clone();
                server_config(&paths)?
            }
            Err(e) => return Err(e),
        };
        let challenges = ChallengeCerts::default();
        let mut challenge = builder()?.with_cert_resolver(Arc::new(challenges.clone()));
        challenge.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        Ok(Tls {
            fallback,
            loaded: RefCell::new(Loaded {
                paths,
                stamp,
                config: server_config,
                info,
            }),
            challenges,
            challenge: Arc::new(challenge),
        })
    }

    /// The acceptor for a new handshake, reloading changed files first; a
    /// broken new pair is logged and the old one kept.
    pub fn acceptor(&self) -> Acceptor {
        let mut loaded = self.loaded.borrow_mut();
        // ACME files are written here and installed when whole; only the
        // others change under us.
        let now = match loaded.paths.origin {
            Origin::Acme => loaded.stamp,
            _ => stamp(&loaded.paths),
        };
        if now != loaded.stamp {
            loaded.stamp = now;
            match server_config(&loaded.paths) {
                Ok((config, info)) => {
                    log::info!("TLS certificate reloaded, SHA-256 {}", info.fingerprint);
                    loaded.config = config;
                    loaded.info = info;
                }
                Err(e) => log::error!("keeping the previous TLS certificate: {e}"),
            }
        }
        Acceptor {
            config: loaded.config.clone(),
            challenge: self.challenge.clone(),
        }
    }

    /// Serves the certificate at `paths` from the next handshake on (a
    /// renewed one, already on flash); on error the one in use stays.
    pub fn install(&self, paths: &CertPaths) -> Result<CertInfo, String> {
        let stamp = stamp(paths);
        let (config, info) = server_config(paths)?;
        *self.loaded.borrow_mut() = Loaded {
            paths: paths.clone(),
            stamp,
            config,
            info: info.clone(),
        };
        log::info!(
            "TLS certificate ({}) in use, SHA-256 {}",
            paths.origin.describe(),
            info.fingerprint
        );
        Ok(info)
    }

    /// Goes back to the `[tls]` or self-signed certificate (the ACME one
    /// expired).
    pub fn use_fallback(&self) -> Result<CertInfo, String> {
        let fallback = self.fallback.clone();
        self.install(&fallback)
    }

    pub fn info(&self) -> CertInfo {
        self.loaded.borrow().info.clone()
    }

    pub fn origin(&self) -> Origin {
        self.loaded.borrow().paths.origin
    }

    /// Where TLS-ALPN-01 answers go.
    pub fn challenges(&self) -> &ChallengeCerts {
        &self.challenges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_certificate_in_use_only_when_enabled_whole_and_valid() {
        let temp = tempfile::tempdir().unwrap();
        let text = format!(
            "hostname = \"mx.test\"\ndata_dir = {:?}\n",
            temp.path().to_str().unwrap()
        );
        let off = Config::from_toml(&text).unwrap();
        let on = Config::from_toml(&format!("{text}[acme]\nenabled = true\n")).unwrap();
        let now = unix_now();
        assert_eq!(CertPaths::in_use(&on, now).origin, Origin::SelfSigned);
        let acme = CertPaths::acme(&on);
        std::fs::create_dir_all(dir(&on)).unwrap();
        let (cert, key) = selfsigned::generate("mx.test").unwrap();
        let (_, other_key) = selfsigned::generate("mx.test").unwrap();
        std::fs::write(&acme.cert, &cert).unwrap();
        // A new key beside the old certificate (a crash between the two
        // writes) is no usable pair.
        std::fs::write(&acme.key, &other_key).unwrap();
        assert_eq!(CertPaths::in_use(&on, now).origin, Origin::SelfSigned);
        std::fs::write(&acme.key, &key).unwrap();
        assert_eq!(CertPaths::in_use(&on, now), acme);
        assert_eq!(CertPaths::in_use(&off, now).origin, Origin::SelfSigned);
        // Expired (the generated one ends within ten years).
        let later = now + 11 * 366 * 86_400;
        assert_eq!(CertPaths::in_use(&on, later).origin, Origin::SelfSigned);
        let with_files =
            format!("{text}[acme]\nenabled = true\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n");
        let configured = Config::from_toml(&with_files).unwrap();
        assert_eq!(CertPaths::in_use(&configured, now), acme, "ACME wins");
        assert_eq!(
            CertPaths::in_use(&configured, later).origin,
            Origin::Configured
        );
    }
}
