//! Header sections of any content through the From: scanner (strict, for
//! submission) and the To:/Cc: scanner (lenient, for the spam rule), and
//! the spam tagger that rewrites them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::policy::from_header::{FromHeaderScanner, RecipientHeaderScanner};
use postbox::spam::tag::Tagger;

fuzz_target!(|data: &[u8]| {
    let mut from = FromHeaderScanner::new();
    let mut recipients = RecipientHeaderScanner::recipients();
    let mut tagger = Tagger::new("[SPAM]");
    let mut tagged = Vec::new();
    for chunk in data.chunks(7) {
        from.feed(chunk);
        recipients.feed(chunk);
        tagger.feed(chunk, &mut tagged);
    }
    tagger.finish(&mut tagged);
    if let Ok(addresses) = from.addresses() {
        for a in addresses {
            assert!(!a.is_empty() && !a.contains(char::is_whitespace));
        }
    }
    for a in recipients.addresses_seen() {
        assert!(a.contains('@') && !a.contains(char::is_whitespace));
    }
    // Tagging only ever adds: the original bytes are all still there, in order.
    let mut rest = &tagged[..];
    for &b in data {
        let at = rest.iter().position(|&t| t == b).expect("byte lost by the tagger");
        rest = &rest[at + 1..];
    }
});
