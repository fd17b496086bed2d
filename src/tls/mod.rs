//! TLS for every listener (rustls with the ring provider, which builds for
//! aarch64 musl): the certificate in use, made self-signed when none is
//! configured, and reloaded when its files change so a renewed certificate
//! needs no restart.

pub mod der;
pub mod selfsigned;

use crate::config::Config;
use crate::store::disk;
use crate::store::durable::{create_dir_durable, replace_file};
use der::CertInfo;
use futures_rustls::TlsAcceptor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Where the certificate and key are read from.
#[derive(Debug, Clone)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Ours to create: no `[tls]` files were configured.
    pub self_signed: bool,
}

impl CertPaths {
    pub fn of(config: &Config) -> CertPaths {
        match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => CertPaths {
                cert: cert.clone(),
                key: key.clone(),
                self_signed: false,
            },
            _ => {
                let dir = config.data_dir.join("tls");
                CertPaths {
                    cert: dir.join("cert.pem"),
                    key: dir.join("key.pem"),
                    self_signed: true,
                }
            }
        }
    }
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
    if paths.self_signed && !(paths.cert.exists() && paths.key.exists()) {
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

fn server_config(paths: &CertPaths) -> Result<(Arc<rustls::ServerConfig>, CertInfo), String> {
    let (certs, key) = load(paths)?;
    let info = der::cert_info(&certs[0])
        .ok_or_else(|| format!("cannot parse certificate {}", paths.cert.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "certificate {} and key do not fit: {e}",
                paths.cert.display()
            )
        })?;
    Ok((Arc::new(config), info))
}

/// Modification times of both files: a change means reload.
fn stamp(paths: &CertPaths) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(&paths.cert)?, modified(&paths.key)?))
}

struct Loaded {
    stamp: Option<(SystemTime, SystemTime)>,
    acceptor: TlsAcceptor,
    info: CertInfo,
}

/// The server's TLS state on the executor thread.
pub struct Tls {
    paths: CertPaths,
    loaded: RefCell<Loaded>,
}

impl Tls {
    pub fn open(config: &Config) -> Result<Tls, String> {
        let paths = ensure_certificate(config)?;
        let stamp = stamp(&paths);
        let (server_config, info) = server_config(&paths)?;
        Ok(Tls {
            paths,
            loaded: RefCell::new(Loaded {
                stamp,
                acceptor: TlsAcceptor::from(server_config),
                info,
            }),
        })
    }

    /// The acceptor for a new handshake, reloading changed files first; a
    /// broken new pair is logged and the old one kept.
    pub fn acceptor(&self) -> TlsAcceptor {
        let now = stamp(&self.paths);
        let mut loaded = self.loaded.borrow_mut();
        if now != loaded.stamp {
            loaded.stamp = now;
            match server_config(&self.paths) {
                Ok((config, info)) => {
                    log::info!("TLS certificate reloaded, SHA-256 {}", info.fingerprint);
                    loaded.acceptor = TlsAcceptor::from(config);
                    loaded.info = info;
                }
                Err(e) => log::error!("keeping the previous TLS certificate: {e}"),
            }
        }
        loaded.acceptor.clone()
    }

    pub fn info(&self) -> CertInfo {
        self.loaded.borrow().info.clone()
    }
}
