//! Bytes of any shape, in pieces of any size, through the ACME client's
//! response reader and then its object readers: no panics, the size
//! bound holds, and how the bytes were cut never changes what is read.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::acme::http::{parse_response, Response};
use postbox::acme::messages::{self, Authorization, Directory, Order};
use postbox::limits::ACME_MAX_RESPONSE;

/// What the reader makes of `input` arriving in pieces cut by `cuts`,
/// the server closing after the last.
fn read(input: &[u8], cuts: &[u8]) -> Result<Option<Response>, String> {
    let mut received = Vec::new();
    let mut rest = input;
    let mut cut = cuts.iter().cycle();
    while !rest.is_empty() {
        let size = cut.next().map_or(rest.len(), |c| usize::from(*c) + 1);
        let (piece, after) = rest.split_at(size.min(rest.len()));
        received.extend_from_slice(piece);
        rest = after;
        match parse_response(&received, false, false) {
            Ok(None) => {}
            done => return done,
        }
    }
    parse_response(&received, true, false)
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b) % 8);
    let rest = data.get(1..).unwrap_or_default();
    let (cuts, input) = rest.split_at(split.min(rest.len()));
    let whole = parse_response(input, true, false);
    let pieces = read(input, cuts);
    // Read whole or as it comes, a response is the same (one may fail
    // where the other finished: input past the bound after a complete
    // response, or bytes after it that do not parse).
    match (&whole, &pieces) {
        (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b),
        (Err(_), _) | (_, Err(_)) => {}
        (a, b) => panic!("{a:?} / {b:?}"),
    }
    if let Ok(Some(response)) = whole {
        assert!(response.body.len() <= ACME_MAX_RESPONSE);
        let _ = messages::parse::<Directory>(&response.body, "directory");
        let _ = messages::parse::<Order>(&response.body, "order");
        let _ = messages::parse::<Authorization>(&response.body, "authorization");
        let _ = messages::problem(&response.body);
        let _ = messages::chain(&response.body);
    }
});
