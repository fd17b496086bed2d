//! A message on its way in: the DATA decoder's output with its header
//! section rewritten and scanned, and its size and line lengths held to
//! the limits.

use super::headers::{HeaderFilter, Missing};
use crate::limits::WRITE_CHUNK;
pub use crate::policy::facts::{DataFacts, Refused};
use crate::policy::from_header::{FromHeaderScanner, ReceivedCounter, RecipientHeaderScanner};
use crate::wire::dot::DataDecoder;

/// What the next input did to a message streaming in.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// All input used; more is needed.
    NeedInput,
    /// These rewritten bytes are ready to be stored.
    Store,
    /// The message was just refused: what was stored of it goes.
    Refused,
    /// The message ended.
    Ended,
}

/// One message on its way in: decoded, its header section rewritten and
/// scanned, its size and line lengths held to the limits, in chunks the
/// size of the caller's buffer.
pub struct DataStream {
    decoder: DataDecoder,
    filter: HeaderFilter,
    from: FromHeaderScanner,
    received: ReceivedCounter,
    recipients: Option<RecipientHeaderScanner>,
    /// Decoded bytes waiting in the chunk buffer.
    filled: usize,
    /// What is in `store` was handed out (or is another message's): it
    /// is emptied before more is gathered.
    handed_out: bool,
    bare_lf_at: Option<usize>,
    size: u64,
    max_size: u64,
    refused: Option<Refused>,
    finished: bool,
}

impl DataStream {
    /// `missing`: fields to add (members' mail); `authserv_id`: ours, for
    /// dropping Authentication-Results: that claim it; `scan_recipients`:
    /// read To:/Cc: for the spam rule; `max_size`: the limit on stored bytes.
    pub fn new(
        missing: Option<Missing>,
        authserv_id: &str,
        scan_recipients: bool,
        max_size: u64,
    ) -> Self {
        DataStream {
            decoder: DataDecoder::new(),
            filter: HeaderFilter::new(missing, authserv_id),
            from: FromHeaderScanner::new(),
            received: ReceivedCounter::for_fields(&["received"]),
            recipients: scan_recipients.then(RecipientHeaderScanner::recipients),
            filled: 0,
            handed_out: true,
            bare_lf_at: None,
            size: 0,
            max_size,
            refused: None,
            finished: false,
        }
    }

    /// Decodes `input` through `chunk` (at least two bytes); each time
    /// `chunk` is full the rewritten bytes gather in `store`, which is
    /// handed out ([`Output::Store`]) once another chunk might take it
    /// past [`WRITE_CHUNK`] or the message ends. So the disk gets writes
    /// of a good size while `chunk` stays small. Returns the input bytes
    /// used and what happened.
    pub fn feed(&mut self, input: &[u8], chunk: &mut [u8], store: &mut Vec<u8>) -> (usize, Output) {
        if self.finished {
            return (0, self.hand_out(store));
        }
        let mut used = 0;
        while used < input.len() {
            let p = self.decoder.feed(&input[used..], &mut chunk[self.filled..]);
            used += p.consumed;
            if self.bare_lf_at.is_none() {
                self.bare_lf_at = p.bare_lf_at.map(|at| self.filled + at);
            }
            self.filled += p.produced;
            if p.finished || chunk.len() - self.filled < 2 {
                self.finished = p.finished;
                if std::mem::take(&mut self.handed_out) {
                    store.clear();
                }
                let start = store.len();
                self.filter
                    .feed(&chunk[..self.filled], self.bare_lf_at.take(), store);
                if p.finished {
                    self.filter.finish(store);
                }
                self.filled = 0;
                let refused_now = self.judge(&store[start..]);
                if self.refused.is_some() {
                    // Read to its end, nothing of it kept.
                    store.clear();
                    match refused_now {
                        Some(refused) => return (used, refused),
                        None if self.finished => return (used, Output::Ended),
                        None => continue,
                    }
                }
                if self.finished {
                    return (used, self.hand_out(store));
                }
                if !store.is_empty() && store.len() + chunk.len() > WRITE_CHUNK {
                    self.handed_out = true;
                    return (used, Output::Store);
                }
            }
        }
        (used, Output::NeedInput)
    }

    /// What gathered in `store` goes to be stored, or, with nothing
    /// there, the message is over (refused ones gather nothing).
    fn hand_out(&mut self, store: &[u8]) -> Output {
        if self.handed_out || store.is_empty() {
            self.handed_out = true;
            return Output::Ended;
        }
        self.handed_out = true;
        Output::Store
    }

    /// Scans newly rewritten bytes and holds them to the limits: refused
    /// just now, or `None`.
    fn judge(&mut self, bytes: &[u8]) -> Option<Output> {
        self.from.feed(bytes);
        self.received.feed(bytes);
        if let Some(scan) = self.recipients.as_mut() {
            scan.feed(bytes);
        }
        if self.refused.is_some() {
            return None;
        }
        if self.size + bytes.len() as u64 > self.max_size {
            self.refused = Some(Refused::TooBig);
        } else if self.decoder.line_too_long() {
            self.refused = Some(Refused::LineTooLong);
        } else {
            self.size += bytes.len() as u64;
            return None;
        }
        Some(Output::Refused)
    }

    /// The terminating `<CRLF>.<CRLF>` was read.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// What the message showed.
    pub fn facts(&self) -> DataFacts {
        let listed = self
            .recipients
            .as_ref()
            .map(|s| s.named_seen())
            .unwrap_or_default();
        let from = self.from.named().unwrap_or_default();
        let names = from
            .into_iter()
            .chain(listed.iter().cloned())
            .filter(|m| !m.name.is_empty())
            .collect();
        DataFacts {
            refused: self.refused,
            malformed: self.filter.malformed(),
            from_header: self.from.addresses(),
            received: self.received.fields_seen(),
            listed: listed.into_iter().map(|m| m.address).collect(),
            names,
            size: self.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::READ_CHUNK;

    /// Feeds `input` a piece at a time through a chunk of `READ_CHUNK`
    /// bytes; every output but `NeedInput`, with the bytes of each `Store`.
    fn run(data: &mut DataStream, input: &[u8]) -> Vec<(Output, Vec<u8>)> {
        let (mut chunk, mut store) = (vec![0u8; READ_CHUNK], Vec::new());
        let (mut rest, mut outputs) = (input, Vec::new());
        loop {
            let piece = &rest[..rest.len().min(1000)];
            let (used, output) = data.feed(piece, &mut chunk, &mut store);
            rest = &rest[used..];
            match output {
                Output::NeedInput => {}
                Output::Ended => {
                    outputs.push((output, Vec::new()));
                    return outputs;
                }
                other => outputs.push((other, store.clone())),
            }
        }
    }

    fn message(lines: usize) -> Vec<u8> {
        let mut text = b"Subject: x\r\n\r\n".to_vec();
        for n in 0..lines {
            text.extend_from_slice(
                format!("line {n} of the message, with some text\r\n").as_bytes(),
            );
        }
        text
    }

    #[test]
    fn small_chunks_gather_into_writes_of_a_good_size() {
        let body = message(3000);
        let mut input = body.clone();
        input.extend_from_slice(b".\r\n");
        let mut data = DataStream::new(None, "mx.test", false, 1 << 20);
        let outputs = run(&mut data, &input);
        let (ended, stores) = outputs.split_last().unwrap();
        assert_eq!(ended.0, Output::Ended);
        assert!(stores.iter().all(|(o, _)| *o == Output::Store));
        let stored: Vec<u8> = stores.iter().flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(stored, body);
        let sizes: Vec<usize> = stores.iter().map(|(_, b)| b.len()).collect();
        let (_, whole) = sizes.split_last().unwrap();
        assert!(
            whole
                .iter()
                .all(|&n| n > WRITE_CHUNK - READ_CHUNK && n <= WRITE_CHUNK),
            "{sizes:?}"
        );
    }

    #[test]
    fn a_refused_message_is_read_to_its_end_and_nothing_more_is_stored() {
        let mut input = message(3000);
        input.extend_from_slice(b".\r\n");
        let mut data = DataStream::new(None, "mx.test", false, 40_000);
        let outputs = run(&mut data, &input);
        let kinds: Vec<&Output> = outputs.iter().map(|(o, _)| o).collect();
        assert_eq!(kinds, [&Output::Store, &Output::Refused, &Output::Ended]);
        assert_eq!(data.facts().refused, Some(Refused::TooBig));
    }
}
