//! The async shell of a web session: the TLS handshake on the HTTPS
//! listener, then requests read with the core's deadline (idle meanwhile,
//! so the session may be closed to make room), each answered by the
//! router, kept alive up to [`MAX_HTTP_REQUESTS_PER_CONNECTION`].

use super::http::{Parsed, RequestReader, Response};
use super::router::Site;
use super::visit::{self, Handles};
use crate::config::Config;
use crate::conn::{self, Gate, Handshake, ReadOutcome, Seat, Service, Shutdown, Stream};
use crate::limits::{
    HTTP_LINGER, HTTP_LINGER_BYTES, HTTP_READ_CHUNK, HTTP_WRITE_TIMEOUT,
    MAX_HTTP_REQUESTS_PER_CONNECTION,
};
use crate::ops::stats::Refusal;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

/// What a web session uses.
pub struct Context {
    pub config: Rc<Config>,
    pub tls: Rc<crate::tls::Tls>,
    pub shutdown: Rc<Shutdown>,
    /// The HTTPS listener's port, where plain HTTP sends browsers.
    pub https_port: Option<u16>,
    /// What the async pages use, and the signed-in sessions.
    pub handles: Handles,
    /// The answers to ACME HTTP-01 challenges in progress.
    pub acme: Rc<crate::acme::Answers>,
}

/// What plain HTTP says when it turns a connection away (HTTPS clients
/// are just closed: they could not read it).
pub const GATE: Gate = Gate {
    busy: (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        Refusal::Http(503),
    ),
    address: (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        Refusal::Http(503),
    ),
};

/// Serves session `id`, admitted to `seat` on a `service` listener.
pub async fn serve_connection(
    shared: Rc<Context>,
    mut stream: Stream,
    peer: SocketAddr,
    service: Service,
    id: u64,
    seat: Seat,
) {
    let who = format!("{}#{id} {peer}", service.name());
    log::debug!("{who} connected");
    if service.implicit_tls() {
        let handshake = Handshake {
            acceptor: shared.tls.acceptor(),
            timeout: shared.config.limits.tls_handshake_timeout,
            shutdown: &shared.shutdown,
        };
        if !stream
            .start_tls(handshake, &seat, format_args!("{who}"))
            .await
        {
            return;
        }
    }
    let end = serve_requests(&shared, &mut stream, peer, &seat, &who).await;
    stream.close_tls().await;
    log::info!("{who} closed: {end}");
}

/// Answers requests until the connection ends; says why it ended.
async fn serve_requests(
    shared: &Context,
    stream: &mut Stream,
    peer: SocketAddr,
    seat: &Seat,
    who: &str,
) -> &'static str {
    let site = Site {
        config: &shared.config,
        https: stream.is_tls(),
        https_port: shared.https_port,
        acme: &shared.acme,
    };
    let mut reader = RequestReader::new(Instant::now());
    let mut buf = vec![0u8; HTTP_READ_CHUNK];
    let mut served = 0;
    loop {
        let (response, request) = match reader.poll() {
            Parsed::Incomplete => {
                let timeout = reader.deadline().saturating_duration_since(Instant::now());
                let shutdown = &shared.shutdown;
                let read =
                    conn::read_command(stream, &mut buf, timeout, shutdown, seat, reader.since());
                match read.await {
                    ReadOutcome::Data(n) => {
                        reader.receive(&buf[..n]);
                        continue;
                    }
                    ReadOutcome::Closed => return "client disconnected",
                    ReadOutcome::Shutdown => return "server shutting down",
                    ReadOutcome::TimedOut => match reader.timed_out() {
                        None => return "timed out",
                        Some(response) => (response, None),
                    },
                }
            }
            Parsed::Refused(response) => (response, None),
            Parsed::Request(request) => {
                let response = visit::respond(&shared.handles, &site, peer.ip(), &request).await;
                (response, Some(request))
            }
        };
        served += 1;
        let keep_alive = request.as_ref().is_some_and(|r| r.keep_alive)
            && !response.close
            && served < MAX_HTTP_REQUESTS_PER_CONNECTION
            && !shared.shutdown.is_requested();
        log_request(who, request.as_ref(), &response);
        let head = request.as_ref().is_some_and(|r| r.method == "HEAD");
        let wire = response.to_bytes(site.https, keep_alive, head, SystemTime::now());
        if conn::write(stream, &wire, HTTP_WRITE_TIMEOUT)
            .await
            .is_err()
        {
            return "write failed";
        }
        if !keep_alive {
            if request.is_none() {
                linger(stream, &mut buf).await;
            }
            return match response.status {
                408 => "timed out",
                status if request.is_none() => refusal(status),
                _ => "done",
            };
        }
        reader.next_request(Instant::now());
    }
}

/// Closes the sending side, then reads and drops what the client still
/// sends (the rest of a refused request), for a moment: so the client
/// reads the refusal instead of a reset.
async fn linger(stream: &mut Stream, buf: &mut [u8]) {
    use smol::io::AsyncWriteExt;
    let deadline = Instant::now() + HTTP_LINGER;
    let _ = smol::future::or(async { stream.close().await }, async {
        smol::Timer::at(deadline).await;
        Ok(())
    })
    .await;
    let mut dropped = 0;
    while dropped < HTTP_LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        match conn::read(stream, buf, left, None).await {
            ReadOutcome::Data(n) => dropped += n,
            _ => return,
        }
    }
}

fn log_request(who: &str, request: Option<&super::http::Request>, response: &Response) {
    match request {
        Some(r) => log::info!("{who} {} {} {}", r.method, r.path, response.status),
        None => log::info!("{who} refused with {}", response.status),
    }
}

/// Why a session ended after a request was refused, for the log.
fn refusal(status: u16) -> &'static str {
    match status {
        413 => "request body too large",
        414 | 431 => "request head too large",
        _ => "bad request",
    }
}
