//! The async shell of the SMTP client that hands queued mail to the next
//! server: it connects, moves bytes between the socket and the sans-IO
//! [`Session`], starts TLS and streams the message from flash when told.
//! Every wait is bounded in time.

use super::session::{Plan, Session, Step};
use super::tls::TlsPolicy;
use super::{Failure, RecipientResults};
use crate::conn::read_ahead::{Read, ReadAhead};
use crate::conn::Stream;
use crate::limits::{
    OUTBOUND_COMMAND_TIMEOUT, OUTBOUND_CONNECT_TIMEOUT, OUTBOUND_DATA_TIMEOUT,
    OUTBOUND_READ_BUFFER, TLS_HANDSHAKE_TIMEOUT, WRITE_CHUNK,
};
use crate::wire::dot::Stuffer;
use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::Timer;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
    /// Of the message as sent, `headers` included.
    pub size: u64,
    /// Header fields sent ahead of the stored message (its DKIM signatures).
    pub headers: &'a str,
}

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

async fn write_all(stream: &mut Stream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    // TLS holds written records until flushed.
    stream.flush().await
}

/// Sends the queued message in `message` to one server. `Err` means the
/// whole attempt failed (try another host, or later); `Ok` gives each
/// recipient's fate.
pub async fn deliver(
    attempt: &Attempt<'_>,
    message: impl io::Read + Send + 'static,
) -> Result<RecipientResults, Failure> {
    let tcp = within(
        OUTBOUND_CONNECT_TIMEOUT,
        "connect",
        TcpStream::connect(attempt.addr),
    )
    .await?;
    let _ = tcp.set_nodelay(true);
    let plan = Plan {
        helo: attempt.helo,
        tls: attempt.tls.mode(),
        login: attempt.login,
        sender: attempt.sender,
        recipients: attempt.recipients,
        size: attempt.size,
    };
    let mut shell = Shell {
        stream: Stream::Plain(tcp),
        input: ReadAhead::new(OUTBOUND_READ_BUFFER),
    };
    shell
        .converse(&mut Session::new(&plan), attempt, message)
        .await
}

/// The connection and what was read from it but not yet used.
struct Shell {
    stream: Stream,
    input: ReadAhead,
}

impl Shell {
    /// Carries out the session's steps until it is done.
    async fn converse(
        &mut self,
        session: &mut Session<'_>,
        attempt: &Attempt<'_>,
        message: impl io::Read + Send + 'static,
    ) -> Result<RecipientResults, Failure> {
        let mut message = Some(message);
        let mut results = RecipientResults::with_capacity(attempt.recipients.len());
        loop {
            match session.poll(Instant::now()) {
                Step::Send(bytes) => {
                    let sent = write_all(&mut self.stream, &bytes);
                    if let Err(f) = within(OUTBOUND_COMMAND_TIMEOUT, "sending", sent).await {
                        session.failed(f);
                    }
                }
                Step::StartTls => match self.start_tls(attempt).await {
                    Ok(()) => session.tls_started(),
                    Err(f) => session.failed(f),
                },
                Step::SendBody => {
                    let body = message.take().expect("the body is asked for once");
                    match send_body(&mut self.stream, attempt.headers, body).await {
                        Ok(()) => session.body_sent(),
                        Err(f) => session.failed(f),
                    }
                }
                Step::Receive(deadline) => self.receive(session, deadline).await,
                Step::Recipient(_, result) => results.push(result),
                Step::Done(outcome) => return outcome.map(|()| results),
            }
        }
    }

    /// Hands the session what is left of the last read, or reads more
    /// (until `deadline`: then the session notices the time).
    async fn receive(&mut self, session: &mut Session<'_>, deadline: Instant) {
        match self.input.next(&mut self.stream, deadline).await {
            Ok(Read::Bytes(bytes)) => {
                let used = session.receive(bytes, Instant::now());
                self.input.used(used);
            }
            Ok(Read::Closed) => {
                session.failed(Failure::temporary("connection closed by the server"))
            }
            Ok(Read::TimedOut) => {}
            Err(e) => session.failed(Failure::temporary(format!("reading reply: {e}"))),
        }
    }

    async fn start_tls(&mut self, attempt: &Attempt<'_>) -> Result<(), Failure> {
        let host = attempt.host;
        let config = attempt
            .tls
            .config()
            .ok_or_else(|| Failure::temporary("TLS is off"))?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| Failure::temporary(format!("{host:?} is not a valid TLS server name")))?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Broken) else {
            return Err(Failure::temporary("TLS already started"));
        };
        let tls = within(
            TLS_HANDSHAKE_TIMEOUT,
            "TLS handshake",
            TlsConnector::from(config.clone()).connect(name, tcp),
        )
        .await?;
        self.stream = Stream::ClientTls(Box::new(tls));
        self.input.clear();
        Ok(())
    }
}

/// Streams `headers`, then the message, as the wire needs them, and the
/// final `.`.
async fn send_body(
    stream: &mut Stream,
    headers: &str,
    message: impl io::Read + Send + 'static,
) -> Result<(), Failure> {
    // Read on the blocking pool, at most one chunk ahead of the wire.
    let mut message = smol::Unblock::with_capacity(WRITE_CHUNK, message);
    let mut chunk = vec![0u8; WRITE_CHUNK];
    let mut out = Vec::with_capacity(chunk.len() * 2);
    let mut stuffer = Stuffer::strict();
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
            stuffer.feed(headers.as_bytes(), &mut out);
        }
        if n == 0 {
            out.extend_from_slice(stuffer.finish().as_bytes());
        } else {
            stuffer.feed(bytes, &mut out);
        }
        within(
            OUTBOUND_DATA_TIMEOUT,
            "sending data",
            write_all(stream, &out),
        )
        .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_path_is_not_passed_on() {
        assert_eq!(
            without_return_path(b"Return-Path: <a@b>\r\nReceived: x\r\n"),
            b"Received: x\r\n"
        );
        assert_eq!(without_return_path(b"Received: x\r\n"), b"Received: x\r\n");
    }
    /// Runs one attempt against a server that sends `replies` at once, a
    /// byte per write, before it is asked; gives what the server heard.
    fn converse_with(
        replies: &'static str,
        headers: &str,
        stored: &[u8],
    ) -> (String, Result<RecipientResults, Failure>) {
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = async {
                let (mut peer, _) = listener.accept().await.unwrap();
                for b in replies.bytes() {
                    peer.write_all(&[b]).await.unwrap();
                }
                let mut heard = String::new();
                peer.read_to_string(&mut heard).await.unwrap();
                heard
            };
            let recipients = ["c@d.test".to_string(), "e@f.test".to_string()];
            let attempt = Attempt {
                host: "mx",
                addr,
                helo: "box.test",
                tls: TlsPolicy::Off,
                login: None,
                sender: "a@b.test",
                recipients: &recipients,
                size: 7,
                headers,
            };
            let message = io::Cursor::new(stored.to_vec());
            future::zip(server, deliver(&attempt, message)).await
        })
    }

    /// A server that answers everything at once, a byte per write, before
    /// it is asked: each reply is taken for the command it answers.
    #[test]
    fn replies_sent_ahead_and_in_single_bytes() {
        let replies = "220 mx\r\n250-mx\r\n250 SIZE 9\r\n250 ok\r\n250 ok\r\n\
                       550 5.1.1 no\r\n354 go\r\n250 queued\r\n221 bye\r\n";
        let stored = b"Return-Path: <a@b.test>\r\nS: x\r\n\r\n.dot";
        let (heard, results) = converse_with(replies, "", stored);
        assert_eq!(
            heard,
            "EHLO box.test\r\nMAIL FROM:<a@b.test> SIZE=7\r\nRCPT TO:<c@d.test>\r\n\
             RCPT TO:<e@f.test>\r\nDATA\r\nS: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n"
        );
        let failure = Failure {
            permanent: true,
            text: "RCPT TO: 550 5.1.1 no".into(),
        };
        assert_eq!(results, Ok(vec![Ok(()), Err(failure)]));
    }

    /// Signatures kept in the envelope go first, where the dropped
    /// Return-Path: was; an empty stored message still gets them.
    #[test]
    fn headers_kept_apart_are_sent_ahead_of_the_message() {
        let replies = "220 mx\r\n250 mx\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n\
                       250 queued\r\n221 bye\r\n";
        let signature = "DKIM-Signature: v=1; d=b.test;\r\n\tb=abc\r\n";
        let stored = b"Return-Path: <a@b.test>\r\nReceived: x\r\nS: x\r\n\r\n.dot\r\n";
        let (heard, results) = converse_with(replies, signature, stored);
        let data = heard.split_once("DATA\r\n").unwrap().1;
        assert_eq!(
            data,
            "DKIM-Signature: v=1; d=b.test;\r\n\tb=abc\r\nReceived: x\r\nS: x\r\n\r\n\
             ..dot\r\n.\r\nQUIT\r\n"
        );
        assert_eq!(results, Ok(vec![Ok(()), Ok(())]));
        let (heard, _) = converse_with(replies, signature, b"");
        assert!(heard.contains("DATA\r\nDKIM-Signature: v=1; d=b.test;\r\n\tb=abc\r\n.\r\n"));
    }
}
