//! Bytes of any shape through the mbox reader (no panics, whatever the
//! pieces), and any message through the mboxrd writer and back: the same
//! message (line ends CRLF, a last line given its end), however its lines
//! are cut into pieces.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::limits::MAILIO_PIECE;
use postbox::mailio::mbox::{Crlf, Event, Reader, Writer};

/// Lines of `input` in pieces cut by `cuts`, as `mailio::Pieces` cuts
/// them: a line's first piece holds its first MAILIO_PIECE bytes (only
/// there is `From ` looked for), the rest may come in any pieces.
fn pieces<'a>(input: &'a [u8], cuts: &'a [u8]) -> Vec<(&'a [u8], bool)> {
    let mut out = Vec::new();
    let mut cut = cuts.iter().cycle();
    for line in input.split_inclusive(|b| *b == b'\n') {
        let mut rest = line;
        let mut first = true;
        while !rest.is_empty() {
            let size = cut.next().map_or(rest.len(), |c| usize::from(*c) + 1);
            let size = if first { size.max(MAILIO_PIECE) } else { size };
            let (piece, after) = rest.split_at(size.min(rest.len()));
            out.push((piece, first));
            first = false;
            rest = after;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b) % 8);
    let rest = data.get(1..).unwrap_or_default();
    let (cuts, input) = rest.split_at(split.min(rest.len()));

    let mut reader = Reader::new();
    for (piece, starts_line) in pieces(input, cuts) {
        if reader.piece(piece, starts_line, &mut |_| {}).is_err() {
            break;
        }
    }
    reader.finish(&mut |_| {});

    // A stored message: CRLF line ends (bare CRs left out: a CR before
    // CRLF cannot survive LF line ends).
    let text: Vec<u8> = input.iter().copied().filter(|b| *b != b'\r').collect();
    let mut stored = Vec::new();
    let mut crlf = Crlf::default();
    for line in text.split_inclusive(|b| *b == b'\n') {
        crlf.piece(line, &mut |b| stored.extend_from_slice(b));
    }
    crlf.finish(&mut |b| stored.extend_from_slice(b));
    let mut mbox = Writer::from_line(Some("a@b"), 0).into_bytes();
    let mut writer = Writer::default();
    for (piece, starts_line) in pieces(&stored, cuts) {
        writer.piece(piece, starts_line, &mut |b| mbox.extend_from_slice(b));
    }
    writer.finish(&mut |b| mbox.extend_from_slice(b));
    let mut back = Vec::new();
    let mut messages = 0;
    let mut reader = Reader::new();
    let mut take = |event: Event<'_>| match event {
        Event::Start(_) => messages += 1,
        Event::Bytes(b) => back.extend_from_slice(b),
        Event::End => {}
    };
    for (piece, starts_line) in pieces(&mbox, cuts) {
        reader.piece(piece, starts_line, &mut take).unwrap();
    }
    reader.finish(&mut take);
    assert_eq!(messages, 1);
    assert_eq!(back, stored);
});
