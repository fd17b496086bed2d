//! A client connection, plain or TLS, and reads and writes with the
//! deadlines every session needs: a client that goes quiet, or stops
//! reading, is cut off, and shutdown interrupts a wait for the next command.
//! Also what every session holds of the runtime: its seat, the shutdown
//! event, and what its listener speaks.

pub mod per_client;
pub mod proxy;
pub mod read_ahead;
pub mod seat;
pub mod shutdown;

use crate::limits::TLS_CLOSE_TIMEOUT;
use crate::ops::stats::Refusal;
use crate::tls::Acceptor;
use futures_rustls::server::TlsStream;
pub use seat::Seat;
pub use shutdown::Shutdown;
use smol::future;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::TcpStream;
use smol::Timer;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// SMTP for incoming mail (port 25), STARTTLS offered.
    Smtp,
    /// Message submission with STARTTLS (587), login required.
    Submission,
    /// Message submission over implicit TLS (465), login required.
    Submissions,
    Pop3,
    /// POP3 over implicit TLS (995).
    Pop3s,
    /// Web pages over HTTPS (443).
    Web,
    /// Plain HTTP (80): redirects to HTTPS, and what must be plain.
    Http,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Smtp,
        Service::Submission,
        Service::Submissions,
        Service::Pop3,
        Service::Pop3s,
        Service::Web,
        Service::Http,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Submissions => "submissions",
            Service::Pop3 => "pop3",
            Service::Pop3s => "pop3s",
            Service::Web => "web",
            Service::Http => "http",
        }
    }

    pub fn implicit_tls(self) -> bool {
        matches!(self, Service::Submissions | Service::Pop3s | Service::Web)
    }

    pub fn is_submission(self) -> bool {
        matches!(self, Service::Submission | Service::Submissions)
    }
}

/// What a protocol says when it turns a connection away (one line each).
#[derive(Clone, Copy)]
pub struct Gate {
    /// The reply when all sessions are taken, and what it counts as.
    pub busy: (&'static [u8], Refusal<'static>),
    /// The reply when this address holds too many, and what it counts as.
    pub address: (&'static [u8], Refusal<'static>),
}

/// What a server-side TLS handshake needs: the certificate, how long the
/// client may take, and the shutdown that cuts it short.
pub struct Handshake<'a> {
    pub acceptor: Acceptor,
    pub timeout: Duration,
    pub shutdown: &'a Shutdown,
}

/// The byte stream a session talks over; STARTTLS/STLS turn `Plain` into
/// `Tls` in place (`ClientTls` when we are the client, handing mail on).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    ClientTls(Box<futures_rustls::client::TlsStream<TcpStream>>),
    /// One end of a socket pair inside the server: the maildrop handing
    /// local programs' mail to an SMTP session.
    Local(smol::net::unix::UnixStream),
    /// A handshake failed part-way; nothing more can be said.
    Broken,
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_) | Stream::ClientTls(_))
    }

    /// Runs the server side of a TLS handshake (bounded in time, cut short
    /// by shutdown, and, the client being silent meanwhile, to make room
    /// for others: nothing is in flight yet) and logs how it went for
    /// session `who`; `false` means the connection is over.
    pub async fn start_tls(
        &mut self,
        handshake: Handshake<'_>,
        seat: &Seat,
        who: fmt::Arguments<'_>,
    ) -> bool {
        let Stream::Plain(tcp) = std::mem::replace(self, Stream::Broken) else {
            return false;
        };
        let Handshake {
            acceptor,
            timeout,
            shutdown,
        } = handshake;
        // Boxed: the handshake's state (10 KB) lives only while it runs,
        // not in every session's future from its start to its end.
        let handshake = Box::pin(async { acceptor.accept(tcp).await.map(Some) });
        let timer = async {
            Timer::after(timeout).await;
            Ok(None)
        };
        let stop = async {
            shutdown.requested().await;
            Err(io::Error::other("server shutting down"))
        };
        let outcome = seat.idle(
            Instant::now(),
            future::or(handshake, future::or(timer, stop)),
        );
        match outcome.await.unwrap_or(Ok(None)) {
            Ok(Some(tls)) => {
                *self = Stream::Tls(Box::new(tls));
                log::info!("{who} TLS {}", self.tls_summary().unwrap_or_default());
                true
            }
            Ok(None) => {
                log::info!("{who} TLS handshake timed out");
                false
            }
            Err(e) => {
                log::info!("{who} TLS handshake failed: {e}");
                false
            }
        }
    }

    /// Ends a TLS session with close_notify (RFC 8446 §6.1), so the client
    /// can tell the end of the session from a cut connection; a plain one
    /// needs nothing. Errors are moot: the session is over either way.
    pub async fn close_tls(&mut self) {
        if let Stream::Tls(tls) = self {
            let close = async {
                let _ = tls.close().await;
            };
            future::or(close, async {
                Timer::after(TLS_CLOSE_TIMEOUT).await;
            })
            .await;
        }
    }

    /// The TLS protocol and cipher suite, for the log and Received: headers.
    fn tls_summary(&self) -> Option<String> {
        let Stream::Tls(tls) = self else { return None };
        let (_, conn) = tls.get_ref();
        let version = conn.protocol_version()?.as_str()?;
        let suite = conn.negotiated_cipher_suite()?.suite().as_str()?;
        Some(format!("{version} {suite}"))
    }
}

fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection unusable after a failed handshake",
    )
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Local(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Broken => Poll::Ready(Err(broken())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Local(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Local(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Local(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_close(cx),
            Stream::Broken => Poll::Ready(Ok(())),
        }
    }
}

pub enum ReadOutcome {
    Data(usize),
    Closed,
    TimedOut,
    Shutdown,
}

/// Reads what is available. With `shutdown`, a shutdown request ends the
/// wait; without it (a message in flight), only the timeout does.
pub async fn read(
    stream: &mut Stream,
    buf: &mut [u8],
    timeout: Duration,
    shutdown: Option<&Shutdown>,
) -> ReadOutcome {
    let read = async {
        match stream.read(buf).await {
            Ok(0) | Err(_) => ReadOutcome::Closed,
            Ok(n) => ReadOutcome::Data(n),
        }
    };
    let timer = async {
        Timer::after(timeout).await;
        ReadOutcome::TimedOut
    };
    let stop = async {
        match shutdown {
            Some(s) => {
                s.requested().await;
                ReadOutcome::Shutdown
            }
            None => future::pending().await,
        }
    };
    future::or(read, future::or(timer, stop)).await
}

/// Waits for the client's next command: `read`, with the session idle
/// meanwhile, so it may be closed early to make room (as if timed out).
/// `since`: when its last command ended, so a client dripping bytes is as
/// idle as a silent one.
pub async fn read_command(
    stream: &mut Stream,
    buf: &mut [u8],
    timeout: Duration,
    shutdown: &Shutdown,
    seat: &Seat,
    since: Instant,
) -> ReadOutcome {
    let read = read(stream, buf, timeout, Some(shutdown));
    seat.idle(since, read)
        .await
        .unwrap_or(ReadOutcome::TimedOut)
}

/// Writes everything, or fails if the client stops reading for `timeout`.
pub async fn write(stream: &mut Stream, bytes: &[u8], timeout: Duration) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let send = async {
        stream.write_all(bytes).await?;
        // TLS holds written records until flushed.
        stream.flush().await
    };
    future::or(send, async {
        Timer::after(timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client stopped reading",
        ))
    })
    .await
}
