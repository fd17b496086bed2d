//! DKIM verification of any message against any key record: it never
//! panics, and how the message is cut into chunks never changes a result.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::dkim::{KeyLookup, Verifier};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    // The message, then NUL NUL, then the key record every lookup gives.
    let (message, record) = match rest.windows(2).position(|w| w == b"\0\0") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &b"v=DKIM1; p="[..]),
    };
    let record = String::from_utf8_lossy(record).into_owned();
    let verify = |size: usize| {
        let mut verifier = Verifier::new();
        for piece in message.chunks(size) {
            verifier.update(piece);
        }
        let hashed = verifier.finish();
        let _ = hashed.key_queries();
        hashed.results(|_| KeyLookup::Records(vec![record.clone()]), 1_700_000_000)
    };
    let whole = verify(message.len().max(1));
    assert_eq!(verify(usize::from(chunk).max(1)), whole);
});
