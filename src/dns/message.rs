//! DNS messages (RFC 1035) as far as Postbox needs them: a query for A,
//! AAAA or MX records (with an EDNS0 OPT record, RFC 6891), those records
//! in its answer, and the 2-byte length framing of DNS over TCP (RFC 1035
//! §4.2.2, RFC 7766). Sans-IO: bytes in, bytes out.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_MX: u16 = 15;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const TYPE_OPT: u16 = 41;
/// The UDP payload size offered in EDNS0: what fits unfragmented on
/// common paths (the DNS flag day 2020 figure).
pub const UDP_PAYLOAD: u16 = 1232;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// Preference and exchange host name (no trailing dot; "" is the root,
    /// a null MX).
    Mx(u16, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name exists with these records of the asked type (possibly none).
    Records(Vec<Record>),
    /// NXDOMAIN: no such name.
    NoSuchName,
}

impl Answer {
    /// The IPv4 addresses in the answer.
    pub fn ipv4(&self) -> Vec<Ipv4Addr> {
        match self {
            Answer::Records(r) => r
                .iter()
                .filter_map(|r| match r {
                    Record::A(a) => Some(*a),
                    _ => None,
                })
                .collect(),
            Answer::NoSuchName => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// Not an answer to our query (wrong id, not a response, cut short...).
    Malformed,
    /// The answer did not fit in UDP (TC bit): ask again over TCP.
    Truncated,
    /// The server failed (SERVFAIL, REFUSED...).
    ServerFailure(u8),
}

/// The response code of a server that did not understand the query
/// (to a query with OPT: one that does not know EDNS0, RFC 6891 §7).
pub const RCODE_FORMAT_ERROR: u8 = 1;

/// A recursive query for `name`'s records of type `kind`, offering
/// [`UDP_PAYLOAD`] bytes of answer over UDP (EDNS0).
pub fn query(id: u16, name: &str, kind: u16) -> Result<Vec<u8>, DnsError> {
    build_query(id, name, kind, true)
}

/// The same query without EDNS0, for servers that answer it with
/// [`RCODE_FORMAT_ERROR`].
pub fn query_without_edns(id: u16, name: &str, kind: u16) -> Result<Vec<u8>, DnsError> {
    build_query(id, name, kind, false)
}

fn build_query(id: u16, name: &str, kind: u16, edns: bool) -> Result<Vec<u8>, DnsError> {
    let mut out = Vec::with_capacity(28 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, edns as u8]); // a question, maybe OPT
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
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    if !edns {
        return Ok(out);
    }
    // OPT: root name, payload size in the class, no extended flags, no options.
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&UDP_PAYLOAD.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Ok(out)
}

/// A message as sent over TCP: its length, then the message.
pub fn tcp_frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + message.len());
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The length of the message that follows a TCP length prefix.
pub fn tcp_length(prefix: [u8; 2]) -> usize {
    u16::from_be_bytes(prefix) as usize
}

/// Reads a (possibly compressed) name at `pos`, following at most a
/// bounded number of pointers.
fn read_name(msg: &[u8], mut pos: usize) -> Option<String> {
    let mut name = String::new();
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        match len {
            0 => return Some(name),
            l if l & 0xc0 == 0xc0 => {
                pos = ((l & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
            }
            l if l & 0xc0 == 0 => {
                let label = msg.get(pos + 1..pos + 1 + l)?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(std::str::from_utf8(label).ok()?);
                if name.len() > 255 {
                    return None;
                }
                pos += 1 + l;
            }
            _ => return None,
        }
    }
    None
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

/// Reads the answer to query `id` (records of other types, such as the
/// CNAMEs a resolver includes, are skipped).
pub fn parse_answer(id: u16, msg: &[u8]) -> Result<Answer, DnsError> {
    let bad = DnsError::Malformed;
    if msg.len() < 12 || u16_at(msg, 0) != Some(id) || msg[2] & 0x80 == 0 {
        return Err(bad);
    }
    if msg[2] & 0x02 != 0 {
        return Err(DnsError::Truncated);
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
        if class == CLASS_IN {
            match (kind, len) {
                (TYPE_A, 4) => {
                    found.push(Record::A(Ipv4Addr::new(data[0], data[1], data[2], data[3])))
                }
                (TYPE_AAAA, 16) => {
                    let octets: [u8; 16] = data.try_into().map_err(|_| bad)?;
                    found.push(Record::Aaaa(Ipv6Addr::from(octets)));
                }
                (TYPE_MX, 3..) => {
                    let preference = u16_at(data, 0).ok_or(bad)?;
                    let exchange = read_name(msg, pos + 12).ok_or(bad)?;
                    found.push(Record::Mx(preference, exchange));
                }
                _ => {}
            }
        }
        pos += 10 + len;
    }
    Ok(Answer::Records(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header and question of a query, without its OPT record.
    fn question(id: u16, name: &str, kind: u16) -> Vec<u8> {
        let q = query_without_edns(id, name, kind).unwrap();
        assert_eq!(query(id, name, kind).unwrap()[12..q.len()], q[12..]);
        q
    }

    /// An answer as a server builds it: our question, then A records
    /// whose names point back at it.
    fn answer(id: u16, name: &str, rcode: u8, addrs: &[[u8; 4]]) -> Vec<u8> {
        let mut m = question(id, name, TYPE_A);
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
        let q = query(0x1234, "2.0.0.127.bl.test.", TYPE_A).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..16], &[1, b'2', 1, b'0']);
        assert_eq!(&q[4..12], &[0, 1, 0, 0, 0, 0, 0, 1]);
        // The question, then OPT offering 1232 bytes (0x04d0).
        assert!(q.ends_with(&[0, 0, 1, 0, 1, 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]));
        assert!(query(1, "a..b", TYPE_A).is_err());
        assert!(query(1, &"x".repeat(64), TYPE_A).is_err());
        assert!(question(1, "b.test", TYPE_MX).ends_with(&[0, 15, 0, 1]));
    }

    #[test]
    fn truncation_and_tcp_framing() {
        let mut a = answer(7, "big.test", 0, &[[127, 0, 0, 2]]);
        a[2] |= 0x02;
        assert_eq!(parse_answer(7, &a), Err(DnsError::Truncated));
        let framed = tcp_frame(&a);
        assert_eq!(tcp_length([framed[0], framed[1]]), a.len());
        assert_eq!(&framed[2..], &a[..]);
    }

    #[test]
    fn answers() {
        let a = answer(7, "2.0.0.127.bl.test", 0, &[[127, 0, 0, 2], [127, 0, 0, 4]]);
        assert_eq!(
            parse_answer(7, &a).unwrap().ipv4(),
            vec![Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 4)]
        );
        assert_eq!(parse_answer(8, &a), Err(DnsError::Malformed), "wrong id");
        let nx = answer(7, "1.0.0.127.bl.test", 3, &[]);
        assert_eq!(parse_answer(7, &nx).unwrap(), Answer::NoSuchName);
        let fail = answer(7, "x.test", 2, &[]);
        assert_eq!(parse_answer(7, &fail), Err(DnsError::ServerFailure(2)));
        assert_eq!(parse_answer(7, &a[..a.len() - 2]), Err(DnsError::Malformed));
        assert_eq!(parse_answer(7, &[]), Err(DnsError::Malformed));
    }

    #[test]
    fn mx_and_aaaa_answers() {
        let mut m = question(9, "b.test", TYPE_MX);
        m[2] = 0x81;
        m[3] = 0x80;
        m[6..8].copy_from_slice(&3u16.to_be_bytes());
        // MX 10 mx1.b.test (written out), MX 20 mx2.<pointer to b.test>.
        m.extend_from_slice(&[0xc0, 12, 0, 15, 0, 1, 0, 0, 1, 0, 0, 14, 0, 10]);
        m.extend_from_slice(&[3, b'm', b'x', b'1', 1, b'b', 4, b't', b'e', b's', b't', 0]);
        m.extend_from_slice(&[0xc0, 12, 0, 15, 0, 1, 0, 0, 1, 0, 0, 8, 0, 20]);
        m.extend_from_slice(&[3, b'm', b'x', b'2', 0xc0, 12]);
        m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 1, 0, 0, 16]);
        m.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            parse_answer(9, &m).unwrap(),
            Answer::Records(vec![
                Record::Mx(10, "mx1.b.test".into()),
                Record::Mx(20, "mx2.b.test".into()),
                Record::Aaaa("2001:db8::1".parse().unwrap()),
            ])
        );
        // A pointer loop is refused, not followed forever.
        let mut looped = m.clone();
        let at = looped.len() - 16 - 12 - 2;
        looped[at..at + 2].copy_from_slice(&[0xc0, at as u8]);
        assert!(parse_answer(9, &looped).is_err());
    }
}
