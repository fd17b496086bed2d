//! The ACME objects (RFC 8555 §7.1) as the service sends them, the
//! payloads we send, and what goes into them: key authorizations, the
//! certificate request, and the certificate answering a TLS-ALPN-01
//! challenge (RFC 8737). Pure functions: bytes in, values out.

use super::jws::b64url;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub new_nonce: String,
    pub new_account: String,
    pub new_order: String,
}

/// The status of an order, authorization or challenge.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
    Expired,
    Deactivated,
    Revoked,
    #[serde(other)]
    Unknown,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ready => "ready",
            Status::Processing => "processing",
            Status::Valid => "valid",
            Status::Invalid => "invalid",
            Status::Expired => "expired",
            Status::Deactivated => "deactivated",
            Status::Revoked => "revoked",
            Status::Unknown => "in an unknown state",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Order {
    pub status: Status,
    #[serde(default)]
    pub authorizations: Vec<String>,
    pub finalize: String,
    pub certificate: Option<String>,
    pub error: Option<Problem>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Authorization {
    pub status: Status,
    pub identifier: Identifier,
    #[serde(default)]
    pub challenges: Vec<Challenge>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Challenge {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    #[serde(default)]
    pub token: String,
    pub status: Status,
    pub error: Option<Problem>,
}

/// An error document (RFC 7807, RFC 8555 §6.7).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub detail: String,
}

impl Problem {
    /// The ACME error's short name (`badNonce`), or the whole type.
    pub fn name(&self) -> &str {
        self.kind
            .strip_prefix("urn:ietf:params:acme:error:")
            .unwrap_or(&self.kind)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.name(), self.detail.as_str()) {
            ("", "") => f.write_str("no details"),
            (name, "") => f.write_str(name),
            ("", detail) => f.write_str(detail),
            (name, detail) => write!(f, "{name}: {detail}"),
        }
    }
}

/// One of the objects above, from a response body.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("unreadable {what}: {e}"))
}

/// The error document of a failed request, if the body is one.
pub fn problem(body: &[u8]) -> Option<Problem> {
    serde_json::from_slice(body).ok()
}

pub fn new_account(contact: Option<&str>) -> String {
    let mut account = json!({ "termsOfServiceAgreed": true });
    if let Some(contact) = contact {
        account["contact"] = json!([contact]);
    }
    account.to_string()
}

pub fn new_order(names: &[String]) -> String {
    let identifiers: Vec<_> = names
        .iter()
        .map(|name| json!({ "type": "dns", "value": name }))
        .collect();
    json!({ "identifiers": identifiers }).to_string()
}

pub fn finalize(csr_der: &[u8]) -> String {
    json!({ "csr": b64url(csr_der) }).to_string()
}

/// What a challenge is answered with (RFC 8555 §8.1).
pub fn key_authorization(token: &str, thumbprint: &str) -> String {
    format!("{token}.{thumbprint}")
}

/// A new key and the request for a certificate for `names` (the first
/// is also the subject's CN): (CSR as DER, the key as PEM).
pub fn certificate_request(names: &[String]) -> Result<(Vec<u8>, String), String> {
    let key = KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    let mut params = CertificateParams::new(names.to_vec())
        .map_err(|e| format!("cannot request a certificate for {names:?}: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[0].as_str());
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| format!("cannot sign the certificate request: {e}"))?;
    Ok((csr.der().to_vec(), key.serialize_pem()))
}

/// The self-signed certificate that answers a TLS-ALPN-01 challenge for
/// `name` (RFC 8737 §3): `name` as its only subjectAltName and the
/// critical acmeIdentifier extension holding the SHA-256 of the key
/// authorization.
pub fn tls_alpn_certificate(
    name: &str,
    key_authorization: &str,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), String> {
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let mut params = CertificateParams::new(vec![name.to_string()])
        .map_err(|e| format!("cannot make a challenge certificate for {name:?}: {e}"))?;
    params
        .custom_extensions
        .push(CustomExtension::new_acme_identifier(digest.as_ref()));
    let key = KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot sign the challenge certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key))
}

/// The certificates of a PEM chain, leaf first; at least one.
pub fn chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("unreadable certificate chain: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the service's answer".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_as_a_service_sends_them() {
        let directory: Directory = parse(
            br#"{"keyChange":"https://ca.test/rollover","meta":{"termsOfService":"data:text/plain,x"},
               "newAccount":"https://ca.test/acct","newNonce":"https://ca.test/nonce",
               "newOrder":"https://ca.test/order","revokeCert":"https://ca.test/revoke"}"#,
            "directory",
        )
        .unwrap();
        assert_eq!(directory.new_order, "https://ca.test/order");
        let order: Order = parse(
            br#"{"status":"pending","expires":"2026-12-03T00:00:00Z",
               "identifiers":[{"type":"dns","value":"mx.test"}],
               "authorizations":["https://ca.test/authz/1"],"finalize":"https://ca.test/fin/1"}"#,
            "order",
        )
        .unwrap();
        assert_eq!(order.status, Status::Pending);
        assert_eq!(order.authorizations, ["https://ca.test/authz/1"]);
        assert_eq!(order.certificate, None);
        let authz: Authorization = parse(
            br#"{"status":"pending","identifier":{"type":"dns","value":"mx.test"},
               "challenges":[{"type":"http-01","url":"https://ca.test/chal/1","token":"tok","status":"pending"},
                             {"type":"dns-01","url":"https://ca.test/chal/2","token":"tok2","status":"pending"},
                             {"type":"new-kind","url":"https://ca.test/chal/3","status":"surprising"}]}"#,
            "authorization",
        )
        .unwrap();
        assert_eq!(authz.identifier.value, "mx.test");
        assert_eq!(authz.challenges[0].kind, "http-01");
        assert_eq!(authz.challenges[2].status, Status::Unknown);
        let invalid: Challenge = parse(
            br#"{"type":"http-01","url":"u","token":"t","status":"invalid",
               "error":{"type":"urn:ietf:params:acme:error:connection","detail":"refused","status":400}}"#,
            "challenge",
        )
        .unwrap();
        assert_eq!(invalid.error.unwrap().to_string(), "connection: refused");
        assert!(parse::<Order>(b"{\"status\":\"valid\"}", "order").is_err());
        assert!(parse::<Order>(b"<html>", "order")
            .unwrap_err()
            .starts_with("unreadable order"));
        let bad_nonce =
            problem(br#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"stale"}"#);
        assert_eq!(bad_nonce.unwrap().name(), "badNonce");
    }

    #[test]
    fn payloads() {
        let account: serde_json::Value =
            serde_json::from_str(&new_account(Some("mailto:a@b.test"))).unwrap();
        assert_eq!(account["termsOfServiceAgreed"], true);
        assert_eq!(account["contact"][0], "mailto:a@b.test");
        assert!(!new_account(None).contains("contact"));
        let order: serde_json::Value =
            serde_json::from_str(&new_order(&["a.test".into(), "b.test".into()])).unwrap();
        assert_eq!(order["identifiers"][1]["value"], "b.test");
        assert_eq!(order["identifiers"][0]["type"], "dns");
        assert_eq!(finalize(&[0xfb, 0xff]), "{\"csr\":\"-_8\"}");
        assert_eq!(key_authorization("tok", "thumb"), "tok.thumb");
    }

    /// The DER content of the first extension with `oid` in `der`, and
    /// whether it is critical: found by its encoding, which is unique.
    fn extension(der: &[u8], oid: &[u8]) -> Option<(bool, Vec<u8>)> {
        let mut pattern = vec![0x06, oid.len() as u8];
        pattern.extend_from_slice(oid);
        let at = der.windows(pattern.len()).position(|w| w == pattern)? + pattern.len();
        let rest = &der[at..];
        let (critical, rest) = match rest {
            [0x01, 0x01, flag, rest @ ..] => (*flag != 0, rest),
            _ => (false, rest),
        };
        let [0x04, len, rest @ ..] = rest else {
            return None;
        };
        Some((critical, rest[..*len as usize].to_vec()))
    }

    #[test]
    fn challenge_certificate_carries_the_digest_critically() {
        let (cert, _key) = tls_alpn_certificate("mx.test", "tok.thumb").unwrap();
        // id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31
        let oid = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let (critical, content) = extension(&cert, &oid).expect("acmeIdentifier");
        assert!(critical);
        let digest = ring::digest::digest(&ring::digest::SHA256, b"tok.thumb");
        let mut expected = vec![0x04, 32];
        expected.extend_from_slice(digest.as_ref());
        assert_eq!(content, expected, "an OCTET STRING of the SHA-256");
        let info = crate::tls::der::cert_info(&cert).unwrap();
        assert_eq!(info.names, ["mx.test"]);
    }

    #[test]
    fn certificate_request_names_every_name() {
        let names = vec!["mx.test".to_string(), "mail.test".to_string()];
        let (csr, key_pem) = certificate_request(&names).unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // subjectAltName in the requested extensions: both names as dNSName.
        let (_, san) = extension(&csr, &[0x55, 0x1d, 0x11]).expect("subjectAltName");
        let mut expected = vec![0x30, 2 + 7 + 2 + 9, 0x82, 7];
        expected.extend_from_slice(b"mx.test");
        expected.extend_from_slice(&[0x82, 9]);
        expected.extend_from_slice(b"mail.test");
        assert_eq!(san, expected);
        // CN=mx.test
        let cn = [0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x07];
        let at = csr.windows(cn.len()).position(|w| w == cn).expect("CN");
        assert_eq!(&csr[at + cn.len()..at + cn.len() + 7], b"mx.test");
    }

    #[test]
    fn chains() {
        let (cert, _) = crate::tls::selfsigned::generate("mx.test").unwrap();
        let two = format!("{cert}{cert}");
        assert_eq!(chain(two.as_bytes()).unwrap().len(), 2);
        assert!(chain(b"").is_err());
        assert!(chain(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n").is_err());
    }
}
