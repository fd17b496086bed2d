//! Socket reads and writes with the deadlines every session needs: a
//! client that goes quiet, or stops reading, is cut off, and shutdown
//! interrupts a wait for the next command.

use crate::serve::Shutdown;
use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::Timer;
use std::io;
use std::time::Duration;

pub enum ReadOutcome {
    Data(usize),
    Closed,
    TimedOut,
    Shutdown,
}

/// Reads what is available. With `shutdown`, a shutdown request ends the
/// wait; without it (a message in flight), only the timeout does.
pub async fn read(
    stream: &mut TcpStream,
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

/// Writes everything, or fails if the client stops reading for `timeout`.
pub async fn write(stream: &mut TcpStream, bytes: &[u8], timeout: Duration) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    future::or(stream.write_all(bytes), async {
        Timer::after(timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client stopped reading",
        ))
    })
    .await
}
