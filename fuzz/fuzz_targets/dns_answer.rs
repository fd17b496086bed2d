//! DNS answers of any content: parsed or refused, never a panic or a loop.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::dns::message::parse_answer;

fuzz_target!(|data: &[u8]| {
    let id = data.first().map_or(0, |&b| u16::from(b));
    let _ = parse_answer(id, data);
    // With the id right, the rest of the parser is reached more often.
    if data.len() >= 2 {
        let _ = parse_answer(u16::from_be_bytes([data[0], data[1]]), data);
    }
});
