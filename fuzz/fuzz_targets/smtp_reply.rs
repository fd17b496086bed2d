//! The reply parser on any bytes, in pieces of any size: it always makes
//! progress, and every reply it gives is bounded and well formed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::limits::{MAX_COMMAND_LINE, MAX_REPLY_LINES};
use postbox::wire::reply::ReplyParser;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, mut input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) % 64 + 1;
    let mut parser = ReplyParser::new();
    while !input.is_empty() {
        let n = chunk.min(input.len());
        let (used, reply) = parser.push(&input[..n]);
        assert!(used > 0 && used <= n);
        input = &input[used..];
        if let Some(Ok(reply)) = reply {
            assert!((200..600).contains(&reply.code));
            assert!(!reply.lines.is_empty() && reply.lines.len() <= MAX_REPLY_LINES);
            assert!(reply.lines.iter().all(|l| l.len() <= 3 * MAX_COMMAND_LINE));
            let _ = (reply.enhanced(), reply.text(), reply.auth_mechanisms());
        }
    }
});
