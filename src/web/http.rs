//! HTTP/1.1 requests in, responses out, sans-IO: the shell passes the
//! bytes it read and the time; the reader says when a request is whole,
//! or which error to answer before closing. httparse reads the request
//! head; the bounds, the body, keep-alive and the deadline are ours.
//!
//! Bounded: the head is at most [`MAX_HTTP_HEAD`] bytes with at most
//! [`MAX_HTTP_HEADERS`] fields, the body at most [`MAX_HTTP_BODY`] (by
//! Content-Length; a chunked body is refused), and a request must be
//! whole within [`HTTP_REQUEST_TIMEOUT`] of when the wait for it began.

use crate::limits::{
    HSTS_MAX_AGE, HTTP_REQUEST_TIMEOUT, MAX_HTTP_BODY, MAX_HTTP_HEAD, MAX_HTTP_HEADERS,
};
use std::time::{Instant, SystemTime};

/// One request, as the router and the handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// As sent (methods are case-sensitive): `GET`, `POST`...
    pub method: String,
    /// The path of the request target, still percent-encoded.
    pub path: String,
    /// What follows `?` in the target, if anything.
    pub query: Option<String>,
    /// The Host field's (or an absolute target's) host name or address,
    /// without its port; checked to hold only host characters.
    pub host: Option<String>,
    /// Header fields, names in lowercase.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The client asked to keep the connection open (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
}

impl Request {
    /// The first field named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first query parameter `name`, percent-decoded (`+` is a space);
    /// `None` if missing or not UTF-8 once decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key)? == name).then(|| percent_decode(value))?
        })
    }
}

/// `%XX` escapes and `+` (a space, in form encoding) decoded.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A response: status, content and the fields particular to it; the
/// fields every response carries are added when it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Further fields: `Location`, `Allow`. Values are ours, never a
    /// client's bytes unchecked.
    pub fields: Vec<(&'static str, String)>,
    /// The connection closes after this response.
    pub close: bool,
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const TEXT: &str = "text/plain; charset=utf-8";
pub const XML: &str = "text/xml; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";
pub const SVG: &str = "image/svg+xml";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            fields: Vec::new(),
            close: false,
        }
    }

    pub fn html(body: String) -> Response {
        Response::new(200, HTML, body)
    }

    /// A small page naming the status: `404 Not Found`.
    pub fn error(status: u16) -> Response {
        let title = format!("{status} {}", reason(status));
        let page = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body><h1>{title}</h1></body></html>\n"
        );
        Response::new(status, HTML, page)
    }

    /// 303 to `location` (ours: a path), the answer to a form that worked.
    pub fn see_other(location: &str) -> Response {
        let mut response = Response::error(303);
        response.fields.push(("Location", location.to_string()));
        response
    }

    /// 301 to `location` (which must be a valid header value).
    pub fn moved_permanently(location: String) -> Response {
        let mut response = Response::error(301);
        response.fields.push(("Location", location));
        response
    }

    /// An error after which the connection is unusable (the rest of the
    /// request was not read).
    fn fatal(status: u16) -> Response {
        let mut response = Response::error(status);
        response.close = true;
        response
    }

    /// The response on the wire. `https`: adds HSTS; `keep_alive`: whether
    /// the connection stays open; `head`: the answer to a HEAD request
    /// (fields only, Content-Length as for GET); `now` for `Date`.
    pub fn to_bytes(&self, https: bool, keep_alive: bool, head: bool, now: SystemTime) -> Vec<u8> {
        let status = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        let mut out = status.into_bytes();
        out.reserve(512 + self.body.len());
        let mut field = |name: &str, value: &str| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        let date = crate::ops::clock::rfc5322_date(now).replace("+0000", "GMT");
        field("Date", &date);
        field("Server", "postbox");
        field("Content-Type", self.content_type);
        field("Content-Length", &self.body.len().to_string());
        for (name, value) in &self.fields {
            field(name, value);
        }
        for (name, value) in SECURITY_FIELDS {
            field(name, value);
        }
        if https {
            field(
                "Strict-Transport-Security",
                &format!("max-age={}", HSTS_MAX_AGE.as_secs()),
            );
        }
        field(
            "Connection",
            if keep_alive && !self.close {
                "keep-alive"
            } else {
                "close"
            },
        );
        out.extend_from_slice(b"\r\n");
        if !head {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Sent with every response: nothing from elsewhere, no guessing of types,
/// no referrer, no framing by other sites.
pub const SECURITY_FIELDS: [(&str, &str); 4] = [
    ("Content-Security-Policy", "default-src 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
];

/// The reason phrase of each status we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        303 => "See Other",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// What the reader has after the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A whole request.
    Request(Request),
    /// A request that is refused: answer this, then close.
    Refused(Response),
}

/// A head read, waiting for its body.
struct Head {
    request: Request,
    head_len: usize,
    body_len: usize,
}

/// Reads requests off one connection, one after the other.
pub struct RequestReader {
    /// Bytes of the current request and any that followed it.
    buf: Vec<u8>,
    /// How far `buf` was searched for the end of the head.
    scanned: usize,
    head: Option<Head>,
    /// When the wait for the current request began.
    since: Instant,
}

impl RequestReader {
    pub fn new(now: Instant) -> RequestReader {
        RequestReader {
            buf: Vec::new(),
            scanned: 0,
            head: None,
            since: now,
        }
    }

    /// When the wait for the current request began (the session counts
    /// as idle since then).
    pub fn since(&self) -> Instant {
        self.since
    }

    /// When the current request must be whole.
    pub fn deadline(&self) -> Instant {
        self.since + HTTP_REQUEST_TIMEOUT
    }

    /// Begins the wait for the next request (after a response was sent).
    pub fn next_request(&mut self, now: Instant) {
        self.since = now;
    }

    /// What to answer a client that missed the deadline: 408 if it had
    /// begun a request, nothing (just close) if it had sent nothing.
    pub fn timed_out(&self) -> Option<Response> {
        (!self.buf.is_empty()).then(|| Response::fatal(408))
    }

    /// Takes bytes read from the client.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held (for the bound's test).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next request, once the bytes received hold one.
    pub fn poll(&mut self) -> Parsed {
        if self.head.is_none() {
            let Some(head_len) = self.end_of_head() else {
                if self.buf.len() > MAX_HTTP_HEAD {
                    return Parsed::Refused(Response::fatal(self.head_too_large()));
                }
                return Parsed::Incomplete;
            };
            if head_len > MAX_HTTP_HEAD {
                return Parsed::Refused(Response::fatal(self.head_too_large()));
            }
            match read_head(&self.buf[..head_len]) {
                Ok((request, body_len)) => {
                    self.head = Some(Head {
                        request,
                        head_len,
                        body_len,
                    })
                }
                Err(status) => return Parsed::Refused(Response::fatal(status)),
            }
        }
        let Some(head) = &self.head else {
            return Parsed::Incomplete;
        };
        let end = head.head_len + head.body_len;
        if self.buf.len() < end {
            return Parsed::Incomplete;
        }
        let Some(Head {
            mut request,
            head_len,
            ..
        }) = self.head.take()
        else {
            return Parsed::Incomplete;
        };
        request.body = self.buf[head_len..end].to_vec();
        self.buf.drain(..end);
        self.scanned = 0;
        Parsed::Request(request)
    }

    /// 414 when the request line does not end within the cap (the target
    /// is too long), else 431 (the fields are): judged on the cap's bytes
    /// alone, so how the bytes came in makes no difference.
    fn head_too_large(&self) -> u16 {
        match self.buf[..=MAX_HTTP_HEAD].contains(&b'\n') {
            true => 431,
            false => 414,
        }
    }

    /// Where the head ends (after its empty line), searching only bytes
    /// not searched before.
    fn end_of_head(&mut self) -> Option<usize> {
        let buf = &self.buf;
        // A request may begin with empty lines (RFC 9112 §2.2).
        let start = buf
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap_or(buf.len());
        let from = self.scanned.max(start);
        for i in from..buf.len() {
            if buf[i] != b'\n' {
                continue;
            }
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                (None, _) | (Some(b'\r'), None) => {
                    self.scanned = i;
                    return None;
                }
                _ => {}
            }
        }
        self.scanned = buf.len();
        None
    }
}

/// The request a whole head (empty line included) makes, and the length
/// of its body; or the status that refuses it.
fn read_head(bytes: &[u8]) -> Result<(Request, usize), u16> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(400),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(httparse::Error::Version) => return Err(505),
        Err(_) => return Err(400),
    }
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(400);
    };
    let headers: Vec<(String, Vec<u8>)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    let connection: Vec<String> = fields(&headers, "connection")
        .flat_map(|v| v.split(|b| *b == b','))
        .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
        .collect();
    let keep_alive = match version {
        0 => connection.iter().any(|t| t == "keep-alive"),
        _ => !connection.iter().any(|t| t == "close"),
    };
    if fields(&headers, "transfer-encoding").next().is_some() {
        // A chunked body (which no page here needs) is refused rather than
        // misread; RFC 9112 §6.1 has a server close after such a refusal.
        return Err(501);
    }
    let lengths: Vec<&[u8]> = fields(&headers, "content-length").collect();
    let body_len = match lengths.first() {
        None => 0,
        Some(first) => {
            if lengths.iter().any(|other| other != first) {
                return Err(400);
            }
            let digits = std::str::from_utf8(first).map_err(|_| 400u16)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(400);
            }
            match digits.parse::<usize>() {
                Ok(n) if n <= MAX_HTTP_BODY => n,
                _ => return Err(413),
            }
        }
    };
    let (authority, path_and_query) = split_target(target).ok_or(400u16)?;
    let hosts: Vec<&[u8]> = fields(&headers, "host").collect();
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1.
    if hosts.len() > 1 || (version == 1 && hosts.is_empty()) {
        return Err(400);
    }
    let host = match authority.or(hosts.first().copied()) {
        None => None,
        Some(given) => Some(host_of(given).ok_or(400u16)?),
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (path_and_query, None),
    };
    Ok((
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query,
            host,
            headers,
            body: Vec::new(),
            keep_alive,
        },
        body_len,
    ))
}

/// The values of every field named `name` (lowercase).
fn fields<'a>(headers: &'a [(String, Vec<u8>)], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// An origin-form target (`/path?query`), or an absolute one
/// (`http://host/path`, RFC 9112 §3.2.2): its authority, if any, and the
/// path with the query.
fn split_target(target: &str) -> Option<(Option<&[u8]>, &str)> {
    if target.starts_with('/') {
        return Some((None, target));
    }
    let lower = target.get(..8)?.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return None;
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(_) => return None,
        None => (rest, "/"),
    };
    Some((Some(authority.as_bytes()), path))
}

/// The host of a Host field (`name`, `name:port`, `[v6]:port`) without the
/// port; `None` unless it is made of host characters only.
fn host_of(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let host = if text.starts_with('[') {
        let end = text.find(']')?;
        let port = &text[end + 1..];
        if !(port.is_empty() || port.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        let inner = &text[1..end];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        &text[..=end]
    } else {
        let (name, port) = text.split_once(':').unwrap_or((text, ""));
        if !port.is_empty() && !is_port(port) || text.ends_with(':') {
            return None;
        }
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return None;
        }
        name
    };
    Some(host.to_ascii_lowercase())
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Parsed {
        let mut reader = RequestReader::new(Instant::now());
        reader.receive(bytes);
        reader.poll()
    }

    fn request(bytes: &[u8]) -> Request {
        match read_all(bytes) {
            Parsed::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn refused(bytes: &[u8]) -> u16 {
        match read_all(bytes) {
            Parsed::Refused(r) => {
                assert!(r.close);
                r.status
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_byte_by_byte_is_the_same_request() {
        let wire = b"POST /autodiscover/autodiscover.xml?x=1 HTTP/1.1\r\nHost: Mail.Example.org:443\r\nContent-Length: 5\r\n\r\nhello";
        let mut reader = RequestReader::new(Instant::now());
        for (i, byte) in wire.iter().enumerate() {
            assert_eq!(reader.poll(), Parsed::Incomplete, "at {i}");
            reader.receive(&[*byte]);
        }
        let Parsed::Request(r) = reader.poll() else {
            panic!()
        };
        assert_eq!(r, request(wire));
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/autodiscover/autodiscover.xml");
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.host.as_deref(), Some("mail.example.org"));
        assert_eq!(r.body, b"hello");
        assert!(r.keep_alive);
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn pipelined_requests_come_one_after_the_other() {
        let mut reader = RequestReader::new(Instant::now());
        reader.receive(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        let Parsed::Request(a) = reader.poll() else {
            panic!()
        };
        let Parsed::Request(b) = reader.poll() else {
            panic!()
        };
        assert_eq!((a.path.as_str(), b.path.as_str()), ("/a", "/b"));
        assert!(a.keep_alive && !b.keep_alive);
        assert_eq!(reader.poll(), Parsed::Incomplete);
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        assert!(!request(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!request(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: te, close\r\n\r\n").keep_alive);
        // Bare LF line ends and leading empty lines are read too.
        assert_eq!(request(b"\r\nGET /x HTTP/1.1\nHost: h\n\n").path, "/x");
    }

    #[test]
    fn hosts_and_targets() {
        let r = request(b"GET http://Example.org:80/p?q HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(
            (r.host.as_deref(), r.path.as_str()),
            (Some("example.org"), "/p")
        );
        let r = request(b"GET / HTTP/1.1\r\nHost: [::1]:2080\r\n\r\n");
        assert_eq!(r.host.as_deref(), Some("[::1]"));
        assert_eq!(request(b"GET / HTTP/1.0\r\n\r\n").host, None);
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\"><x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a:port\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ] {
            assert_eq!(refused(bad), 400, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
    }

    #[test]
    fn bounds_are_kept() {
        let mut huge = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        while huge.len() <= MAX_HTTP_HEAD {
            huge.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        assert_eq!(refused(&huge), 431);
        huge.extend_from_slice(b"\r\n");
        assert_eq!(refused(&huge), 431);
        let mut long_target = b"GET /".to_vec();
        long_target.resize(MAX_HTTP_HEAD + 1, b'a');
        assert_eq!(refused(&long_target), 414);
        let mut many = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..MAX_HTTP_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(refused(&many), 431);
        let big_body = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            MAX_HTTP_BODY + 1
        );
        assert_eq!(refused(big_body.as_bytes()), 413);
        assert_eq!(
            refused(
                b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"
            ),
            413
        );
    }

    #[test]
    fn the_deadline_runs_from_the_start_of_the_wait() {
        let start = Instant::now();
        let mut reader = RequestReader::new(start);
        assert_eq!(reader.deadline(), start + HTTP_REQUEST_TIMEOUT);
        assert_eq!(reader.timed_out(), None, "nothing sent: just closed");
        reader.receive(b"GET");
        assert_eq!(reader.timed_out().map(|r| r.status), Some(408));
        let later = start + std::time::Duration::from_secs(3);
        reader.next_request(later);
        assert_eq!(reader.since(), later);
    }

    #[test]
    fn query_parameters_are_decoded() {
        let r = request(b"GET /mail/config-v1.1.xml?a=1&emailaddress=alice%40example.org&b HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(
            r.query_param("emailaddress").as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(r.query_param("b").as_deref(), Some(""));
        assert_eq!(r.query_param("c"), None);
        assert_eq!(percent_decode("a+b%2"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn every_response_carries_the_security_fields() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        let wire = Response::error(404).to_bytes(true, true, false, now);
        let text = String::from_utf8(wire).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(
            text.contains("\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
            "{text}"
        );
        for (name, value) in SECURITY_FIELDS {
            assert!(text.contains(&format!("\r\n{name}: {value}\r\n")), "{text}");
        }
        assert!(text.contains("\r\nStrict-Transport-Security: max-age=31536000\r\n"));
        assert!(text.contains("\r\nConnection: keep-alive\r\n"));
        let plain =
            Response::moved_permanently("https://h/".into()).to_bytes(false, false, true, now);
        let text = String::from_utf8(plain).unwrap();
        assert!(!text.contains("Strict-Transport-Security"));
        assert!(text.contains("\r\nLocation: https://h/\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n"), "HEAD: no body");
    }
}
