//! Client TLS settings: verified for a smarthost, opportunistic (any
//! certificate) for MX hosts.

use super::session::TlsMode;
use rustls::pki_types::ServerName;
use std::sync::Arc;

/// How TLS is used on one connection, with the settings it needs.
#[derive(Clone)]
pub enum TlsPolicy {
    /// STARTTLS must be offered and succeed; the certificate is verified.
    Required(Arc<rustls::ClientConfig>),
    /// TLS from the first byte, verified.
    Implicit(Arc<rustls::ClientConfig>),
    /// STARTTLS when offered, with no certificate check (what MX-to-MX
    /// mail does: an encrypted channel beats a plain one).
    Opportunistic(Arc<rustls::ClientConfig>),
    Off,
}

impl TlsPolicy {
    pub fn mode(&self) -> TlsMode {
        match self {
            TlsPolicy::Required(_) => TlsMode::Required,
            TlsPolicy::Implicit(_) => TlsMode::Implicit,
            TlsPolicy::Opportunistic(_) => TlsMode::Opportunistic,
            TlsPolicy::Off => TlsMode::Off,
        }
    }

    pub fn config(&self) -> Option<&Arc<rustls::ClientConfig>> {
        match self {
            TlsPolicy::Required(c) | TlsPolicy::Implicit(c) | TlsPolicy::Opportunistic(c) => {
                Some(c)
            }
            TlsPolicy::Off => None,
        }
    }
}

/// TLS settings for a smarthost: the built-in web roots plus `extra` PEM
/// certificates.
pub fn verified_config(
    extra: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// TLS settings that encrypt without checking who answers: MX hosts
/// rarely have certificates for the names mail is routed by.
pub fn opportunistic_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
