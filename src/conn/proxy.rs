//! Reading the PROXY header a proxy sends before its client's bytes
//! (`wire::proxy` parses it). The socket is peeked at and only the
//! header's bytes are taken, so what follows (a pipelined command, a TLS
//! hello) is the session's, read as if the client had connected itself.

use super::{Seat, Shutdown, Stream};
use crate::limits::PROXY_PEEK;
use crate::wire::proxy::{Header, HeaderReader, Step};
use smol::future;
use smol::io::AsyncReadExt;
use smol::Timer;
use std::time::{Duration, Instant};

/// Reads the header within `timeout` (idle meanwhile: the session may be
/// closed to make room, as one waiting for a command); says why not.
pub async fn read_header(
    stream: &mut Stream,
    timeout: Duration,
    shutdown: &Shutdown,
    seat: &Seat,
) -> Result<Header, String> {
    let Stream::Plain(tcp) = stream else {
        return Err("not a plain connection".into());
    };
    let read = async {
        let mut reader = HeaderReader::new();
        let mut buf = [0u8; PROXY_PEEK];
        loop {
            let seen = match tcp.peek(&mut buf).await {
                Ok(0) => return Err("closed before a PROXY header".to_string()),
                Ok(n) => n,
                Err(e) => return Err(format!("closed before a PROXY header: {e}")),
            };
            let (step, taken) = match reader.feed(&buf[..seen]) {
                Step::Incomplete => (None, seen),
                Step::Done(header, used) => (Some(header), used),
                Step::Invalid(why) => return Err(format!("invalid PROXY header ({why})")),
            };
            // These bytes are the header's: take them off the socket.
            tcp.read_exact(&mut buf[..taken])
                .await
                .map_err(|e| format!("closed during the PROXY header: {e}"))?;
            if let Some(header) = step {
                return Ok(header);
            }
        }
    };
    let timer = async {
        Timer::after(timeout).await;
        Err("no PROXY header in time".to_string())
    };
    let stop = async {
        shutdown.requested().await;
        Err("server shutting down".to_string())
    };
    seat.idle(Instant::now(), future::or(read, future::or(timer, stop)))
        .await
        .unwrap_or_else(|| Err("closed to make room".into()))
}
