//! SASL responses as SMTP AUTH (RFC 4954) and POP3 AUTH (RFC 5034) carry
//! them: PLAIN (RFC 4616) and the LOGIN username/password prompts.

use base64::Engine;

pub type Name = heapless::String<{ crate::limits::MAX_ADDRESS }>;
pub type Secret = heapless::String<{ crate::auth::password::MAX_PASSWORD }>;

/// What a client offered as its login.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: Name,
    pub password: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*`.
    Cancelled,
    Base64,
    Malformed,
    /// An authorization identity other than the login itself.
    OtherIdentity,
    /// A name or password longer than any account's: it cannot match.
    TooLong,
}

impl SaslError {
    pub fn text(self) -> &'static str {
        match self {
            SaslError::Cancelled => "Authentication cancelled",
            SaslError::Base64 => "Invalid base64 data",
            SaslError::Malformed => "Malformed authentication response",
            SaslError::OtherIdentity => "Cannot act as another user",
            SaslError::TooLong => "Authentication credentials invalid",
        }
    }

    /// Whether this is a refused login (535) rather than a protocol error.
    pub fn is_refusal(self) -> bool {
        matches!(self, SaslError::OtherIdentity | SaslError::TooLong)
    }
}

/// The PLAIN response (RFC 4616) a client sends to log in as `user`
/// (no separate authorization identity), in base64.
pub fn plain_response(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// Decodes a response (at most one SASL line, so the buffer is bounded).
fn decode(response: &[u8]) -> Result<Vec<u8>, SaslError> {
    if response == b"*" {
        return Err(SaslError::Cancelled);
    }
    if response.len() > crate::limits::MAX_SASL_LINE {
        return Err(SaslError::TooLong);
    }
    base64::engine::general_purpose::STANDARD
        .decode(response)
        .map_err(|_| SaslError::Base64)
}

fn text<const N: usize>(bytes: &[u8]) -> Result<heapless::String<N>, SaslError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SaslError::Malformed)?;
    let mut out = heapless::String::new();
    out.push_str(text).map_err(|_| SaslError::TooLong)?;
    Ok(out)
}

/// PLAIN: base64 of `authzid NUL authcid NUL password`.
pub fn decode_plain(response: &[u8]) -> Result<Credentials, SaslError> {
    let decoded = decode(response)?;
    let mut parts = decoded.split(|&b| b == 0);
    let (Some(authz), Some(authc), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(authc) {
        return Err(SaslError::OtherIdentity);
    }
    if authc.is_empty() {
        return Err(SaslError::Malformed);
    }
    Ok(Credentials {
        user: text(authc)?,
        password: text(password)?,
    })
}

/// One LOGIN answer (user name or password): base64 of the text.
pub fn decode_login_field<const N: usize>(
    response: &[u8],
) -> Result<heapless::String<N>, SaslError> {
    text(&decode(response)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes()
    }

    #[test]
    fn plain() {
        let c = decode_plain(&b64(b"\0alice\0secret")).unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "secret"));
        let c = decode_plain(&b64(b"alice\0alice\0pw")).unwrap();
        assert_eq!(c.user.as_str(), "alice");
        assert_eq!(
            decode_plain(&b64(b"bob\0alice\0pw")),
            Err(SaslError::OtherIdentity)
        );
        assert_eq!(decode_plain(&b64(b"alice\0pw")), Err(SaslError::Malformed));
        assert_eq!(decode_plain(&b64(b"\0\0pw")), Err(SaslError::Malformed));
        assert_eq!(decode_plain(&b64(b"\0a\0b\0c")), Err(SaslError::Malformed));
        assert_eq!(decode_plain(b"!!!"), Err(SaslError::Base64));
        assert_eq!(decode_plain(b"*"), Err(SaslError::Cancelled));
        assert_eq!(decode_plain(&b64(b"\0\xff\0pw")), Err(SaslError::Malformed));
        let long = [b'a'; 300];
        let mut raw = b"\0".to_vec();
        raw.extend_from_slice(&long);
        raw.extend_from_slice(b"\0pw");
        assert_eq!(decode_plain(&b64(&raw)), Err(SaslError::TooLong));
    }

    #[test]
    fn login_fields() {
        let name: Name = decode_login_field(&b64(b"alice@localhost")).unwrap();
        assert_eq!(name.as_str(), "alice@localhost");
        assert_eq!(
            decode_login_field::<8>(&b64(b"far too long")),
            Err(SaslError::TooLong)
        );
        assert_eq!(decode_login_field::<8>(b"*"), Err(SaslError::Cancelled));
        let empty: Name = decode_login_field(b"").unwrap();
        assert!(empty.is_empty());
    }
}
