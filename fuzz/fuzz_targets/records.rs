//! The users file and queue envelopes: damaged records are refused, and
//! any payload that passes the checksum decodes or fails cleanly.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::queue::store as queue;
use postbox::store::{record, users};

fuzz_target!(|data: &[u8]| {
    let _ = users::decode(data);
    let framed = record::frame(users::KIND, users::VERSION, data);
    if let Ok(list) = users::decode(&framed) {
        // What decodes must encode back to a record that decodes the same.
        let again = record::encode(users::KIND, users::VERSION, &list);
        assert_eq!(users::decode(&again).unwrap(), list);
    }
    let _ = queue::decode(data);
    let framed = record::frame(queue::KIND, queue::VERSION, data);
    if let Ok(envelope) = queue::decode(&framed) {
        let again = record::encode(queue::KIND, queue::VERSION, &envelope);
        assert_eq!(queue::decode(&again).unwrap(), envelope);
    }
});
