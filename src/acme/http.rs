//! HTTPS to the ACME service: one request per connection. The request
//! writer and the response reader are pure (bytes in, a response out,
//! bounded by [`ACME_MAX_RESPONSE`]); [`fetch`] is the shell that finds
//! the host through the project's resolver, connects, speaks TLS and
//! moves the bytes within [`ACME_REQUEST_TIMEOUT`].

use crate::config::HttpsUrl;
use crate::dns::message::{TYPE_A, TYPE_AAAA};
use crate::dns::Resolver;
use crate::limits::{ACME_MAX_RESPONSE, ACME_REQUEST_TIMEOUT};
use futures_rustls::TlsConnector;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
        }
    }
}

/// A request the order asks to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    /// A signed JWS (POST only).
    pub body: Option<String>,
    /// The certificate download, which is PEM rather than JSON.
    pub pem: bool,
}

/// What the service answered: the status, the fields ACME reads, the body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub replay_nonce: Option<String>,
    /// `Retry-After` in seconds (the date form is read as absent).
    pub retry_after: Option<u64>,
    pub body: Vec<u8>,
}

/// The request's bytes: HTTP/1.1, closing after the answer.
pub fn request_bytes(request: &Request, url: &HttpsUrl) -> Vec<u8> {
    let accept = match request.pem {
        true => "application/pem-certificate-chain",
        false => "application/json",
    };
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: postbox/{}\r\nAccept: {accept}\r\nConnection: close\r\n",
        request.method.as_str(),
        url.path,
        url.authority(),
        env!("CARGO_PKG_VERSION"),
    );
    let body = request.body.as_deref().unwrap_or("");
    if request.method == Method::Post {
        head.push_str(&format!(
            "Content-Type: application/jose+json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Reads a response from `bytes` received so far (`closed`: the server
/// has closed, so a body without a length ends here). `Ok(None)`: more
/// is needed. Bodies by `Content-Length`, chunked, or up to the close.
pub fn parse_response(
    bytes: &[u8],
    closed: bool,
    head_only: bool,
) -> Result<Option<Response>, String> {
    if bytes.len() > ACME_MAX_RESPONSE {
        return Err(format!("response over {ACME_MAX_RESPONSE} bytes"));
    }
    let mut fields = [httparse::EMPTY_HEADER; 48];
    let mut parsed = httparse::Response::new(&mut fields);
    let head_len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if closed => return Err("response cut short".into()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed response: {e}")),
    };
    let mut response = Response {
        status: parsed.code.unwrap_or(0),
        ..Response::default()
    };
    let mut length = None;
    let mut chunked = false;
    for field in parsed.headers.iter() {
        let value = String::from_utf8_lossy(field.value).trim().to_string();
        match field.name.to_ascii_lowercase().as_str() {
            "location" => response.location = Some(value),
            "replay-nonce" => response.replay_nonce = Some(value),
            "retry-after" => response.retry_after = value.parse().ok(),
            "content-length" => {
                length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?)
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().ends_with("chunked"),
            _ => {}
        }
    }
    let rest = &bytes[head_len..];
    if head_only || response.status == 204 || response.status == 304 {
        return Ok(Some(response));
    }
    let body = if chunked {
        match dechunk(rest)? {
            Some(body) => body,
            None if closed => return Err("chunked body cut short".into()),
            None => return Ok(None),
        }
    } else if let Some(length) = length {
        if rest.len() < length {
            if closed {
                return Err("body cut short".into());
            }
            return Ok(None);
        }
        rest[..length].to_vec()
    } else if closed {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    response.body = body;
    Ok(Some(response))
}

/// A chunked body (RFC 9112 §7.1), or `None` while its last chunk is to come.
fn dechunk(mut bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = bytes.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&bytes[..line_end]).map_err(|_| "bad chunk size")?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {size:?}"))?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            // Trailer fields, if any, end with an empty line.
            return Ok(bytes.windows(2).position(|w| w == b"\r\n").map(|_| body));
        }
        if bytes.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&bytes[..size]);
        if &bytes[size..size + 2] != b"\r\n" {
            return Err("chunk without its line end".into());
        }
        bytes = &bytes[size + 2..];
    }
}

/// The addresses of `host`: itself when an IP literal, else its A then
/// AAAA records, asked of the project's resolver.
async fn addresses(resolver: &Resolver, host: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let mut found: Vec<IpAddr> = Vec::new();
    let mut error = None;
    for kind in [TYPE_A, TYPE_AAAA] {
        match resolver.lookup(host, kind).await {
            Ok(answer) => {
                found.extend(answer.ipv4().into_iter().map(IpAddr::V4));
                found.extend(answer.ipv6().into_iter().map(IpAddr::V6));
            }
            Err(e) => error = Some(e),
        }
        if !found.is_empty() {
            break;
        }
    }
    match (found.is_empty(), error) {
        (false, _) => Ok(found),
        (true, Some(e)) => Err(format!("cannot look up {host}: {e}")),
        (true, None) => Err(format!("{host} has no address")),
    }
}

/// Sends `request` and reads the answer, within the time limit.
pub async fn fetch(
    resolver: &Resolver,
    tls: &Arc<rustls::ClientConfig>,
    request: &Request,
) -> Result<Response, String> {
    let url = HttpsUrl::parse(&request.url)?;
    let exchange = exchange(resolver, tls, request, &url);
    smol::future::or(exchange, async {
        smol::Timer::after(ACME_REQUEST_TIMEOUT).await;
        Err(format!("no answer from {} in time", url.authority()))
    })
    .await
}

async fn exchange(
    resolver: &Resolver,
    tls: &Arc<rustls::ClientConfig>,
    request: &Request,
    url: &HttpsUrl,
) -> Result<Response, String> {
    let mut last = String::new();
    let mut tcp = None;
    for ip in addresses(resolver, &url.host).await? {
        match TcpStream::connect(SocketAddr::new(ip, url.port)).await {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last = format!("cannot connect to {ip} port {}: {e}", url.port),
        }
    }
    let tcp = tcp.ok_or(last)?;
    let name = rustls_pki_types::ServerName::try_from(url.host.clone())
        .map_err(|e| format!("{}: {e}", url.host))?;
    let mut stream = TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {}: {e}", url.authority()))?;
    let io = |e: std::io::Error| format!("{}: {e}", url.authority());
    stream
        .write_all(&request_bytes(request, url))
        .await
        .map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut received = Vec::new();
    let mut buf = vec![0u8; 8192];
    let head_only = request.method == Method::Head;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            // Servers often close without close_notify once the body is sent.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(io(e)),
        };
        received.extend_from_slice(&buf[..n]);
        if let Some(response) = parse_response(&received, n == 0, head_only)? {
            return Ok(response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> HttpsUrl {
        HttpsUrl::parse(text).unwrap()
    }

    #[test]
    fn writes_requests() {
        let post = Request {
            method: Method::Post,
            url: "https://ca.test:14000/order?x".into(),
            body: Some("{\"a\":1}".into()),
            pem: false,
        };
        let bytes = request_bytes(&post, &url(&post.url));
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("POST /order?x HTTP/1.1\r\nHost: ca.test:14000\r\n"),
            "{text}"
        );
        assert!(text.contains(
            "\r\nContent-Type: application/jose+json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        ));
        assert!(text.contains("\r\nAccept: application/json\r\n"));
        let get = Request {
            method: Method::Get,
            url: "https://ca.test/dir".into(),
            body: None,
            pem: true,
        };
        let text = String::from_utf8(request_bytes(&get, &url(&get.url))).unwrap();
        assert!(text.starts_with("GET /dir HTTP/1.1\r\nHost: ca.test\r\n"));
        assert!(text.contains("Accept: application/pem-certificate-chain"));
        assert!(!text.contains("Content-Length") && text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn reads_responses_whole_in_pieces_and_chunked() {
        let wire = b"HTTP/1.1 201 Created\r\nLocation: https://ca.test/acct/1\r\nReplay-Nonce: abc\r\nRetry-After: 3\r\nContent-Length: 5\r\n\r\nhello";
        let whole = parse_response(wire, false, false).unwrap().unwrap();
        assert_eq!(whole.status, 201);
        assert_eq!(whole.location.as_deref(), Some("https://ca.test/acct/1"));
        assert_eq!(whole.replay_nonce.as_deref(), Some("abc"));
        assert_eq!(whole.retry_after, Some(3));
        assert_eq!(whole.body, b"hello");
        for cut in 0..wire.len() {
            assert_eq!(
                parse_response(&wire[..cut], false, false).unwrap(),
                None,
                "{cut}"
            );
            assert!(parse_response(&wire[..cut], true, false).is_err(), "{cut}");
        }
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let response = parse_response(chunked, false, false).unwrap().unwrap();
        assert_eq!(response.body, b"hello world");
        for cut in 0..chunked.len() {
            assert_eq!(
                parse_response(&chunked[..cut], false, false).unwrap(),
                None,
                "{cut}"
            );
        }
        let until_close = b"HTTP/1.1 200 OK\r\n\r\nbody";
        assert_eq!(parse_response(until_close, false, false).unwrap(), None);
        assert_eq!(
            parse_response(until_close, true, false)
                .unwrap()
                .unwrap()
                .body,
            b"body"
        );
        let head = b"HTTP/1.1 200 OK\r\nReplay-Nonce: n1\r\nContent-Length: 99\r\n\r\n";
        assert_eq!(
            parse_response(head, false, true)
                .unwrap()
                .unwrap()
                .replay_nonce
                .as_deref(),
            Some("n1")
        );
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert!(parse_response(b"SMTP 220 hello\r\n\r\n", false, false).is_err());
        let mut big = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        big.resize(ACME_MAX_RESPONSE + 1, b'x');
        assert!(parse_response(&big, false, false)
            .unwrap_err()
            .contains("over"));
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(parse_response(bad, false, false).is_err());
        let bad = b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
        assert!(parse_response(bad, false, false).is_err());
    }
}
