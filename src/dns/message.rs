//! DNS messages (RFC 1035) as far as Postbox needs them: a query (with an
//! EDNS0 OPT record, RFC 6891), the A, AAAA, MX, TXT, PTR, SRV and CNAME
//! records of its answer with their TTLs, the TTL a negative answer may be remembered for
//! (RFC 2308), and the 2-byte length framing of DNS over TCP (RFC 1035
//! §4.2.2, RFC 7766). Sans-IO: bytes in, bytes out.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_MX: u16 = 15;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
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
    /// The character-strings of one TXT record joined with nothing between
    /// them (RFC 7208 §3.3, RFC 6376 §3.6.2.2). Bytes, because DNS does not
    /// promise UTF-8: SPF refuses a record that is not ASCII, DKIM keys are
    /// ASCII; [`Record::txt_text`] gives text for logs.
    Txt(Vec<u8>),
    /// The host name a reverse (in-addr.arpa / ip6.arpa) name points at.
    Ptr(String),
    /// Where a service is (RFC 2782); a target of "" (the root) says the
    /// service is not offered (RFC 6186 §3.4).
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    /// The name an alias points at (asked for as such: when another type
    /// is asked, the chain is skipped).
    Cname(String),
}

impl Record {
    /// A TXT record as text, non-UTF-8 bytes replaced (for logs and
    /// explanations, never for parsing).
    pub fn txt_text(&self) -> Option<String> {
        match self {
            Record::Txt(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }

    /// Bytes this record takes in memory, near enough to bound a cache.
    pub fn size(&self) -> usize {
        std::mem::size_of::<Record>()
            + match self {
                Record::Mx(_, s) | Record::Ptr(s) | Record::Cname(s) => s.len(),
                Record::Srv { target, .. } => target.len(),
                Record::Txt(b) => b.len(),
                Record::A(_) | Record::Aaaa(_) => 0,
            }
    }
}

/// A record and its time to live in seconds, as the answer gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub record: Record,
    pub ttl: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The records of the asked type (at least one; a CNAME chain the
    /// resolver followed is skipped, its target's records kept).
    Records(Vec<Resource>),
    /// NODATA: the name exists but has no record of the asked type.
    NoData {
        /// How long this may be remembered (RFC 2308 §5: the smaller of
        /// the SOA's TTL and its MINIMUM); `None` without an SOA, when it
        /// must not be.
        negative_ttl: Option<u32>,
    },
    /// NXDOMAIN: no such name.
    NoSuchName { negative_ttl: Option<u32> },
}

impl Answer {
    /// The records, without their TTLs (none for a negative answer).
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        let all: &[Resource] = match self {
            Answer::Records(r) => r,
            _ => &[],
        };
        all.iter().map(|r| &r.record)
    }

    /// The IPv4 addresses in the answer.
    pub fn ipv4(&self) -> Vec<Ipv4Addr> {
        self.records()
            .filter_map(|r| match r {
                Record::A(a) => Some(*a),
                _ => None,
            })
            .collect()
    }

    /// The IPv6 addresses in the answer.
    pub fn ipv6(&self) -> Vec<Ipv6Addr> {
        self.records()
            .filter_map(|r| match r {
                Record::Aaaa(a) => Some(*a),
                _ => None,
            })
            .collect()
    }

    /// Each TXT record, its strings joined.
    pub fn txt(&self) -> Vec<&[u8]> {
        self.records()
            .filter_map(|r| match r {
                Record::Txt(t) => Some(&t[..]),
                _ => None,
            })
            .collect()
    }

    /// The host names of PTR records.
    pub fn ptr(&self) -> Vec<&str> {
        self.records()
            .filter_map(|r| match r {
                Record::Ptr(p) => Some(&p[..]),
                _ => None,
            })
            .collect()
    }

    /// The SRV records: (priority, weight, port, target).
    pub fn srv(&self) -> Vec<(u16, u16, u16, &str)> {
        self.records()
            .filter_map(|r| match r {
                Record::Srv {
                    priority,
                    weight,
                    port,
                    target,
                } => Some((*priority, *weight, *port, &target[..])),
                _ => None,
            })
            .collect()
    }

    /// The targets of CNAME records.
    pub fn cname(&self) -> Vec<&str> {
        self.records()
            .filter_map(|r| match r {
                Record::Cname(target) => Some(&target[..]),
                _ => None,
            })
            .collect()
    }

    /// The MX records: (preference, exchange).
    pub fn mx(&self) -> Vec<(u16, &str)> {
        self.records()
            .filter_map(|r| match r {
                Record::Mx(pref, host) => Some((*pref, &host[..])),
                _ => None,
            })
            .collect()
    }

    /// Whether the name does not exist or has nothing of the asked type
    /// (what SPF calls a void lookup when it asked).
    pub fn is_empty(&self) -> bool {
        !matches!(self, Answer::Records(_))
    }

    /// How long the whole answer may be remembered: its shortest record
    /// TTL, or the negative TTL; `None` when it must not be remembered.
    pub fn ttl(&self) -> Option<u32> {
        match self {
            Answer::Records(r) => r.iter().map(|r| r.ttl).min(),
            Answer::NoData { negative_ttl } | Answer::NoSuchName { negative_ttl } => *negative_ttl,
        }
    }

    /// Bytes the answer takes in memory, near enough to bound a cache.
    pub fn size(&self) -> usize {
        std::mem::size_of::<Answer>() + self.records().map(Record::size).sum::<usize>()
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

/// Whether `name` can be asked about: dot-separated labels of 1 to 63
/// bytes, 255 bytes in all on the wire (RFC 1035 §2.3.4); one trailing
/// dot allowed.
pub fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

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
    if !valid_name(name) {
        return Err(DnsError::Malformed);
    }
    let mut out = Vec::with_capacity(28 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, edns as u8]); // a question, maybe OPT
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
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

fn u32_at(msg: &[u8], pos: usize) -> Option<u32> {
    Some(u32::from_be_bytes(msg.get(pos..pos + 4)?.try_into().ok()?))
}

/// The character-strings of a TXT record's data, joined.
fn txt_strings(data: &[u8]) -> Option<Vec<u8>> {
    let mut joined = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let string = tail.get(..len as usize)?;
        joined.extend_from_slice(string);
        rest = &tail[len as usize..];
    }
    Some(joined)
}

/// Reads the answer to query `id`: the records of the asked type (others,
/// such as the CNAMEs a resolver includes, are skipped), or which kind of
/// negative answer it is and how long that may be remembered.
pub fn parse_answer(id: u16, msg: &[u8]) -> Result<Answer, DnsError> {
    let bad = DnsError::Malformed;
    if msg.len() < 12 || u16_at(msg, 0) != Some(id) || msg[2] & 0x80 == 0 {
        return Err(bad);
    }
    if msg[2] & 0x02 != 0 {
        return Err(DnsError::Truncated);
    }
    let rcode = msg[3] & 0x0f;
    if rcode != 0 && rcode != 3 {
        return Err(DnsError::ServerFailure(rcode));
    }
    let questions = u16_at(msg, 4).ok_or(bad)?;
    let answers = u16_at(msg, 6).ok_or(bad)?;
    let authority = u16_at(msg, 8).ok_or(bad)?;
    if questions != 1 {
        return Err(bad);
    }
    let mut pos = skip_name(msg, 12).ok_or(bad)?;
    let asked = u16_at(msg, pos).ok_or(bad)?;
    pos += 4;
    let mut found = Vec::new();
    let mut negative_ttl = None;
    for index in 0..answers as usize + authority as usize {
        pos = skip_name(msg, pos).ok_or(bad)?;
        let kind = u16_at(msg, pos).ok_or(bad)?;
        let class = u16_at(msg, pos + 2).ok_or(bad)?;
        let ttl = u32_at(msg, pos + 4).ok_or(bad)?;
        let len = u16_at(msg, pos + 8).ok_or(bad)? as usize;
        let start = pos + 10;
        let data = msg.get(start..start + len).ok_or(bad)?;
        pos = start + len;
        if class != CLASS_IN {
            continue;
        }
        if index >= answers as usize {
            if kind == TYPE_SOA {
                // MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM.
                let names_end = skip_name(msg, skip_name(msg, start).ok_or(bad)?).ok_or(bad)?;
                let minimum = u32_at(msg, names_end + 16).ok_or(bad)?;
                if names_end + 20 > pos {
                    return Err(bad);
                }
                negative_ttl = Some(ttl.min(minimum));
            }
            continue;
        }
        if kind != asked {
            continue;
        }
        let record = match (kind, len) {
            (TYPE_A, 4) => Record::A(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
            (TYPE_AAAA, 16) => {
                let octets: [u8; 16] = data.try_into().map_err(|_| bad)?;
                Record::Aaaa(Ipv6Addr::from(octets))
            }
            (TYPE_MX, 3..) => {
                let preference = u16_at(data, 0).ok_or(bad)?;
                Record::Mx(preference, read_name(msg, start + 2).ok_or(bad)?)
            }
            (TYPE_TXT, _) => Record::Txt(txt_strings(data).ok_or(bad)?),
            (TYPE_PTR, _) => Record::Ptr(read_name(msg, start).ok_or(bad)?),
            (TYPE_CNAME, _) => Record::Cname(read_name(msg, start).ok_or(bad)?),
            (TYPE_SRV, 7..) => Record::Srv {
                priority: u16_at(data, 0).ok_or(bad)?,
                weight: u16_at(data, 2).ok_or(bad)?,
                port: u16_at(data, 4).ok_or(bad)?,
                target: read_name(msg, start + 6).ok_or(bad)?,
            },
            _ => return Err(bad),
        };
        found.push(Resource { record, ttl });
    }
    Ok(match (rcode, found.is_empty()) {
        (3, _) => Answer::NoSuchName { negative_ttl },
        (_, true) => Answer::NoData { negative_ttl },
        (_, false) => Answer::Records(found),
    })
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
        let no_soa = Answer::NoSuchName { negative_ttl: None };
        assert_eq!(parse_answer(7, &nx).unwrap(), no_soa);
        let empty = answer(7, "1.0.0.127.bl.test", 0, &[]);
        let nodata = Answer::NoData { negative_ttl: None };
        assert_eq!(parse_answer(7, &empty).unwrap(), nodata);
        assert!(nodata.is_empty() && no_soa.is_empty() && nodata.ttl().is_none());
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
        // The AAAA record is not what was asked: skipped.
        let resource = |record| Resource { record, ttl: 256 };
        let answer = parse_answer(9, &m).unwrap();
        assert_eq!(
            answer,
            Answer::Records(vec![
                resource(Record::Mx(10, "mx1.b.test".into())),
                resource(Record::Mx(20, "mx2.b.test".into())),
            ])
        );
        assert_eq!(answer.mx(), vec![(10, "mx1.b.test"), (20, "mx2.b.test")]);
        assert_eq!(answer.ttl(), Some(256));
        // A pointer loop is refused, not followed forever.
        let mut looped = m.clone();
        let at = looped.len() - 16 - 12 - 2;
        looped[at..at + 2].copy_from_slice(&[0xc0, at as u8]);
        assert!(parse_answer(9, &looped).is_err());
    }

    /// A reply to `question` with `answers` and `authority` records, each
    /// (type, ttl, data) owned by the question's name.
    fn reply(
        q: &[u8],
        rcode: u8,
        answers: &[(u16, u32, Vec<u8>)],
        authority: &[(u16, u32, Vec<u8>)],
    ) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        m[8..10].copy_from_slice(&(authority.len() as u16).to_be_bytes());
        for (kind, ttl, data) in answers.iter().chain(authority) {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&kind.to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn txt_records_join_their_strings() {
        let q = question(3, "example.test", TYPE_TXT);
        let split = b"\x07v=spf1 \x04-all".to_vec();
        let binary = b"\x03\xff\x00a\x00".to_vec();
        let m = reply(&q, 0, &[(16, 300, split), (16, 60, binary)], &[]);
        let answer = parse_answer(3, &m).unwrap();
        assert_eq!(answer.txt(), vec![&b"v=spf1 -all"[..], &b"\xff\x00a"[..]]);
        assert_eq!(answer.ttl(), Some(60), "the shortest TTL");
        let text: Vec<_> = answer.records().filter_map(Record::txt_text).collect();
        assert_eq!(text, ["v=spf1 -all", "\u{fffd}\u{0}a"]);
        // A string longer than its record is malformed.
        let cut = reply(&q, 0, &[(16, 300, b"\x09v=spf1".to_vec())], &[]);
        assert_eq!(parse_answer(3, &cut), Err(DnsError::Malformed));
    }

    #[test]
    fn ptr_records() {
        let q = question(4, "4.3.2.1.in-addr.arpa", TYPE_PTR);
        let host = [&[4][..], b"mail", &[7], b"example", &[4], b"test", &[0]].concat();
        let m = reply(&q, 0, &[(12, 3600, host)], &[]);
        let answer = parse_answer(4, &m).unwrap();
        assert_eq!(answer.ptr(), vec!["mail.example.test"]);
    }

    #[test]
    fn srv_and_cname_records() {
        let q = question(6, "_submissions._tcp.example.test", TYPE_SRV);
        let mut found = vec![0, 0, 0, 1, 0x01, 0xd1];
        found.extend_from_slice(&[4, b'm', b'a', b'i', b'l', 0xc0, 30]);
        let not_offered = vec![0, 0, 0, 0, 0, 0, 0];
        let m = reply(&q, 0, &[(33, 3600, found), (33, 60, not_offered)], &[]);
        let answer = parse_answer(6, &m).unwrap();
        assert_eq!(
            answer.srv(),
            vec![(0, 1, 465, "mail.example.test"), (0, 0, 0, "")]
        );
        // Cut short before its target: malformed.
        let short = reply(&q, 0, &[(33, 60, vec![0, 0, 0, 1, 0x01, 0xd1])], &[]);
        assert_eq!(parse_answer(6, &short), Err(DnsError::Malformed));
        let q = question(7, "autoconfig.example.test", TYPE_CNAME);
        let target = [&[4][..], b"mail", &[0xc0, 23]].concat();
        let answer = parse_answer(7, &reply(&q, 0, &[(5, 300, target)], &[])).unwrap();
        assert_eq!(answer.cname(), vec!["mail.example.test"]);
        assert!(answer.srv().is_empty());
    }

    #[test]
    fn negative_answers_are_remembered_for_the_soa_minimum() {
        // RFC 2308 §5: the smaller of the SOA's own TTL and its MINIMUM.
        let soa = |ttl: u32, minimum: u32| {
            let mut data = vec![0xc0, 12, 0xc0, 12];
            for field in [1u32, 7200, 3600, 1_209_600, minimum] {
                data.extend_from_slice(&field.to_be_bytes());
            }
            (6, ttl, data)
        };
        let q = question(5, "nowhere.test", TYPE_TXT);
        let nx = parse_answer(5, &reply(&q, 3, &[], &[soa(3600, 300)])).unwrap();
        assert_eq!(
            nx,
            Answer::NoSuchName {
                negative_ttl: Some(300)
            }
        );
        let nodata = parse_answer(5, &reply(&q, 0, &[], &[soa(120, 900)])).unwrap();
        assert_eq!(
            nodata,
            Answer::NoData {
                negative_ttl: Some(120)
            }
        );
        // Records of another type are no answer to this one.
        let other = reply(&q, 0, &[(1, 60, vec![192, 0, 2, 1])], &[soa(60, 60)]);
        assert_eq!(
            parse_answer(5, &other).unwrap(),
            Answer::NoData {
                negative_ttl: Some(60)
            }
        );
        // An SOA cut short is malformed.
        let mut short = soa(60, 60);
        short.2.truncate(10);
        assert!(parse_answer(5, &reply(&q, 3, &[], &[short])).is_err());
    }

    #[test]
    fn names_that_cannot_be_asked() {
        assert!(valid_name("example.test") && valid_name("example.test."));
        assert!(valid_name(&format!("{}.test", "x".repeat(63))));
        assert!(!valid_name(&format!("{}.test", "x".repeat(64))));
        assert!(!valid_name("") && !valid_name(".") && !valid_name("a..b"));
        assert!(valid_name(&"a.".repeat(127)), "255 bytes on the wire");
        assert!(!valid_name(&"a.".repeat(128)));
    }
}
