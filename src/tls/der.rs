//! Just enough DER to show what a certificate says: subject, validity and
//! fingerprint, for `postbox tls show`, the log and the console.

/// What a user checks against their mail client's certificate dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// The DNS names of its subjectAltName extension.
    pub names: Vec<String>,
    /// The serial number, as hex.
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// The same two times as seconds since 1970.
    pub valid_from: i64,
    pub valid_until: i64,
    /// SHA-256 of the DER certificate, as colon-separated hex.
    pub fingerprint: String,
}

/// One tag-length-value: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        rest = &rest[count..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

pub fn cert_info(der: &[u8]) -> Option<CertInfo> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, mut tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut next = || -> Option<(u8, &[u8])> {
        let (tag, content, rest) = tlv(tbs)?;
        tbs = rest;
        Some((tag, content))
    };
    let (mut tag, mut serial) = next()?;
    if tag == 0xa0 {
        // Explicit version; the serial number follows.
        (tag, serial) = next()?;
    }
    if tag != 0x02 {
        return None;
    }
    let _signature = next()?;
    let (0x30, issuer) = next()? else {
        return None;
    };
    let (0x30, validity) = next()? else {
        return None;
    };
    let (0x30, subject) = next()? else {
        return None;
    };
    let _public_key = next()?;
    let mut names = Vec::new();
    while let Some((tag, content)) = next() {
        if tag == 0xa3 {
            names = alt_names(content);
        }
    }
    let (t1, before, rest) = tlv(validity)?;
    let (t2, after, _) = tlv(rest)?;
    let (not_before, valid_from) = time(t1, before)?;
    let (not_after, valid_until) = time(t2, after)?;
    let serial = serial
        .strip_prefix(&[0])
        .filter(|s| !s.is_empty())
        .unwrap_or(serial);
    Some(CertInfo {
        subject: name(subject),
        issuer: name(issuer),
        names,
        serial: serial.iter().map(|b| format!("{b:02x}")).collect(),
        not_before,
        not_after,
        valid_from,
        valid_until,
        fingerprint: fingerprint(der),
    })
}

/// The dNSName entries of the subjectAltName extension, from the
/// explicit `[3]` holding the extensions.
fn alt_names(explicit: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let Some((0x30, mut extensions, _)) = tlv(explicit) else {
        return names;
    };
    while let Some((_, extension, rest)) = tlv(extensions) {
        extensions = rest;
        let Some((0x06, oid, mut value)) = tlv(extension) else {
            continue;
        };
        if oid != [0x55, 0x1d, 0x11] {
            continue;
        }
        if let Some((0x01, _, after_critical)) = tlv(value) {
            value = after_critical;
        }
        let Some((0x04, octets, _)) = tlv(value) else {
            continue;
        };
        let Some((0x30, mut general, _)) = tlv(octets) else {
            continue;
        };
        while let Some((tag, content, rest)) = tlv(general) {
            general = rest;
            if tag == 0x82 {
                names.push(String::from_utf8_lossy(content).into_owned());
            }
        }
    }
    names
}

/// An X.501 Name as `CN=..., O=...` for the attributes people recognise.
fn name(mut rdns: &[u8]) -> String {
    let mut parts = Vec::new();
    while let Some((_, set, rest)) = tlv(rdns) {
        rdns = rest;
        let mut attrs = set;
        while let Some((_, attr, rest)) = tlv(attrs) {
            attrs = rest;
            let Some((0x06, oid, value)) = tlv(attr) else {
                continue;
            };
            let label = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x06] => "C",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                _ => continue,
            };
            if let Some((_, text, _)) = tlv(value) {
                parts.push(format!("{label}={}", String::from_utf8_lossy(text)));
            }
        }
    }
    parts.join(", ")
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as
/// text and as seconds since 1970.
fn time(tag: u8, bytes: &[u8]) -> Option<(String, i64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let full = match (tag, text.len()) {
        (0x17, 13) => {
            let yy: u32 = text[..2].parse().ok()?;
            let century = if yy >= 50 { "19" } else { "20" };
            format!("{century}{text}")
        }
        (0x18, 15) => text.to_string(),
        _ => return None,
    };
    if !full[..14].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| full[range].parse::<i64>().ok();
    let days = crate::ops::clock::days_from_civil(
        number(0..4)?,
        number(4..6)? as u32,
        number(6..8)? as u32,
    );
    let seconds = days * 86_400 + number(8..10)? * 3600 + number(10..12)? * 60 + number(12..14)?;
    let text = format!(
        "{}-{}-{} {}:{}:{} UTC",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    );
    Some((text, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_generated_certificate() {
        let (cert_pem, _) = super::super::selfsigned::generate("mx.example.org").unwrap();
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        let info = cert_info(&der).unwrap();
        assert_eq!(info.subject, "CN=mx.example.org");
        assert_eq!(info.issuer, "CN=mx.example.org");
        assert_eq!(info.names, ["mx.example.org", "localhost"]);
        assert!(!info.serial.is_empty() && !info.serial.starts_with("00"));
        assert!(info.not_before.ends_with(" 00:00:00 UTC"), "{info:?}");
        assert!(info.not_after > info.not_before);
        assert_eq!(info.valid_from % 86_400, 0);
        assert!(info.valid_until > info.valid_from + 9 * 365 * 86_400);
        assert_eq!(info.fingerprint.len(), 32 * 3 - 1);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(cert_info(b""), None);
        assert_eq!(cert_info(&[0x30, 0x82, 0xff]), None);
        assert_eq!(cert_info(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
        assert_eq!(time(0x17, b"2601011200Z"), None);
        assert_eq!(
            time(0x17, b"260101120000Z").unwrap(),
            ("2026-01-01 12:00:00 UTC".to_string(), 1_767_268_800)
        );
        assert_eq!(time(0x18, b"19700101000001Z").unwrap().1, 1);
    }
}
