//! The DATA decoder on any bytes, in chunks of any size: output never holds
//! a bare CR-less LF, and a finished message always ended in CRLF.CRLF.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::wire::dot::DataDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let chunk = chunk as usize % 64 + 1;
    let mut decoder = DataDecoder::new();
    let mut out = vec![0u8; 2 * input.len() + 8];
    let mut produced = 0;
    let mut consumed = 0;
    let mut finished = false;
    while consumed < input.len() && !finished {
        let end = (consumed + chunk).min(input.len());
        let p = decoder.feed(&input[consumed..end], &mut out[produced..]);
        assert!(p.consumed <= end - consumed);
        consumed += p.consumed;
        produced += p.produced;
        finished = p.finished;
        if p.consumed == 0 && !p.finished {
            break;
        }
    }
    let body = &out[..produced];
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && body[i - 1] == b'\r', "bare LF in the output");
        }
    }
    if finished {
        assert!(input[..consumed].ends_with(b"\r\n.\r\n") || &input[..consumed] == b".\r\n");
    }
});
