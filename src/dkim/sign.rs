//! Signing: a message streams through a [`Signer`]; at its end the
//! caller gets the `DKIM-Signature:` fields to put on top of it, one per
//! key (rsa-sha256 and ed25519-sha256), relaxed/relaxed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, RsaKeyPair};

use super::canon::{header_field, BodyHasher, Canon};
use super::message::{fields, select, Splitter};
use super::Algorithm;

/// Header fields signed when present (RFC 6376 §5.4.1's list, less the
/// ones relays change). `From` is listed once more than it occurs, so a
/// `From:` added on the way breaks the signature.
pub const SIGNED_FIELDS: &[&str] = &[
    "from",
    "reply-to",
    "sender",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
];

/// The longest line of a `DKIM-Signature:` field this makes (CRLF apart).
const LINE_WIDTH: usize = 78;

/// A private key and the selector its public half is published under.
pub struct SigningKey {
    pub selector: String,
    pair: Pair,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl SigningKey {
    /// A key from its PKCS#8 DER form (as `keys` stores it).
    pub fn from_pkcs8(
        algorithm: Algorithm,
        selector: &str,
        pkcs8: &[u8],
    ) -> Result<SigningKey, String> {
        let pair = match algorithm {
            Algorithm::RsaSha256 => RsaKeyPair::from_pkcs8(pkcs8)
                .map(Pair::Rsa)
                .map_err(|e| format!("invalid RSA key: {e}"))?,
            Algorithm::Ed25519Sha256 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                .map(Pair::Ed25519)
                .map_err(|e| format!("invalid Ed25519 key: {e}"))?,
        };
        Ok(SigningKey {
            selector: selector.to_string(),
            pair,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Rsa(_) => Algorithm::RsaSha256,
            Pair::Ed25519(_) => Algorithm::Ed25519Sha256,
        }
    }

    /// The key record to publish at `SELECTOR._domainkey.DOMAIN`:
    /// `v=DKIM1; k=rsa; p=...` (p= a SubjectPublicKeyInfo for RSA, the raw
    /// 32 bytes for Ed25519).
    pub fn public_record(&self) -> String {
        let (kind, public) = match &self.pair {
            Pair::Rsa(pair) => ("rsa", rsa_spki(pair.public_key().as_ref())),
            Pair::Ed25519(pair) => ("ed25519", pair.public_key().as_ref().to_vec()),
        };
        format!("v=DKIM1; k={kind}; p={}", BASE64.encode(public))
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    data,
                    &mut signature,
                )
                .map_err(|_| "RSA signing failed".to_string())?;
                Ok(signature)
            }
            // RFC 8463 §3: Ed25519 signs the SHA-256 of the header data.
            Pair::Ed25519(pair) => {
                let hash = ring::digest::digest(&ring::digest::SHA256, data);
                Ok(pair.sign(hash.as_ref()).as_ref().to_vec())
            }
        }
    }
}

/// A DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// rsaEncryption (1.2.840.113549.1.1.1) with its NULL parameters.
pub(super) const RSA_ALGORITHM_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// An RSAPublicKey (what ring gives) inside a SubjectPublicKeyInfo (what
/// DKIM records carry).
fn rsa_spki(rsa_public_key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0];
    bits.extend_from_slice(rsa_public_key);
    let mut content = RSA_ALGORITHM_ID.to_vec();
    content.extend(der(0x03, &bits));
    der(0x30, &content)
}

/// Why a message was left unsigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignSkip {
    /// The header section was over [`crate::limits::MAX_DKIM_HEADER_SECTION`].
    HeaderTooLarge,
    /// No `From:` field: nothing to sign for.
    NoFrom,
    NoKeys,
}

impl std::fmt::Display for SignSkip {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            SignSkip::HeaderTooLarge => "header section too large",
            SignSkip::NoFrom => "no From: field",
            SignSkip::NoKeys => "no signing keys",
        })
    }
}

/// Signs one message as it streams past. Feed it the whole message
/// (header section, empty line, body; CRLF line ends, after SMTP
/// dot-unstuffing) with [`Signer::update`], in chunks of any size, then
/// call [`Signer::finish`]. Memory: the header section (bounded) and one
/// body hasher.
pub struct Signer {
    splitter: Splitter,
    body: BodyHasher,
}

impl Default for Signer {
    fn default() -> Self {
        Signer::new()
    }
}

impl Signer {
    pub fn new() -> Signer {
        Signer {
            splitter: Splitter::new(),
            body: BodyHasher::new(Canon::Relaxed),
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        let body = self.splitter.push(chunk);
        self.body.update(body);
    }

    /// The `DKIM-Signature:` fields (each ending in CRLF) to put before
    /// the message, one per key, signed for `domain` (`d=`: the served
    /// domain of the `From:` address, so DMARC finds them aligned) at
    /// `time` (seconds since the epoch, the `t=` tag). `keys` are that
    /// domain's, from [`super::keys::signing_keys`].
    pub fn finish(self, domain: &str, keys: &[SigningKey], time: u64) -> Result<String, SignSkip> {
        let header = self.splitter.header().ok_or(SignSkip::HeaderTooLarge)?;
        if keys.is_empty() {
            return Err(SignSkip::NoKeys);
        }
        let all = fields(header);
        let mut names = Vec::new();
        for &name in SIGNED_FIELDS {
            let present = all
                .iter()
                .filter(|f| f.name.eq_ignore_ascii_case(name))
                .count();
            if name == "from" && present == 0 {
                return Err(SignSkip::NoFrom);
            }
            let listed = present + usize::from(name == "from");
            names.extend(std::iter::repeat_n(name, listed));
        }
        let mut data = Vec::new();
        for field in select(&all, &names) {
            header_field(Canon::Relaxed, field.raw, &mut data);
        }
        let body_hash = BASE64.encode(self.body.finish().sha256);
        let mut out = String::new();
        for key in keys {
            let unsigned = unsigned_field(key, domain, time, &names, &body_hash);
            let mut signed = data.clone();
            header_field(Canon::Relaxed, unsigned.text.as_bytes(), &mut signed);
            // The signature's own field is hashed without its CRLF.
            signed.truncate(signed.len() - 2);
            let signature = match key.sign(&signed) {
                Ok(signature) => signature,
                Err(e) => {
                    log::warn!("DKIM: {e} (selector {})", key.selector);
                    continue;
                }
            };
            out.push_str(&unsigned.with_b(&BASE64.encode(signature)));
        }
        Ok(out)
    }
}

/// A `DKIM-Signature:` field being laid out in lines of at most
/// [`LINE_WIDTH`], folding only where whitespace may go.
struct Folded {
    text: String,
    line: usize,
}

impl Folded {
    /// `word`, after a space or on a new line.
    fn word(&mut self, word: &str) {
        if self.line + 1 + word.len() > LINE_WIDTH {
            self.text.push_str("\r\n\t");
            self.line = 1;
        } else {
            self.text.push(' ');
            self.line += 1;
        }
        self.text.push_str(word);
        self.line += word.len();
    }

    /// `text` right after what is there, broken over lines anywhere (a
    /// base64 value, whose whitespace verifiers ignore).
    fn breakable(&mut self, text: &str) {
        let mut rest = text;
        while !rest.is_empty() {
            if self.line >= LINE_WIDTH {
                self.text.push_str("\r\n\t");
                self.line = 1;
            }
            let take = (LINE_WIDTH - self.line).min(rest.len());
            self.text.push_str(&rest[..take]);
            self.line += take;
            rest = &rest[take..];
        }
    }

    /// `h=` names, folding after a colon when a line is full.
    fn names(&mut self, names: &[&str]) {
        let Some((first, rest)) = names.split_first() else {
            return;
        };
        self.word(&format!("h={first}"));
        for (i, name) in rest.iter().enumerate() {
            let piece = if i + 1 == rest.len() {
                format!(":{name};")
            } else {
                format!(":{name}")
            };
            if self.line + piece.len() > LINE_WIDTH {
                self.text.push_str("\r\n\t");
                self.line = 1;
            }
            self.text.push_str(&piece);
            self.line += piece.len();
        }
    }

    /// The field with its signature, ending in CRLF.
    fn with_b(mut self, b: &str) -> String {
        self.breakable(b);
        self.text.push_str("\r\n");
        self.text
    }
}

/// The field as signed: every tag, and `b=` last with an empty value.
fn unsigned_field(
    key: &SigningKey,
    domain: &str,
    time: u64,
    names: &[&str],
    body_hash: &str,
) -> Folded {
    let name = "DKIM-Signature:";
    let mut field = Folded {
        text: name.to_string(),
        line: name.len(),
    };
    field.word("v=1;");
    field.word(&format!("a={};", key.algorithm().name()));
    field.word("c=relaxed/relaxed;");
    field.word(&format!("d={domain};"));
    field.word(&format!("s={};", key.selector));
    field.word(&format!("t={time};"));
    field.names(names);
    field.word(&format!("bh={body_hash};"));
    field.word("b=");
    field
}
