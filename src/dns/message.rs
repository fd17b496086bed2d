//! DNS messages (RFC 1035) as far as Postbox needs them: an A query, and
//! the A records of its answer. Sans-IO: bytes in, bytes out.

use std::net::Ipv4Addr;

pub const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name exists with these A records (possibly none).
    Addresses(Vec<Ipv4Addr>),
    /// NXDOMAIN: no such name.
    NoSuchName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// Not an answer to our query (wrong id, not a response, truncated...).
    Malformed,
    /// The server failed (SERVFAIL, REFUSED...).
    ServerFailure(u8),
}

/// A recursive query for `name`'s A records.
pub fn query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let mut out = Vec::with_capacity(17 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::Malformed);
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 12 + 255 {
        return Err(DnsError::Malformed);
    }
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// Skips a (possibly compressed) name starting at `pos`; returns the
/// position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => {
                msg.get(pos + 1)?;
                return Some(pos + 2);
            }
            l if l & 0xc0 == 0 => pos += 1 + l,
            _ => return None,
        }
    }
    None
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// Reads the answer to query `id`.
pub fn parse_answer(id: u16, msg: &[u8]) -> Result<Answer, DnsError> {
    let bad = DnsError::Malformed;
    if msg.len() < 12 || u16_at(msg, 0) != Some(id) || msg[2] & 0x80 == 0 {
        return Err(bad);
    }
    if msg[2] & 0x02 != 0 {
        return Err(bad); // truncated: we only speak UDP
    }
    match msg[3] & 0x0f {
        0 => {}
        3 => return Ok(Answer::NoSuchName),
        code => return Err(DnsError::ServerFailure(code)),
    }
    let questions = u16_at(msg, 4).ok_or(bad)?;
    let answers = u16_at(msg, 6).ok_or(bad)?;
    let mut pos = 12;
    for _ in 0..questions {
        pos = skip_name(msg, pos).ok_or(bad)? + 4;
    }
    let mut found = Vec::new();
    for _ in 0..answers {
        pos = skip_name(msg, pos).ok_or(bad)?;
        let kind = u16_at(msg, pos).ok_or(bad)?;
        let class = u16_at(msg, pos + 2).ok_or(bad)?;
        let len = u16_at(msg, pos + 8).ok_or(bad)? as usize;
        let data = msg.get(pos + 10..pos + 10 + len).ok_or(bad)?;
        if kind == TYPE_A && class == CLASS_IN && len == 4 {
            found.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        pos += 10 + len;
    }
    Ok(Answer::Addresses(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as a server builds it: our question, then A records
    /// whose names point back at it.
    fn answer(id: u16, name: &str, rcode: u8, addrs: &[[u8; 4]]) -> Vec<u8> {
        let q = query(id, name).unwrap();
        let mut m = q.clone();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[6..8].copy_from_slice(&(addrs.len() as u16).to_be_bytes());
        for a in addrs {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4]);
            m.extend_from_slice(a);
        }
        m
    }

    #[test]
    fn query_layout() {
        let q = query(0x1234, "2.0.0.127.bl.test.").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..16], &[1, b'2', 1, b'0']);
        assert!(q.ends_with(&[0, 0, 1, 0, 1]));
        assert!(query(1, "a..b").is_err());
        assert!(query(1, &"x".repeat(64)).is_err());
    }

    #[test]
    fn answers() {
        let a = answer(7, "2.0.0.127.bl.test", 0, &[[127, 0, 0, 2], [127, 0, 0, 4]]);
        assert_eq!(
            parse_answer(7, &a).unwrap(),
            Answer::Addresses(vec![
                Ipv4Addr::new(127, 0, 0, 2),
                Ipv4Addr::new(127, 0, 0, 4)
            ])
        );
        assert_eq!(parse_answer(8, &a), Err(DnsError::Malformed), "wrong id");
        let nx = answer(7, "1.0.0.127.bl.test", 3, &[]);
        assert_eq!(parse_answer(7, &nx).unwrap(), Answer::NoSuchName);
        let fail = answer(7, "x.test", 2, &[]);
        assert_eq!(parse_answer(7, &fail), Err(DnsError::ServerFailure(2)));
        assert_eq!(parse_answer(7, &a[..a.len() - 2]), Err(DnsError::Malformed));
        assert_eq!(parse_answer(7, &[]), Err(DnsError::Malformed));
    }
}
