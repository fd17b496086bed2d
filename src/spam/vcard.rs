//! Address book entries as vCards (RFC 6350, version 4.0): one card per
//! entry with `FN` (the display name, or the address when there is none)
//! and `EMAIL`, lines ended by CRLF, `\`, `,`, `;` and line breaks
//! escaped (§3.4), and lines over 75 octets folded (§3.2) between
//! characters, never inside one.

use super::book::Entry;

/// The longest line before folding, in octets, CRLF not counted.
const LINE: usize = 75;

/// Every entry's card, one after another.
pub fn cards<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> String {
    let mut out = String::new();
    for entry in entries {
        let name = match entry.name.as_str() {
            "" => entry.address.as_str(),
            name => name,
        };
        out.push_str("BEGIN:VCARD\r\nVERSION:4.0\r\n");
        folded(&mut out, &format!("FN:{}", escape(name)));
        folded(&mut out, &format!("EMAIL:{}", escape(&entry.address)));
        out.push_str("END:VCARD\r\n");
    }
    out
}

/// A text value with its special characters escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            _ => out.push(c),
        }
    }
    out
}

/// Appends `line` and CRLF, folded: a continuation starts with one
/// space, which counts towards its 75 octets.
fn folded(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > LINE {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(address: &str, name: &str) -> Entry {
        Entry {
            hash: 0,
            address: address.into(),
            name: name.into(),
            added: true,
        }
    }

    #[test]
    fn writes_escaped_folded_cards() {
        let long = "é".repeat(50);
        let entries = [
            entry("bob@example.org", "Smith, Bob; \\jr"),
            entry("anon@example.org", ""),
            entry("long@example.org", &long),
        ];
        let text = cards(&entries);
        assert!(text.starts_with(
            "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Smith\\, Bob\\; \\\\jr\r\nEMAIL:bob@example.org\r\nEND:VCARD\r\n"
        ));
        assert!(text.contains("FN:anon@example.org\r\n"));
        for line in text.split("\r\n") {
            assert!(line.len() <= LINE, "{line:?}");
            assert!(!line.contains('\n') && !line.contains('\r'));
        }
        let unfolded = text.replace("\r\n ", "");
        assert!(unfolded.contains(&format!("FN:{long}\r\n")));
        assert!(text.ends_with("END:VCARD\r\n"));
    }
}
