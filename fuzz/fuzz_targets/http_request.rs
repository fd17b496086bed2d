//! Bytes of any shape, in pieces of any size, through the HTTP request
//! reader, the router, and the form and cookie readers: no panics, the
//! bounds hold, and how the bytes were cut never changes what is read or
//! answered.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::config::Config;
use postbox::limits::{HTTP_READ_CHUNK, MAX_COOKIES, MAX_FORM_FIELDS, MAX_HTTP_BODY, MAX_HTTP_HEAD};
use postbox::web::form::{cookie, cookies, Form};
use postbox::web::http::{Parsed, Request, RequestReader};
use postbox::web::router::{dispatch, Routed, Site};
use std::sync::OnceLock;
use std::time::{Instant, UNIX_EPOCH};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::from_toml("hostname = \"mx.test\"\n").unwrap())
}

/// Every outcome, as the wire would carry it, with `input` fed in pieces
/// whose sizes come from `cuts`.
fn run(input: &[u8], cuts: &[u8], https: bool) -> Vec<Vec<u8>> {
    let answers = postbox::acme::Answers::default();
    answers.publish("token", "token.thumbprint");
    let site = Site {
        config: config(),
        https,
        https_port: Some(2443),
        acme: &answers,
    };
    let mut reader = RequestReader::new(Instant::now());
    let mut outcomes = Vec::new();
    let mut rest = input;
    let mut cut = cuts.iter().cycle();
    loop {
        match reader.poll() {
            Parsed::Incomplete => {
                if rest.is_empty() {
                    return outcomes;
                }
                let size = cut.next().map_or(rest.len(), |c| usize::from(*c) + 1);
                let (piece, after) = rest.split_at(size.min(rest.len()).min(HTTP_READ_CHUNK));
                reader.receive(piece);
                rest = after;
                assert!(reader.buffered() <= MAX_HTTP_HEAD + MAX_HTTP_BODY + HTTP_READ_CHUNK);
            }
            Parsed::Refused(response) => {
                assert!(response.close);
                outcomes.push(response.to_bytes(https, false, false, UNIX_EPOCH));
                return outcomes;
            }
            Parsed::Request(request) => {
                assert!(request.body.len() <= MAX_HTTP_BODY);
                let response = match dispatch(&site, &request) {
                    Routed::Answer(response) => response,
                    Routed::Page(..) => {
                        outcomes.push(fields(&request));
                        continue;
                    }
                };
                let wire = response.to_bytes(https, request.keep_alive, false, UNIX_EPOCH);
                // A client's bytes never start a header line of their own.
                let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                let head = &wire[..head_end];
                assert_eq!(
                    head.split(|b| *b == b'\n').filter(|l| l.starts_with(b"Location")).count(),
                    response.fields.iter().filter(|(n, _)| *n == "Location").count()
                );
                outcomes.push(format!("{request:?}").into_bytes());
                outcomes.push(wire);
            }
        }
    }
}

/// What the form and cookie readers make of a request for an async page.
fn fields(request: &Request) -> Vec<u8> {
    let form = Form::parse(&request.body);
    if let Some(form) = &form {
        assert!(form.len() <= MAX_FORM_FIELDS);
    }
    let mut seen = format!("{form:?}");
    for (_, value) in request.headers.iter().filter(|(n, _)| n == "cookie") {
        let list: Vec<_> = cookies(value).collect();
        assert!(list.len() <= MAX_COOKIES);
        for (n, v) in &list {
            assert!(!n.contains(';') && !v.contains(';'));
        }
        seen.push_str(&format!("{list:?}"));
    }
    seen.push_str(&format!("{:?}", cookie(request, "__Host-postbox_session")));
    seen.into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let cut_count = usize::from(flags >> 1) % 8;
    let (cuts, input) = rest.split_at(cut_count.min(rest.len()));
    let https = flags & 1 != 0;
    let whole = run(input, &[], https);
    let pieces = run(input, cuts, https);
    let bytewise = run(input, &[0], https);
    assert_eq!(whole, pieces);
    assert_eq!(whole, bytewise);
});
