//! Header sections of any content through the submission From: scanner.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::smtp::from_header::FromHeaderScanner;

fuzz_target!(|data: &[u8]| {
    let mut scanner = FromHeaderScanner::new();
    for chunk in data.chunks(7) {
        scanner.feed(chunk);
    }
    if let Ok(addresses) = scanner.addresses() {
        for a in addresses {
            assert!(!a.is_empty() && !a.contains(char::is_whitespace));
        }
    }
});
