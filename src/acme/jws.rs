//! The account key and the signed requests of ACME (RFC 8555 §6.2): JWS
//! in flattened JSON, ES256 (ECDSA P-256 with SHA-256, the signature as
//! `r || s`), the public key as a JWK and its thumbprint (RFC 7638) that
//! key authorizations end with.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

/// base64url without padding, as JOSE writes every binary value.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWK of a public key with only its required members, sorted, with
/// no white space: what RFC 7638 §3 hashes.
pub fn canonical_jwk(members: &[(&str, &str)]) -> String {
    let mut sorted = members.to_vec();
    sorted.sort();
    let fields: Vec<String> = sorted
        .iter()
        .map(|(name, value)| format!("{}:{}", json!(name), json!(value)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// RFC 7638 thumbprint: base64url of the SHA-256 of the canonical JWK.
pub fn thumbprint_of(canonical: &str) -> String {
    b64url(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// Who a request is signed as: the key itself (new account) or the
/// account's URL (everything after).
#[derive(Debug, Clone, Copy)]
pub enum Signer<'a> {
    Jwk,
    Kid(&'a str),
}

/// The ACME account's key: ECDSA P-256.
pub struct AccountKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

impl AccountKey {
    pub fn generate() -> Result<AccountKey, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate an account key".to_string())?;
        AccountKey::from_pkcs8(pkcs8.as_ref())
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<AccountKey, String> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(|e| format!("not a P-256 account key: {e}"))?;
        Ok(AccountKey {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// The key as PEM (PKCS#8), as it is kept on flash.
    pub fn to_pem(&self) -> Result<String, String> {
        rcgen::KeyPair::try_from(self.pkcs8.as_slice())
            .map(|key| key.serialize_pem())
            .map_err(|e| format!("cannot write the account key: {e}"))
    }

    pub fn from_pem(text: &str) -> Result<AccountKey, String> {
        use rustls_pki_types::pem::PemObject;
        match rustls_pki_types::PrivateKeyDer::from_pem_slice(text.as_bytes()) {
            Ok(rustls_pki_types::PrivateKeyDer::Pkcs8(der)) => {
                AccountKey::from_pkcs8(der.secret_pkcs8_der())
            }
            Ok(_) => Err("the account key is not PKCS#8".into()),
            Err(e) => Err(format!("cannot read the account key: {e}")),
        }
    }

    /// The public key's x and y, base64url (from the uncompressed point).
    fn coordinates(&self) -> (String, String) {
        let point = self.pair.public_key().as_ref();
        (b64url(&point[1..33]), b64url(&point[33..65]))
    }

    /// The public key as a JWK, canonical.
    pub fn jwk(&self) -> String {
        let (x, y) = self.coordinates();
        canonical_jwk(&[("crv", "P-256"), ("kty", "EC"), ("x", &x), ("y", &y)])
    }

    pub fn thumbprint(&self) -> String {
        thumbprint_of(&self.jwk())
    }

    /// The uncompressed public point, for verifying.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// A request body: `payload` (`None`: POST-as-GET, an empty payload)
    /// signed for `url` with `nonce`.
    pub fn sign(
        &self,
        url: &str,
        nonce: &str,
        signer: Signer,
        payload: Option<&str>,
    ) -> Result<String, String> {
        let mut protected = json!({ "alg": "ES256", "nonce": nonce, "url": url });
        match signer {
            Signer::Jwk => {
                let jwk: serde_json::Value =
                    serde_json::from_str(&self.jwk()).expect("our JWK is JSON");
                protected["jwk"] = jwk;
            }
            Signer::Kid(kid) => protected["kid"] = json!(kid),
        }
        let protected = b64url(protected.to_string().as_bytes());
        let payload = b64url(payload.unwrap_or("").as_bytes());
        let signing_input = format!("{protected}.{payload}");
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| "cannot sign the request".to_string())?;
        Ok(json!({
            "protected": protected,
            "payload": payload,
            "signature": b64url(signature.as_ref()),
        })
        .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    fn unb64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    #[test]
    fn thumbprint_of_the_rfc_7638_example() {
        // RFC 7638 §3.1: the members in any order give the same input.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = canonical_jwk(&[("n", n), ("kty", "RSA"), ("e", "AQAB")]);
        assert!(canonical.starts_with("{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"0vx7"));
        assert_eq!(
            thumbprint_of(&canonical),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn signature_verifies_with_the_public_key() {
        let key = AccountKey::generate().unwrap();
        for (signer, payload) in [
            (Signer::Jwk, Some("{\"termsOfServiceAgreed\":true}")),
            (Signer::Kid("https://ca.test/acct/1"), None),
        ] {
            let body = key
                .sign("https://ca.test/new", "nonce-1", signer, payload)
                .unwrap();
            let jws: serde_json::Value = serde_json::from_str(&body).unwrap();
            let protected = jws["protected"].as_str().unwrap();
            let payload_b64 = jws["payload"].as_str().unwrap();
            let signature = unb64(jws["signature"].as_str().unwrap());
            assert_eq!(signature.len(), 64);
            let input = format!("{protected}.{payload_b64}");
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key())
                .verify(input.as_bytes(), &signature)
                .expect("signature verifies");
            let header: serde_json::Value = serde_json::from_slice(&unb64(protected)).unwrap();
            assert_eq!(header["alg"], "ES256");
            assert_eq!(header["nonce"], "nonce-1");
            assert_eq!(header["url"], "https://ca.test/new");
            match signer {
                Signer::Jwk => {
                    assert_eq!(header["jwk"]["kty"], "EC");
                    assert_eq!(header["jwk"]["crv"], "P-256");
                    assert!(header.get("kid").is_none());
                    // The JWK in the header is the key that verifies.
                    let mut point = vec![4];
                    point.extend(unb64(header["jwk"]["x"].as_str().unwrap()));
                    point.extend(unb64(header["jwk"]["y"].as_str().unwrap()));
                    assert_eq!(point, key.public_key());
                }
                Signer::Kid(kid) => {
                    assert_eq!(header["kid"], kid);
                    assert!(header.get("jwk").is_none());
                }
            }
            assert_eq!(unb64(payload_b64), payload.unwrap_or("").as_bytes());
        }
    }

    #[test]
    fn key_round_trips_through_pem() {
        let key = AccountKey::generate().unwrap();
        let pem = key.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = AccountKey::from_pem(&pem).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint());
        assert_eq!(key.thumbprint().len(), 43);
        assert!(AccountKey::from_pem("garbage").is_err());
    }
}
