//! The certificate a fresh box starts with: self-signed for its host name,
//! made on first start and kept in the data directory, so mail clients can
//! pin it (its fingerprint is in the log and in `status`).

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use std::time::{SystemTime, UNIX_EPOCH};

/// Years a generated certificate is valid.
const VALID_YEARS: i32 = 10;

/// A new ECDSA P-256 key and certificate, as PEM (certificate, key).
pub fn generate(hostname: &str) -> Result<(String, String), String> {
    let mut names = vec![hostname.to_string()];
    if hostname != "localhost" {
        names.push("localhost".to_string());
    }
    let mut params = CertificateParams::new(names)
        .map_err(|e| format!("cannot make a certificate for {hostname:?}: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, hostname);
    params.distinguished_name = dn;
    let year = current_year();
    params.not_before = rcgen::date_time_ymd(year, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + VALID_YEARS, 1, 1);
    let key = KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot sign the certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The civil year now.
fn current_year() -> i32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::ops::clock::civil_from_days((secs / 86_400) as i64).0 as i32
}

#[cfg(test)]
mod tests {
    #[test]
    fn year_is_plausible() {
        let year = super::current_year();
        assert!((2024..2200).contains(&year), "{year}");
    }
}
