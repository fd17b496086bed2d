//! The PROXY protocol header (versions 1 and 2, as haproxy's
//! doc/proxy-protocol.txt defines them): what a proxy in front of a
//! listener sends first, naming the client it relays. A sans-IO reader:
//! fed bytes in pieces of any size, it says whether the header is
//! incomplete, done (and how many of the last piece's bytes it took), or
//! invalid. It never takes a byte past the header, so what the client
//! sent right after (a pipelined SMTP command, a TLS hello) stays for the
//! protocol; and its memory is fixed: TLVs are skipped, not kept.

use crate::limits::{PROXY_V1_MAX_LINE, PROXY_V2_MAX_TLV_BYTES};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 header's first 12 bytes.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The v2 header before its address block.
const V2_FIXED: usize = 16;
/// The longest v2 address block (two AF_UNIX paths).
const V2_MAX_ADDRESSES: usize = 216;
/// v2 address blocks as far as they are read: TCP over IPv4 and IPv6.
const V2_TCP4: usize = 12;
const V2_TCP6: usize = 36;

/// What the header says of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Relayed for a client: where it came from, and where it connected to.
    Proxied {
        version: u8,
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 LOCAL: the proxy's own connection (a health check); the
    /// connection's own address stands.
    Local,
    /// v1 UNKNOWN, or a v2 family or transport not relayed here (UNSPEC,
    /// UDP, UNIX): the connection's own address stands.
    Unknown { version: u8 },
}

impl Header {
    /// The client's address: the header's, or for LOCAL and UNKNOWN the
    /// connection's own (`peer`).
    pub fn client(&self, peer: SocketAddr) -> SocketAddr {
        match self {
            Header::Proxied { source, .. } => *source,
            Header::Local | Header::Unknown { .. } => peer,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More bytes are needed; every byte fed so far was the header's.
    Incomplete,
    /// The header, and how many bytes of the last piece it took (the rest
    /// belongs to the protocol).
    Done(Header, usize),
    /// Not a valid header: the connection must be closed.
    Invalid(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing seen yet.
    Start,
    /// A v1 line, up to its CRLF.
    V1,
    /// The v2 fixed part (signature, version and command, family, length).
    V2Fixed,
    /// The v2 address block and TLVs: `left` bytes of the header to go.
    V2Body {
        left: usize,
    },
    Finished,
}

/// Reads one PROXY header from the start of a connection.
pub struct HeaderReader {
    stage: Stage,
    /// The v1 line, or the v2 fixed part then the address bytes kept.
    buf: [u8; PROXY_V1_MAX_LINE],
    len: usize,
    /// v2: the address block's length as read here (0: not read).
    addresses: usize,
    /// v2: the TLV being skipped: its type and length bytes seen so far,
    /// then its value bytes still to skip.
    tlv_head: [u8; 3],
    tlv_head_len: usize,
    tlv_value_left: usize,
    /// v2: whether TLVs are checked to fill the block exactly (PROXY over
    /// TCP; other blocks are skipped whole).
    tlvs_checked: bool,
}

impl Default for HeaderReader {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderReader {
    pub fn new() -> Self {
        HeaderReader {
            stage: Stage::Start,
            buf: [0; PROXY_V1_MAX_LINE],
            len: 0,
            addresses: 0,
            tlv_head: [0; 3],
            tlv_head_len: 0,
            tlv_value_left: 0,
            tlvs_checked: false,
        }
    }

    /// Feeds the next bytes of the connection. Once it says `Done` or
    /// `Invalid`, the reader is finished.
    pub fn feed(&mut self, input: &[u8]) -> Step {
        for (i, &byte) in input.iter().enumerate() {
            match self.byte(byte) {
                Step::Incomplete => {}
                Step::Done(header, _) => {
                    self.stage = Stage::Finished;
                    return Step::Done(header, i + 1);
                }
                invalid => {
                    self.stage = Stage::Finished;
                    return invalid;
                }
            }
        }
        Step::Incomplete
    }

    fn byte(&mut self, byte: u8) -> Step {
        match self.stage {
            Stage::Start => match byte {
                b'P' => {
                    self.stage = Stage::V1;
                    self.v1_byte(byte)
                }
                b'\r' => {
                    self.stage = Stage::V2Fixed;
                    self.v2_fixed_byte(byte)
                }
                _ => Step::Invalid("not a PROXY header"),
            },
            Stage::V1 => self.v1_byte(byte),
            Stage::V2Fixed => self.v2_fixed_byte(byte),
            Stage::V2Body { left } => self.v2_body_byte(byte, left),
            Stage::Finished => Step::Invalid("the header was already read"),
        }
    }

    fn v1_byte(&mut self, byte: u8) -> Step {
        const PREFIX: &[u8] = b"PROXY ";
        let at = self.len;
        if at < PREFIX.len() && byte != PREFIX[at] {
            return Step::Invalid("not a PROXY header");
        }
        if at > 0 && self.buf[at - 1] == b'\r' && byte != b'\n' {
            return Step::Invalid("v1: CR without LF");
        }
        if byte == b'\n' && (at == 0 || self.buf[at - 1] != b'\r') {
            return Step::Invalid("v1: LF without CR");
        }
        self.buf[at] = byte;
        self.len += 1;
        if byte == b'\n' {
            return match parse_v1(&self.buf[PREFIX.len()..self.len - 2]) {
                Some(header) => Step::Done(header, 0),
                None => Step::Invalid("v1: malformed line"),
            };
        }
        if self.len == PROXY_V1_MAX_LINE {
            return Step::Invalid("v1: no CRLF within 107 bytes");
        }
        Step::Incomplete
    }

    fn v2_fixed_byte(&mut self, byte: u8) -> Step {
        let at = self.len;
        if at < V2_SIGNATURE.len() && byte != V2_SIGNATURE[at] {
            return Step::Invalid("not a PROXY header");
        }
        match at {
            12 if byte >> 4 != 2 => return Step::Invalid("v2: unknown version"),
            12 if byte & 0x0f > 1 => return Step::Invalid("v2: unknown command"),
            13 if byte >> 4 > 3 => return Step::Invalid("v2: unknown address family"),
            13 if byte & 0x0f > 2 => return Step::Invalid("v2: unknown transport"),
            _ => {}
        }
        self.buf[at] = byte;
        self.len += 1;
        if self.len < V2_FIXED {
            return Step::Incomplete;
        }
        let length = usize::from(u16::from_be_bytes([self.buf[14], self.buf[15]]));
        if length > V2_MAX_ADDRESSES + PROXY_V2_MAX_TLV_BYTES {
            return Step::Invalid("v2: header too long");
        }
        let proxied = self.buf[12] & 0x0f == 1;
        self.addresses = match (proxied, self.buf[13]) {
            (true, 0x11) => V2_TCP4,
            (true, 0x21) => V2_TCP6,
            _ => 0,
        };
        if length < self.addresses {
            return Step::Invalid("v2: address block shorter than its family's");
        }
        self.tlvs_checked = self.addresses > 0;
        if length == 0 {
            return self.v2_done();
        }
        self.stage = Stage::V2Body { left: length };
        Step::Incomplete
    }

    fn v2_body_byte(&mut self, byte: u8, left: usize) -> Step {
        let offset = self.len - V2_FIXED;
        if offset < self.addresses {
            self.buf[self.len] = byte;
            self.len += 1;
        } else if self.tlvs_checked {
            if self.tlv_value_left > 0 {
                self.tlv_value_left -= 1;
            } else {
                self.tlv_head[self.tlv_head_len] = byte;
                self.tlv_head_len += 1;
                if self.tlv_head_len == 3 {
                    self.tlv_head_len = 0;
                    self.tlv_value_left =
                        usize::from(u16::from_be_bytes([self.tlv_head[1], self.tlv_head[2]]));
                    if self.tlv_value_left > left - 1 {
                        return Step::Invalid("v2: a TLV runs past the header");
                    }
                }
            }
        }
        let left = left - 1;
        if left > 0 {
            self.stage = Stage::V2Body { left };
            return Step::Incomplete;
        }
        if self.tlv_head_len != 0 {
            return Step::Invalid("v2: a TLV runs past the header");
        }
        self.v2_done()
    }

    fn v2_done(&self) -> Step {
        let block = &self.buf[V2_FIXED..V2_FIXED + self.addresses];
        let header = match self.addresses {
            V2_TCP4 => {
                let ip = |at: usize| IpAddr::V4(Ipv4Addr::from(take::<4>(block, at)));
                let port = |at: usize| u16::from_be_bytes(take::<2>(block, at));
                Header::Proxied {
                    version: 2,
                    source: SocketAddr::new(ip(0), port(8)),
                    destination: SocketAddr::new(ip(4), port(10)),
                }
            }
            V2_TCP6 => {
                let ip = |at: usize| IpAddr::V6(Ipv6Addr::from(take::<16>(block, at)));
                let port = |at: usize| u16::from_be_bytes(take::<2>(block, at));
                Header::Proxied {
                    version: 2,
                    source: SocketAddr::new(ip(0), port(32)),
                    destination: SocketAddr::new(ip(16), port(34)),
                }
            }
            _ if self.buf[12] & 0x0f == 0 => Header::Local,
            _ => Header::Unknown { version: 2 },
        };
        Step::Done(header, 0)
    }
}

fn take<const N: usize>(block: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&block[at..at + N]);
    out
}

/// The v1 line after "PROXY ", without its CRLF.
fn parse_v1(rest: &[u8]) -> Option<Header> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut fields = text.split(' ');
    let family = fields.next()?;
    if family == "UNKNOWN" {
        // Whatever follows is to be ignored.
        return Some(Header::Unknown { version: 1 });
    }
    let v6 = match family {
        "TCP4" => false,
        "TCP6" => true,
        _ => return None,
    };
    let ip = |text: &str| -> Option<IpAddr> {
        match v6 {
            false => text.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            true => text.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        }
    };
    let source = ip(fields.next()?)?;
    let destination = ip(fields.next()?)?;
    let source_port = port(fields.next()?)?;
    let destination_port = port(fields.next()?)?;
    if fields.next().is_some() {
        return None;
    }
    Some(Header::Proxied {
        version: 1,
        source: SocketAddr::new(source, source_port),
        destination: SocketAddr::new(destination, destination_port),
    })
}

/// A port in decimal, without leading zeros.
fn port(text: &str) -> Option<u16> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    if !digits || text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` whole and byte by byte: both must agree; the outcome
    /// and, when done, the header's length.
    fn read(input: &[u8]) -> Result<(Header, usize), &'static str> {
        let whole = match HeaderReader::new().feed(input) {
            Step::Done(header, used) => Ok((header, used)),
            Step::Invalid(why) => Err(why),
            Step::Incomplete => Err("incomplete"),
        };
        let mut reader = HeaderReader::new();
        let mut bytewise = Err("incomplete");
        for (i, byte) in input.iter().enumerate() {
            match reader.feed(std::slice::from_ref(byte)) {
                Step::Incomplete => continue,
                Step::Done(header, used) => {
                    assert_eq!(used, 1);
                    bytewise = Ok((header, i + 1));
                }
                Step::Invalid(why) => bytewise = Err(why),
            }
            break;
        }
        assert_eq!(whole, bytewise, "{input:?}");
        whole
    }

    fn v4(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn v1_tcp4_from_the_spec_leaves_the_request() {
        let input = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
        let (header, used) = read(input).unwrap();
        assert_eq!(
            header,
            Header::Proxied {
                version: 1,
                source: v4("192.168.0.1:56324"),
                destination: v4("192.168.0.11:443"),
            }
        );
        assert_eq!(&input[used..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn v1_longest_lines() {
        let line = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(line.len(), 56);
        assert_eq!(read(line).unwrap().1, 56);
        let six = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let line = format!("PROXY TCP6 {six} {six} 65535 65535\r\nEHLO x\r\n");
        let (header, used) = read(line.as_bytes()).unwrap();
        assert_eq!(used, 104);
        assert_eq!(
            header.client(v4("127.0.0.1:1")),
            SocketAddr::new(six.parse().unwrap(), 65535)
        );
        // The worst case the spec gives: 107 bytes, UNKNOWN with addresses.
        let line = format!("PROXY UNKNOWN {six} {six} 65535 65535\r\n");
        assert_eq!(line.len(), 107);
        assert_eq!(
            read(line.as_bytes()),
            Ok((Header::Unknown { version: 1 }, 107))
        );
        // One byte more and there is no CRLF within 107 bytes.
        let line = format!("PROXY UNKNOWN {six} {six} 65535 655350\r\n");
        assert_eq!(read(line.as_bytes()), Err("v1: no CRLF within 107 bytes"));
    }

    #[test]
    fn v1_tcp6_compressed() {
        let (header, _) = read(b"PROXY TCP6 2001:db8::1 ::1 40000 25\r\n").unwrap();
        assert_eq!(
            header,
            Header::Proxied {
                version: 1,
                source: "[2001:db8::1]:40000".parse().unwrap(),
                destination: "[::1]:25".parse().unwrap(),
            }
        );
    }

    #[test]
    fn v1_unknown_uses_the_connection() {
        let (header, used) = read(b"PROXY UNKNOWN\r\nQUIT\r\n").unwrap();
        assert_eq!((header, used), (Header::Unknown { version: 1 }, 15));
        assert_eq!(header.client(v4("10.0.0.1:5")), v4("10.0.0.1:5"));
        assert_eq!(
            read(b"PROXY UNKNOWN anything at all\r\n"),
            Ok((Header::Unknown { version: 1 }, 31))
        );
    }

    #[test]
    fn v1_malformed_lines() {
        for line in [
            &b"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n"[..],
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 x\r\n",
            b"PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",
            b"PROXY TCP4 192.168.000.1 192.168.0.11 56324 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 +5632 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.256 1 443\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY \r\n",
        ] {
            assert_eq!(read(line), Err("v1: malformed line"), "{line:?}");
        }
        assert_eq!(read(b"PROXY UNKNOWN\n"), Err("v1: LF without CR"));
        assert_eq!(read(b"PROXY UNKNOWN\rX\n"), Err("v1: CR without LF"));
        assert_eq!(read(b"PROXY\tUNKNOWN\r\n"), Err("not a PROXY header"));
        assert_eq!(read(b"PROXY TCP4 1.2.3.4"), Err("incomplete"));
    }

    #[test]
    fn other_protocols_are_refused_at_once() {
        assert_eq!(read(b"EHLO client.example\r\n"), Err("not a PROXY header"));
        assert_eq!(read(b"PRO"), Err("incomplete"));
        assert_eq!(read(b"POST / HTTP/1.1\r\n"), Err("not a PROXY header"));
        // A TLS ClientHello.
        assert_eq!(read(&[0x16, 0x03, 0x01, 0x02]), Err("not a PROXY header"));
        assert_eq!(read(b"\r\n\r\nX"), Err("not a PROXY header"));
        assert_eq!(read(b""), Err("incomplete"));
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// What haproxy sent to netcat in the example: TCP over IPv4,
    /// 172.19.0.1:42578 to 172.19.0.3:80, then the request.
    #[test]
    fn v2_tcp4_as_haproxy_sends_it() {
        let mut input = vec![
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11,
            0x00, 0x0c, 0xac, 0x13, 0x00, 0x01, 0xac, 0x13, 0x00, 0x03, 0xa6, 0x52, 0x00, 0x50,
        ];
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (header, used) = read(&input).unwrap();
        assert_eq!(used, 28);
        assert_eq!(
            header,
            Header::Proxied {
                version: 2,
                source: v4("172.19.0.1:42578"),
                destination: v4("172.19.0.3:80"),
            }
        );
    }

    #[test]
    fn v2_tcp6() {
        let mut body = Vec::new();
        body.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        body.extend_from_slice(&[0x9c, 0x40, 0x00, 0x19]);
        let (header, used) = read(&v2(1, 0x21, &body)).unwrap();
        assert_eq!(used, 16 + 36);
        assert_eq!(
            header,
            Header::Proxied {
                version: 2,
                source: "[2001:db8::7]:40000".parse().unwrap(),
                destination: "[::1]:25".parse().unwrap(),
            }
        );
    }

    #[test]
    fn v2_local_uses_the_connection_whatever_its_block() {
        assert_eq!(read(&v2(0, 0x00, &[])), Ok((Header::Local, 16)));
        // The block must be skipped even for LOCAL.
        let body = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xff];
        assert_eq!(read(&v2(0, 0x11, &body)), Ok((Header::Local, 29)));
        let header = Header::Local;
        assert_eq!(header.client(v4("10.1.1.1:9")), v4("10.1.1.1:9"));
    }

    #[test]
    fn v2_families_not_relayed_use_the_connection() {
        let unknown = Header::Unknown { version: 2 };
        assert_eq!(read(&v2(1, 0x00, &[])), Ok((unknown, 16)));
        // UDP over IPv4, and a UNIX stream with its two paths.
        assert_eq!(read(&v2(1, 0x12, &[0; 12])), Ok((unknown, 28)));
        assert_eq!(read(&v2(1, 0x31, &[b'/'; 216])), Ok((unknown, 232)));
    }

    #[test]
    fn v2_tlvs_are_skipped() {
        let mut body = vec![127, 0, 0, 5, 127, 0, 0, 1, 0x30, 0x39, 0x00, 0x19];
        // ALPN "smtp", a NOOP with nothing, a unique ID.
        body.extend_from_slice(&[0x01, 0x00, 0x04]);
        body.extend_from_slice(b"smtp");
        body.extend_from_slice(&[0x04, 0x00, 0x00]);
        body.extend_from_slice(&[0x05, 0x00, 0x03, 1, 2, 3]);
        let mut input = v2(1, 0x11, &body);
        input.extend_from_slice(b"EHLO x\r\n");
        let (header, used) = read(&input).unwrap();
        assert_eq!(used, 16 + body.len());
        assert_eq!(header.client(v4("127.0.0.1:1")), v4("127.0.0.5:12345"));
        // A TLV longer than what is left, or cut in its type and length.
        let mut bad = body[..12].to_vec();
        bad.extend_from_slice(&[0x01, 0x00, 0x05, b'x']);
        assert_eq!(
            read(&v2(1, 0x11, &bad)),
            Err("v2: a TLV runs past the header")
        );
        let mut cut = body[..12].to_vec();
        cut.extend_from_slice(&[0x04, 0x00]);
        assert_eq!(
            read(&v2(1, 0x11, &cut)),
            Err("v2: a TLV runs past the header")
        );
    }

    #[test]
    fn v2_bounds_and_mistakes() {
        let longest = V2_MAX_ADDRESSES + PROXY_V2_MAX_TLV_BYTES;
        let mut body = vec![0u8; longest];
        body[..12].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2]);
        // A NOOP TLV filling the rest.
        body[12] = 0x04;
        body[13..15].copy_from_slice(&((longest - 15) as u16).to_be_bytes());
        assert_eq!(read(&v2(1, 0x11, &body)).unwrap().1, 16 + longest);
        body.push(0);
        assert_eq!(read(&v2(1, 0x11, &body)), Err("v2: header too long"));
        // Refused from its fixed part alone, without waiting for the body.
        let mut fixed = V2_SIGNATURE.to_vec();
        fixed.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(read(&fixed), Err("v2: header too long"));

        assert_eq!(
            read(&v2(1, 0x11, &[0; 11])),
            Err("v2: address block shorter than its family's")
        );
        assert_eq!(
            read(&v2(1, 0x21, &[0; 12])),
            Err("v2: address block shorter than its family's")
        );
        assert_eq!(read(&v2(2, 0x11, &[0; 12])), Err("v2: unknown command"));
        assert_eq!(read(&v2(0, 0x41, &[])), Err("v2: unknown address family"));
        assert_eq!(read(&v2(0, 0x13, &[])), Err("v2: unknown transport"));
        let mut v3 = v2(1, 0x11, &[0; 12]);
        v3[12] = 0x31;
        assert_eq!(read(&v3), Err("v2: unknown version"));
        let mut wrong = v2(1, 0x11, &[0; 12]);
        wrong[7] = b'q';
        assert_eq!(read(&wrong), Err("not a PROXY header"));
        // Truncated anywhere: still waiting, never done.
        let whole = v2(1, 0x11, &[0; 12]);
        for end in 0..whole.len() {
            assert_eq!(HeaderReader::new().feed(&whole[..end]), Step::Incomplete);
        }
    }

    #[test]
    fn done_once() {
        let mut reader = HeaderReader::new();
        assert!(matches!(reader.feed(b"PROXY UNKNOWN\r\n"), Step::Done(..)));
        assert!(matches!(
            reader.feed(b"PROXY UNKNOWN\r\n"),
            Step::Invalid(_)
        ));
    }
}
