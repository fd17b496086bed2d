//! What a client has read from the server and its core has not yet used:
//! a core takes input a piece at a time (up to the end of a reply), so
//! the rest waits here for the next turn, and a new read (with its
//! deadline) happens only once all is used.

use super::Stream;
use smol::io::AsyncReadExt;
use smol::Timer;
use std::io;
use std::time::Instant;

pub struct ReadAhead {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// What [`ReadAhead::next`] found.
pub enum Read<'a> {
    Bytes(&'a [u8]),
    /// The server closed the connection.
    Closed,
    /// Nothing came before the deadline.
    TimedOut,
}

impl ReadAhead {
    pub fn new(size: usize) -> ReadAhead {
        ReadAhead {
            buf: vec![0; size],
            start: 0,
            end: 0,
        }
    }

    /// What is left of the last read, or a new read that waits until
    /// `deadline`. Say how much was used with [`ReadAhead::used`].
    pub async fn next(&mut self, stream: &mut Stream, deadline: Instant) -> io::Result<Read<'_>> {
        if self.start == self.end {
            let read = async { stream.read(&mut self.buf).await.map(Some) };
            let timer = async {
                Timer::at(deadline).await;
                Ok(None)
            };
            match smol::future::or(read, timer).await? {
                None => return Ok(Read::TimedOut),
                Some(0) => return Ok(Read::Closed),
                Some(n) => (self.start, self.end) = (0, n),
            }
        }
        Ok(Read::Bytes(&self.buf[self.start..self.end]))
    }

    pub fn used(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Forgets what was read: nothing read before a TLS handshake may be
    /// trusted after it.
    pub fn clear(&mut self) {
        (self.start, self.end) = (0, 0);
    }
}
