//! Bytes of any shape, in pieces of any size, through the PROXY header
//! reader: no panics, a header is never longer than its bounds, nothing
//! past it is taken, and how the bytes were cut never changes the outcome.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::limits::{PROXY_V1_MAX_LINE, PROXY_V2_MAX_TLV_BYTES};
use postbox::wire::proxy::{Header, HeaderReader, Step};

#[derive(Debug, PartialEq)]
enum Outcome {
    Incomplete,
    /// The header and where it ended in the input.
    Done(Header, usize),
    Invalid(&'static str),
}

fn run(input: &[u8], cuts: &[u8]) -> Outcome {
    let mut reader = HeaderReader::new();
    let mut fed = 0;
    let mut cut = cuts.iter().cycle();
    while fed < input.len() {
        let size = cut.next().map_or(input.len(), |c| usize::from(*c) + 1);
        let piece = &input[fed..(fed + size).min(input.len())];
        match reader.feed(piece) {
            Step::Incomplete => fed += piece.len(),
            Step::Done(header, used) => {
                assert!(used >= 1 && used <= piece.len());
                return Outcome::Done(header, fed + used);
            }
            Step::Invalid(why) => return Outcome::Invalid(why),
        }
    }
    Outcome::Incomplete
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut_count, rest)) = data.split_first() else {
        return;
    };
    let (cuts, input) = rest.split_at((usize::from(cut_count) % 8).min(rest.len()));
    let whole = run(input, &[]);
    assert_eq!(whole, run(input, cuts));
    assert_eq!(whole, run(input, &[0]));
    if let Outcome::Done(header, end) = whole {
        match input[0] {
            b'P' => assert!(end <= PROXY_V1_MAX_LINE && input[..end].ends_with(b"\r\n")),
            _ => assert!(end <= 16 + 216 + PROXY_V2_MAX_TLV_BYTES),
        }
        // What follows the header is not the reader's: the same header
        // with other bytes after it reads the same.
        let mut other = input[..end].to_vec();
        other.extend_from_slice(b"EHLO x\r\n");
        assert_eq!(run(&other, &[]), Outcome::Done(header, end));
    }
});
