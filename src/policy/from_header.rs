//! Finds the addresses in chosen header fields as the body streams past:
//! From: so submission can refuse mail that claims another sender
//! (RFC 6409 §6.1 lets a submission server check what it is given), and
//! To:/Cc: for the spam rule on many unknown recipients.

pub use super::facts::FromProblem;
use crate::limits::{MAX_FROM_HEADER, MAX_RECIPIENT_HEADERS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    LineStart,
    /// A CR at the start of a line: the header section is ending.
    BlankLine,
    Name,
    Value,
    Done,
}

/// Captures the values of the fields named in `fields` (lower case), up
/// to `N` bytes in all.
pub struct HeaderScanner<const N: usize> {
    fields_wanted: &'static [&'static str],
    position: Position,
    name: heapless::Vec<u8, 16>,
    name_overflow: bool,
    capturing: bool,
    fields: u32,
    value: heapless::Vec<u8, N>,
    overflow: bool,
}

/// The From: field of a message.
pub type FromHeaderScanner = HeaderScanner<MAX_FROM_HEADER>;

/// Counts Received: fields (values are not kept).
pub type ReceivedCounter = HeaderScanner<0>;

/// The To: and Cc: fields of a message.
pub type RecipientHeaderScanner = HeaderScanner<MAX_RECIPIENT_HEADERS>;

impl Default for FromHeaderScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl FromHeaderScanner {
    pub fn new() -> Self {
        HeaderScanner::for_fields(&["from"])
    }
}

impl RecipientHeaderScanner {
    pub fn recipients() -> Self {
        HeaderScanner::for_fields(&["to", "cc"])
    }
}

impl<const N: usize> HeaderScanner<N> {
    pub fn for_fields(fields_wanted: &'static [&'static str]) -> Self {
        HeaderScanner {
            fields_wanted,
            position: Position::LineStart,
            name: heapless::Vec::new(),
            name_overflow: false,
            capturing: false,
            fields: 0,
            value: heapless::Vec::new(),
            overflow: false,
        }
    }

    /// Takes the next bytes of the (unstuffed, CRLF) message.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match self.position {
                Position::Done => return,
                Position::LineStart => match b {
                    b'\r' => self.position = Position::BlankLine,
                    b'\n' => self.position = Position::Done,
                    b' ' | b'\t' => {
                        // A folded continuation of the field before.
                        self.position = Position::Value;
                        self.capture(b' ');
                    }
                    _ => {
                        self.name.clear();
                        self.name_overflow = false;
                        self.capturing = false;
                        self.position = Position::Name;
                        self.name_byte(b);
                    }
                },
                Position::BlankLine => self.position = Position::Done,
                Position::Name => match b {
                    b':' => {
                        let name = self.name.trim_ascii_end();
                        self.capturing = !self.name_overflow
                            && self
                                .fields_wanted
                                .iter()
                                .any(|f| name.eq_ignore_ascii_case(f.as_bytes()));
                        if self.capturing {
                            if self.fields > 0 {
                                self.capture(b',');
                            }
                            self.fields += 1;
                        }
                        self.position = Position::Value;
                    }
                    // Not a header line: the header section is over.
                    b'\r' | b'\n' => self.position = Position::Done,
                    _ => self.name_byte(b),
                },
                Position::Value => match b {
                    b'\r' => {}
                    b'\n' => self.position = Position::LineStart,
                    _ => self.capture(b),
                },
            }
        }
    }

    fn name_byte(&mut self, b: u8) {
        if self.name.push(b).is_err() {
            self.name_overflow = true;
        }
    }

    fn capture(&mut self, b: u8) {
        if self.capturing && self.value.push(b).is_err() {
            self.overflow = true;
        }
    }

    /// How many of the wanted fields the header section has.
    pub fn fields_seen(&self) -> u32 {
        self.fields
    }

    /// The addresses named in From: (empty when there is no From: field).
    pub fn addresses(&self) -> Result<Vec<String>, FromProblem> {
        Ok(self.named()?.into_iter().map(|m| m.address).collect())
    }

    /// [`HeaderScanner::addresses`] with each one's display name.
    pub fn named(&self) -> Result<Vec<Mailbox>, FromProblem> {
        if self.overflow {
            return Err(FromProblem::TooLong);
        }
        if self.fields == 0 {
            return Ok(Vec::new());
        }
        let value = String::from_utf8_lossy(&self.value);
        let found = mailboxes(&value, false).ok_or(FromProblem::Unparsable)?;
        if found.is_empty() {
            return Err(FromProblem::Unparsable);
        }
        Ok(found)
    }

    /// Every address that can be made out, read leniently (groups,
    /// unbalanced quotes); when the fields were longer than `N`, those in
    /// the part kept. For counting recipients, not for trusting senders.
    pub fn addresses_seen(&self) -> Vec<String> {
        self.named_seen().into_iter().map(|m| m.address).collect()
    }

    /// [`HeaderScanner::addresses_seen`] with each one's display name.
    pub fn named_seen(&self) -> Vec<Mailbox> {
        let mut value = &self.value[..];
        if self.overflow {
            // The last entry was cut: keep only whole ones.
            let end = value.iter().rposition(|&b| b == b',').unwrap_or(0);
            value = &value[..end];
        }
        mailboxes(&String::from_utf8_lossy(value), true).unwrap_or_default()
    }
}

/// An address of a header field, and the display name before its `<...>`
/// (quotes taken off, white space made single; empty when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub address: String,
    pub name: String,
}

/// What one mailbox of a list has gathered so far: the text outside
/// `<...>` (quotes and comments left out), the `<...>` part, and the
/// display name (quoted text kept).
#[derive(Default)]
struct Parts {
    bare: String,
    angle: Option<String>,
    display: String,
}

impl Parts {
    fn clear(&mut self) {
        self.bare.clear();
        self.angle = None;
        self.display.clear();
    }
}

/// Ends one mailbox of a list: its address (`angle`, the `<...>` part,
/// or else the `bare` text) goes into `found`. `false`: strict reading
/// refuses the list.
fn end_mailbox(parts: &mut Parts, found: &mut Vec<Mailbox>, quoted: bool, lenient: bool) -> bool {
    let name = match parts.angle {
        Some(_) => parts
            .display
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    };
    let bare = &mut parts.bare;
    let address = match parts.angle.take() {
        Some(a) => {
            if !lenient && bare.contains('@') {
                parts.clear();
                return false;
            }
            a
        }
        None if quoted && !lenient => {
            parts.clear();
            return false;
        }
        None => bare.trim().to_string(),
    };
    parts.clear();
    if lenient {
        let address = address.trim();
        if address.contains('@') && !address.chars().any(char::is_whitespace) {
            found.push(Mailbox {
                address: address.to_string(),
                name,
            });
        }
        return true;
    }
    if address.contains(':') || address.contains(';') {
        return false; // group syntax or a source route: not a plain sender
    }
    if !address.is_empty() {
        found.push(Mailbox { address, name });
    }
    true
}

/// The addr-specs of an RFC 5322 mailbox-list: `<...>` when present,
/// otherwise the bare address; comments are skipped, display names kept
/// beside them. `lenient` reads address lists with groups
/// (`friends: a@x, b@y;`) and keeps only what looks like an address
/// instead of refusing the lot. Strict reading refuses whatever parsers
/// could read another way: two `<...>` in one mailbox, text after one,
/// an `@` in a display name (`bob@x <alice@x>` is bob for some), quotes
/// in a bare address.
fn mailboxes(value: &str, lenient: bool) -> Option<Vec<Mailbox>> {
    let mut found = Vec::new();
    let mut parts = Parts::default();
    let (mut in_quote, mut comment, mut escaped, mut open) = (false, 0u32, false, false);
    // Strict reading: a `<...>` was closed / a quote was seen in this mailbox.
    let (mut closed, mut quoted) = (false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if in_quote {
                parts.display.push(c);
            }
            continue;
        }
        let outside = !in_quote && comment == 0;
        if !lenient && outside && closed && !c.is_whitespace() && c != ',' && c != '(' {
            return None;
        }
        match c {
            '\\' if in_quote || comment > 0 => escaped = true,
            '"' if comment == 0 && !open => {
                in_quote = !in_quote;
                quoted = true;
            }
            _ if in_quote => parts.display.push(c),
            '(' => comment += 1,
            ')' if comment > 0 => comment -= 1,
            _ if comment > 0 => {}
            '<' if parts.angle.is_none() => {
                parts.angle = Some(String::new());
                open = true;
            }
            '<' | '>' if !lenient && !open => return None,
            '>' if open => {
                open = false;
                closed = true;
            }
            // A group's name ends at ':' (drop it), its list at ';'.
            ':' if lenient && !open => parts.clear(),
            ';' if lenient && !open => {
                end_mailbox(&mut parts, &mut found, quoted, lenient);
            }
            ',' if !open => {
                if !end_mailbox(&mut parts, &mut found, quoted, lenient) {
                    return None;
                }
                (closed, quoted) = (false, false);
            }
            _ => match parts.angle.as_mut() {
                Some(a) if open => a.push(c),
                _ => {
                    parts.bare.push(c);
                    parts.display.push(c);
                }
            },
        }
    }
    if lenient {
        if open {
            parts.angle = None;
        }
        end_mailbox(&mut parts, &mut found, quoted, lenient);
        return Some(found);
    }
    if in_quote || comment > 0 || open || !end_mailbox(&mut parts, &mut found, quoted, lenient) {
        return None;
    }
    if found
        .iter()
        .any(|m| m.address.chars().any(char::is_whitespace))
    {
        return None;
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(message: &str) -> Result<Vec<String>, FromProblem> {
        let mut s = FromHeaderScanner::new();
        // Fed a byte at a time: chunk edges fall anywhere.
        for b in message.as_bytes() {
            s.feed(std::slice::from_ref(b));
        }
        s.addresses()
    }

    #[test]
    fn finds_from_addresses() {
        assert_eq!(
            scan("Subject: x\r\nFrom: Alice <alice@localhost>\r\n\r\nFrom: evil@x\r\n").unwrap(),
            ["alice@localhost"]
        );
        assert_eq!(
            scan("from:alice@localhost\r\n\r\n").unwrap(),
            ["alice@localhost"]
        );
        assert_eq!(
            scan("From: \"Smith, A\" <a@x.test>, b@y.test (Bob)\r\n\r\n").unwrap(),
            ["a@x.test", "b@y.test"]
        );
        assert_eq!(
            scan("From: Alice\r\n <alice@localhost>\r\nTo: b\r\n\r\n").unwrap(),
            ["alice@localhost"]
        );
        assert_eq!(
            scan("From: a@x.test\r\nFrom: b@x.test\r\n\r\n").unwrap(),
            ["a@x.test", "b@x.test"]
        );
        assert_eq!(
            scan("Subject: none\r\n\r\nbody").unwrap(),
            Vec::<String>::new()
        );
    }

    fn recipients(message: &str) -> Vec<String> {
        let mut s = RecipientHeaderScanner::recipients();
        for b in message.as_bytes() {
            s.feed(std::slice::from_ref(b));
        }
        s.addresses_seen()
    }

    #[test]
    fn collects_to_and_cc_leniently() {
        assert_eq!(
            recipients(
                "From: x@y\r\nTo: A <a@x.test>, b@x.test\r\n  , \"C, c\" <c@x.test>\r\nSubject: s\r\ncc: friends: d@y.test, e@y.test;\r\n\r\nTo: z@z\r\n"
            ),
            ["a@x.test", "b@x.test", "c@x.test", "d@y.test", "e@y.test"]
        );
        assert!(recipients("To: undisclosed-recipients:;\r\n\r\n").is_empty());
        assert_eq!(recipients("To: <a@x, b@y\r\n\r\n"), Vec::<String>::new());
        let many: Vec<String> = (0..500).map(|i| format!("user{i}@example.test")).collect();
        let seen = recipients(&format!("To: {}\r\n\r\n", many.join(", ")));
        assert!(seen.len() > 100 && seen.len() < 500, "{}", seen.len());
        assert_eq!(seen[..], many[..seen.len()]);
    }

    #[test]
    fn keeps_display_names() {
        let mut s = RecipientHeaderScanner::recipients();
        s.feed(b"To: \"Smith, Bob\" <bob@x.test>, Carol  Jones <c@x.test> (work),\r\n d@x.test, \"A \\\"Q\\\"\" <q@x.test>\r\n\r\n");
        let named: Vec<(String, String)> = s
            .named_seen()
            .into_iter()
            .map(|m| (m.address, m.name))
            .collect();
        let expected = [
            ("bob@x.test", "Smith, Bob"),
            ("c@x.test", "Carol Jones"),
            ("d@x.test", ""),
            ("q@x.test", "A \"Q\""),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, n)| (a.to_string(), n.to_string()))
            .collect();
        assert_eq!(named, expected);
        let mut from = FromHeaderScanner::new();
        from.feed(b"From: Alice Example <alice@x.test>\r\n\r\n");
        assert_eq!(from.named().unwrap()[0].name, "Alice Example");
    }

    #[test]
    fn header_section_ends_at_blank_or_non_header_line() {
        assert!(scan("Subject: x\r\n\r\nFrom: a@b\r\n").unwrap().is_empty());
        assert!(scan("not a header\r\nFrom: a@b\r\n").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(scan("From: \r\n\r\n"), Err(FromProblem::Unparsable));
        assert_eq!(scan("From: \"open\r\n\r\n"), Err(FromProblem::Unparsable));
        assert_eq!(
            scan("From: friends: a@x.test, b@y.test;\r\n\r\n"),
            Err(FromProblem::Unparsable)
        );
        assert_eq!(scan("From: a b@x\r\n\r\n"), Err(FromProblem::Unparsable));
        // What parsers read differently: Python's email takes bob in the
        // third, others the second address of the first two.
        for two_ways in [
            "From: <alice@x> <bob@x>\r\n\r\n",
            "From: <alice@x>\r\n <bob@x>\r\n\r\n",
            "From: bob@x<alice@x>\r\n\r\n",
            "From: bob@x <alice@x>\r\n\r\n",
            "From: <alice@x>bob@x\r\n\r\n",
            "From: \"x\" alice@x\r\n\r\n",
            "From: alice@x>\r\n\r\n",
            "From: alice@x (c) <bob@x>\r\n\r\n",
            "From: <alice@x>; bob@x\r\n\r\n",
        ] {
            assert_eq!(scan(two_ways), Err(FromProblem::Unparsable), "{two_ways}");
        }
        // Comments hide what they hold, as for Python's email; outside
        // quotes a backslash escapes nothing, so bob is seen and checked.
        assert_eq!(scan("From: alice(@x)@x\r\n\r\n").unwrap(), ["alice@x"]);
        assert_eq!(
            scan("From: (a \\) <bob@x>) alice@x\r\n\r\n").unwrap(),
            ["alice@x"]
        );
        assert_eq!(
            scan("From: alice@x\\, bob@x\r\n\r\n").unwrap(),
            ["alice@x\\", "bob@x"]
        );
        assert_eq!(
            scan("From: \"Bob <bob@x>\" <alice@x> (Alice, <a>), <c@x>\r\n\r\n").unwrap(),
            ["alice@x", "c@x"]
        );
        let long = format!("From: {}@x.test\r\n\r\n", "a".repeat(MAX_FROM_HEADER));
        assert_eq!(scan(&long), Err(FromProblem::TooLong));
    }
}
