//! The SMTP client that hands queued mail to the next server: greeting,
//! EHLO, STARTTLS (required for a smarthost, opportunistic for MX hosts),
//! AUTH, the envelope, and the message streamed from flash with
//! dot-stuffing. Every reply is bounded in size and time.

use crate::limits::{OUTBOUND_COMMAND_TIMEOUT, OUTBOUND_CONNECT_TIMEOUT, OUTBOUND_DATA_TIMEOUT};
use crate::store::disk::Reader;
use crate::wire::line::{LineBuffer, LineEvent};
use base64::Engine;
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::Timer;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How TLS is used on one connection.
#[derive(Clone)]
pub enum TlsPolicy {
    /// STARTTLS must be offered and succeed; the certificate is verified.
    Required(Arc<rustls::ClientConfig>),
    /// TLS from the first byte, verified.
    Implicit(Arc<rustls::ClientConfig>),
    /// STARTTLS when offered, with no certificate check (what MX-to-MX
    /// mail does: an encrypted channel beats a plain one).
    Opportunistic(Arc<rustls::ClientConfig>),
    Off,
}

pub struct Attempt<'a> {
    /// The host name: for TLS verification and for the log.
    pub host: &'a str,
    pub addr: SocketAddr,
    /// Our name in EHLO.
    pub helo: &'a str,
    pub tls: TlsPolicy,
    pub login: Option<(&'a str, &'a str)>,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub size: u64,
}

/// An answer of the other side, or a failure to get one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub permanent: bool,
    pub text: String,
}

impl Failure {
    fn temporary(text: impl Into<String>) -> Failure {
        Failure {
            permanent: false,
            text: text.into(),
        }
    }

    fn from_reply(what: &str, reply: &Reply) -> Failure {
        Failure {
            permanent: reply.code >= 500,
            text: format!("{what}: {}", reply.text()),
        }
    }
}

/// The fate of each recipient after a session that reached DATA (or
/// refused every RCPT), in the order given.
pub type RecipientResults = Vec<Result<(), Failure>>;

#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" / ")
    }

    fn has_keyword(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|l| {
            l.get(4..)
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
        })
    }

    fn auth_mechanisms(&self) -> Vec<String> {
        self.lines
            .iter()
            .skip(1)
            .filter_map(|l| {
                let mut words = l.get(4..)?.split_whitespace();
                let first = words.next()?;
                first
                    .eq_ignore_ascii_case("AUTH")
                    .then(|| words.map(|w| w.to_ascii_uppercase()).collect::<Vec<_>>())
            })
            .flatten()
            .collect()
    }
}

enum Wire {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Broken,
}

struct Connection {
    wire: Wire,
    lines: LineBuffer,
    buf: Box<[u8; 4096]>,
    start: usize,
    end: usize,
}

const MAX_REPLY_LINES: usize = 64;

async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, Failure> {
    future::or(
        async {
            f.await
                .map_err(|e| Failure::temporary(format!("{what}: {e}")))
        },
        async {
            Timer::after(limit).await;
            Err(Failure::temporary(format!("{what}: timed out")))
        },
    )
    .await
}

impl Connection {
    async fn read_some(&mut self) -> io::Result<usize> {
        let buf = &mut self.buf[..];
        match &mut self.wire {
            Wire::Plain(s) => s.read(buf).await,
            Wire::Tls(s) => s.read(buf).await,
            Wire::Broken => Err(io::Error::other("connection unusable")),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.wire {
            Wire::Plain(s) => s.write_all(bytes).await,
            Wire::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Wire::Broken => Err(io::Error::other("connection unusable")),
        }
    }

    /// One whole reply, multi-line or not.
    async fn reply(&mut self, limit: Duration) -> Result<Reply, Failure> {
        let mut lines = Vec::new();
        loop {
            while self.start < self.end {
                let (used, event) = self.lines.push(&self.buf[self.start..self.end]);
                self.start += used;
                let line = match event {
                    None => continue,
                    Some(LineEvent::TooLong) => {
                        return Err(Failure::temporary("reply line too long"))
                    }
                    Some(LineEvent::Line(l)) => String::from_utf8_lossy(l).into_owned(),
                };
                let code = line
                    .get(..3)
                    .and_then(|c| c.parse::<u16>().ok())
                    .filter(|c| (200..600).contains(c));
                let Some(code) = code else {
                    return Err(Failure::temporary(format!("not an SMTP reply: {line:?}")));
                };
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return Ok(Reply { code, lines });
                }
                if lines.len() >= MAX_REPLY_LINES {
                    return Err(Failure::temporary("reply too long"));
                }
            }
            let n = within(limit, "reading reply", self.read_some()).await?;
            if n == 0 {
                return Err(Failure::temporary("connection closed by the server"));
            }
            self.start = 0;
            self.end = n;
        }
    }

    async fn command(&mut self, line: &str, limit: Duration) -> Result<Reply, Failure> {
        let bytes = format!("{line}\r\n");
        within(limit, "sending", self.write_all(bytes.as_bytes())).await?;
        self.reply(limit).await
    }

    async fn start_tls(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<(), Failure> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| Failure::temporary(format!("{host:?} is not a valid TLS server name")))?;
        let Wire::Plain(tcp) = std::mem::replace(&mut self.wire, Wire::Broken) else {
            return Err(Failure::temporary("TLS already started"));
        };
        let tls = within(
            crate::limits::TLS_HANDSHAKE_TIMEOUT,
            "TLS handshake",
            TlsConnector::from(config).connect(name, tcp),
        )
        .await?;
        self.wire = Wire::Tls(Box::new(tls));
        // Nothing read before the handshake may be trusted after it.
        self.start = 0;
        self.end = 0;
        self.lines = LineBuffer::new();
        Ok(())
    }
}

/// Sends the queued message in `message` to one server. `Err` means the
/// whole attempt failed (try another host, or later); `Ok` gives each
/// recipient's fate.
pub async fn deliver(attempt: &Attempt<'_>, message: Reader) -> Result<RecipientResults, Failure> {
    let tcp = within(
        OUTBOUND_CONNECT_TIMEOUT,
        "connect",
        TcpStream::connect(attempt.addr),
    )
    .await?;
    let _ = tcp.set_nodelay(true);
    let mut c = Connection {
        wire: Wire::Plain(tcp),
        lines: LineBuffer::new(),
        buf: Box::new([0; 4096]),
        start: 0,
        end: 0,
    };
    if let TlsPolicy::Implicit(config) = &attempt.tls {
        c.start_tls(config.clone(), attempt.host).await?;
    }
    let t = OUTBOUND_COMMAND_TIMEOUT;
    let greeting = c.reply(t).await?;
    if greeting.code != 220 {
        // Another host may do better, whatever the code.
        return Err(Failure::temporary(format!("greeting: {}", greeting.text())));
    }
    let mut ehlo = c.command(&format!("EHLO {}", attempt.helo), t).await?;
    if ehlo.code != 250 {
        let helo = c.command(&format!("HELO {}", attempt.helo), t).await?;
        if helo.code != 250 {
            return Err(Failure::temporary(format!("HELO: {}", helo.text())));
        }
        ehlo = helo;
    }
    let starttls = match &attempt.tls {
        TlsPolicy::Required(config) => {
            if !ehlo.has_keyword("STARTTLS") {
                return Err(Failure::temporary("STARTTLS required but not offered"));
            }
            Some(config.clone())
        }
        TlsPolicy::Opportunistic(config) if ehlo.has_keyword("STARTTLS") => Some(config.clone()),
        _ => None,
    };
    if let Some(config) = starttls {
        let reply = c.command("STARTTLS", t).await?;
        if reply.code != 220 {
            return Err(Failure::temporary(format!("STARTTLS: {}", reply.text())));
        }
        c.start_tls(config, attempt.host).await?;
        ehlo = c.command(&format!("EHLO {}", attempt.helo), t).await?;
        if ehlo.code != 250 {
            return Err(Failure::temporary(format!(
                "EHLO after STARTTLS: {}",
                ehlo.text()
            )));
        }
    }
    if let Some((user, password)) = attempt.login {
        log_in(&mut c, &ehlo, user, password).await?;
    }
    let size = if ehlo.has_keyword("SIZE") {
        format!(" SIZE={}", attempt.size)
    } else {
        String::new()
    };
    let mail = c
        .command(&format!("MAIL FROM:<{}>{size}", attempt.sender), t)
        .await?;
    if mail.code != 250 {
        return Err(Failure::from_reply("MAIL FROM", &mail));
    }
    let mut results: RecipientResults = Vec::with_capacity(attempt.recipients.len());
    for rcpt in attempt.recipients {
        let reply = c.command(&format!("RCPT TO:<{rcpt}>"), t).await?;
        results.push(if (250..=252).contains(&reply.code) {
            Ok(())
        } else {
            Err(Failure::from_reply("RCPT TO", &reply))
        });
    }
    if results.iter().all(Result::is_err) {
        let _ = c.command("QUIT", t).await;
        return Ok(results);
    }
    let data = c.command("DATA", t).await?;
    if data.code != 354 {
        return Err(Failure::from_reply("DATA", &data));
    }
    send_body(&mut c, message).await?;
    let done = c.reply(OUTBOUND_DATA_TIMEOUT).await?;
    let _ = c.command("QUIT", t).await;
    if done.code != 250 {
        let failure = Failure::from_reply("end of data", &done);
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(failure.clone());
        }
    }
    Ok(results)
}

async fn log_in(
    c: &mut Connection,
    ehlo: &Reply,
    user: &str,
    password: &str,
) -> Result<(), Failure> {
    let t = OUTBOUND_COMMAND_TIMEOUT;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let mechanisms = ehlo.auth_mechanisms();
    let reply = if mechanisms.iter().any(|m| m == "PLAIN") {
        let token = b64(format!("\0{user}\0{password}").as_bytes());
        c.command(&format!("AUTH PLAIN {token}"), t).await?
    } else if mechanisms.iter().any(|m| m == "LOGIN") {
        let first = c.command("AUTH LOGIN", t).await?;
        if first.code != 334 {
            return Err(Failure::temporary(format!("AUTH LOGIN: {}", first.text())));
        }
        let second = c.command(&b64(user.as_bytes()), t).await?;
        if second.code != 334 {
            return Err(Failure::temporary(format!("AUTH LOGIN: {}", second.text())));
        }
        c.command(&b64(password.as_bytes()), t).await?
    } else {
        return Err(Failure::temporary(
            "the smarthost offers no AUTH PLAIN or LOGIN",
        ));
    };
    if reply.code != 235 {
        // A wrong password is fixed in the config, then the queue retries.
        return Err(Failure::temporary(format!(
            "login refused: {}",
            reply.text()
        )));
    }
    Ok(())
}

/// Streams the message as the wire needs it, and the final `.`.
async fn send_body(c: &mut Connection, message: Reader) -> Result<(), Failure> {
    // Read on the blocking pool, at most one chunk ahead of the wire.
    let mut message = smol::Unblock::with_capacity(crate::limits::WRITE_CHUNK, message);
    let mut chunk = vec![0u8; crate::limits::WRITE_CHUNK];
    let mut out = Vec::with_capacity(chunk.len() * 2);
    let mut stuffer = WireWriter::default();
    let mut first = true;
    loop {
        let n = message
            .read(&mut chunk)
            .await
            .map_err(|e| Failure::temporary(format!("reading the queued message: {e}")))?;
        out.clear();
        let mut bytes = &chunk[..n];
        if std::mem::take(&mut first) {
            bytes = without_return_path(bytes);
        }
        if n == 0 {
            stuffer.finish(&mut out);
        } else {
            stuffer.feed(bytes, &mut out);
        }
        within(OUTBOUND_DATA_TIMEOUT, "sending data", c.write_all(&out)).await?;
        if n == 0 {
            return Ok(());
        }
    }
}

/// The stored message starts with the Return-Path: our trace headers add
/// for final delivery; it is not passed on (RFC 5321 §4.4: the last
/// server adds its own).
fn without_return_path(bytes: &[u8]) -> &[u8] {
    if bytes.len() >= 12 && bytes[..12].eq_ignore_ascii_case(b"Return-Path:") {
        if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            return &bytes[end + 1..];
        }
    }
    bytes
}

/// Longest line on the wire, CRLF excluded (RFC 5321 §4.5.3.1.6).
const MAX_WIRE_LINE: usize = 998;

/// The stored message as it goes on the wire, chunk by chunk: every line
/// ends in CRLF (a bare CR or LF becomes one, so the next server cannot
/// find a line end, or an end of data, where we saw none), NULs are
/// dropped, lines longer than 998 octets are broken (folded in the
/// header section), and a dot starting a line is doubled (RFC 5321 §4.5.2).
pub struct WireWriter {
    /// Octets of the current line already written.
    line_len: usize,
    /// A CR was seen; what follows decides nothing, it ends a line.
    pending_cr: bool,
    in_headers: bool,
}

impl Default for WireWriter {
    fn default() -> Self {
        WireWriter {
            line_len: 0,
            pending_cr: false,
            in_headers: true,
        }
    }
}

impl WireWriter {
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        for &b in bytes {
            if std::mem::take(&mut self.pending_cr) {
                self.end_line(out);
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.end_line(out),
                0 => {}
                _ => {
                    if self.line_len >= MAX_WIRE_LINE {
                        out.extend_from_slice(b"\r\n");
                        self.line_len = 0;
                        if self.in_headers {
                            out.push(b' ');
                            self.line_len = 1;
                        }
                    }
                    if self.line_len == 0 && b == b'.' {
                        out.push(b'.');
                        self.line_len += 1;
                    }
                    out.push(b);
                    self.line_len += 1;
                }
            }
        }
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.line_len == 0 {
            self.in_headers = false;
        }
        out.extend_from_slice(b"\r\n");
        self.line_len = 0;
    }

    /// Ends the message: a last line without a line end gets one, then `.`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) || self.line_len > 0 {
            self.end_line(out);
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// TLS settings for a smarthost: the built-in web roots plus `extra` PEM
/// certificates.
pub fn verified_config(
    extra: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// TLS settings that encrypt without checking who answers: MX hosts
/// rarely have certificates for the names mail is routed by.
pub fn opportunistic_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuff(parts: &[&str]) -> String {
        let mut s = WireWriter::default();
        let mut out = Vec::new();
        for p in parts {
            s.feed(p.as_bytes(), &mut out);
        }
        s.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dot_stuffing_across_chunks() {
        assert_eq!(stuff(&[".a\r\n", ".", "b\r\n"]), "..a\r\n..b\r\n.\r\n");
        assert_eq!(stuff(&["x\r\n.\r", "\n"]), "x\r\n..\r\n.\r\n");
        assert_eq!(stuff(&["no end"]), "no end\r\n.\r\n");
        assert_eq!(stuff(&["cr only\r"]), "cr only\r\n.\r\n");
        assert_eq!(stuff(&[]), ".\r\n");
    }

    #[test]
    fn every_line_end_is_crlf_and_nul_is_dropped() {
        // Each would let a server that reads line ends loosely see an end
        // of data in the middle of the message.
        assert_eq!(stuff(&["a\r.\rb"]), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuff(&["a\r.\r\nb"]), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuff(&["a\r\n\0.\r\nb"]), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuff(&["a\n.\nb\n"]), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuff(&["a\r", "\nb\r", "x"]), "a\r\nb\r\nx\r\n.\r\n");
        assert_eq!(stuff(&["a\r\r\n"]), "a\r\n\r\n.\r\n");
    }

    #[test]
    fn long_lines_are_broken_and_headers_folded() {
        let long = "x".repeat(2 * MAX_WIRE_LINE + 10);
        let text = format!("Subject: {long}\r\n\r\n.{long}\r\n");
        let wire = stuff(&[&text]);
        let lines: Vec<&str> = wire.split("\r\n").collect();
        assert!(lines.iter().all(|l| l.len() <= MAX_WIRE_LINE), "{lines:?}");
        // The header goes on in continuation lines; the body's dot is doubled.
        assert!(lines[1].starts_with(' ') && lines[2].starts_with(' '));
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("..x"));
        assert!(!lines[5].starts_with(' '));
        let rejoined: String = wire.chars().filter(|c| *c == 'x').collect();
        assert_eq!(rejoined.len(), 2 * long.len());
    }

    #[test]
    fn return_path_is_not_passed_on() {
        assert_eq!(
            without_return_path(b"Return-Path: <a@b>\r\nReceived: x\r\n"),
            b"Received: x\r\n"
        );
        assert_eq!(without_return_path(b"Received: x\r\n"), b"Received: x\r\n");
    }

    #[test]
    fn ehlo_keywords() {
        let r = Reply {
            code: 250,
            lines: vec![
                "250-mx.test".into(),
                "250-SIZE 1000".into(),
                "250-AUTH LOGIN plain".into(),
                "250 STARTTLS".into(),
            ],
        };
        assert!(r.has_keyword("starttls") && r.has_keyword("SIZE"));
        assert!(!r.has_keyword("mx.test"));
        assert_eq!(r.auth_mechanisms(), ["LOGIN", "PLAIN"]);
    }
}
