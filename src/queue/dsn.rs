//! Delivery status notifications (RFC 3464) in a `multipart/report`
//! (RFC 6522): what the sender of a message gets back when it could not be
//! delivered, or is taking long.
//!
//! The report has three parts: an explanation for people, the
//! machine-readable `message/delivery-status`, and the original message's
//! header section (never its body: that may be large, and sending it back
//! would let a forged sender address turn us into a reflector).

use crate::ops::clock::rfc5322_date;
use std::fmt::Write as _;
use std::io::{self, BufRead, Read, Write};
use std::time::SystemTime;

/// How much of the original header section is returned.
pub const MAX_ORIGINAL_HEADERS: u64 = 64 * 1024;
/// Room for a remote server's text in one header field (lines stay well
/// under RFC 5322's 998 octets).
const MAX_DIAGNOSTIC: usize = 800;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Delivery has been given up.
    Failed,
    /// Delivery is still being retried.
    Delayed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientStatus {
    pub recipient: String,
    /// The enhanced status code, e.g. `5.1.1`.
    pub status: String,
    /// What the remote server (or the attempt) said, e.g.
    /// `550 5.1.1 No such user`.
    pub diagnostic: Option<String>,
    /// The server that gave the answer, as a host name (anything after
    /// the first space, such as `[192.0.2.1]`, stays in the text part).
    pub remote_mta: Option<String>,
}

pub struct Report<'a> {
    pub kind: Kind,
    /// This server's name.
    pub hostname: &'a str,
    pub queue_id: &'a str,
    /// The envelope sender the report goes to.
    pub sender: &'a str,
    pub arrival: SystemTime,
    /// When retries end (shown in delay notices).
    pub retry_until: Option<SystemTime>,
    pub recipients: &'a [RecipientStatus],
    /// The report's own Message-ID, with or without `<>`; a bare one gets
    /// `@hostname`.
    pub message_id: &'a str,
    pub now: SystemTime,
}

/// Mail that must never cause a report: from the null sender (it is a
/// report itself, RFC 5321 §4.5.5) or from a mailer daemon.
pub fn must_not_bounce(envelope_sender: &str) -> bool {
    let sender = envelope_sender.trim();
    let sender = sender
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(sender);
    sender.is_empty()
        || sender
            .split('@')
            .next()
            .is_some_and(|local| local.eq_ignore_ascii_case("MAILER-DAEMON"))
}

/// Writes the complete report message (CRLF line ends) to `out`, taking
/// the original's header section from `original`: read line by line up to
/// the first empty line and at most [`MAX_ORIGINAL_HEADERS`] bytes, so the
/// body is never read.
pub fn write(report: &Report, original: &mut impl BufRead, out: &mut impl Write) -> io::Result<()> {
    let boundary = boundary(report.queue_id);
    // Addresses with UTF-8 need the RFC 6533 forms.
    let global =
        !report.sender.is_ascii() || report.recipients.iter().any(|r| !r.recipient.is_ascii());
    let hostname = clean(report.hostname, 255);

    let mut head = String::with_capacity(4096);
    let _ = write!(
        head,
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{}>\r\n\
         Subject: {}\r\n\
         Date: {}\r\n\
         Message-ID: {}\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a delivery status notification in MIME format.\r\n\
         \r\n",
        clean(report.sender, 512),
        match report.kind {
            Kind::Failed => "Undelivered Mail Returned to Sender",
            Kind::Delayed => "Delayed Mail (still being retried)",
        },
        rfc5322_date(report.now),
        message_id(report.message_id, &hostname),
    );

    let text = explanation(report, &hostname);
    let _ = write!(
        head,
        "--{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: {}\r\n\
         Content-Description: Notification\r\n\
         \r\n\
         {text}\r\n",
        if text.is_ascii() { "7bit" } else { "8bit" },
    );

    let _ = write!(
        head,
        "--{boundary}\r\n\
         Content-Type: message/{}delivery-status\r\n\
         Content-Description: Delivery report\r\n\
         \r\n",
        if global { "global-" } else { "" },
    );
    head.push_str(&delivery_status(report, &hostname, global));

    let _ = write!(
        head,
        "\r\n--{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         Content-Description: Undelivered message headers\r\n\
         \r\n"
    );
    out.write_all(head.as_bytes())?;
    copy_header_section(original, out)?;
    write!(out, "\r\n--{boundary}--\r\n")?;
    out.flush()
}

/// Unpredictable, so nothing in the returned headers can end a part early.
fn boundary(queue_id: &str) -> String {
    let mut random = [0u8; 12];
    let salt = match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random) {
        Ok(()) => random.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => clean(queue_id, 40).replace(|c: char| !c.is_ascii_alphanumeric(), ""),
    };
    format!("=_postbox-report-{salt}")
}

fn message_id(id: &str, hostname: &str) -> String {
    let id = clean(id, 250);
    if id.starts_with('<') {
        id
    } else if id.contains('@') {
        format!("<{id}>")
    } else {
        format!("<{id}@{hostname}>")
    }
}

/// One line of text from anything a remote server or sender chose: no
/// control characters (no header injection), at most `max` characters.
fn clean(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn explanation(report: &Report, hostname: &str) -> String {
    let mut text = format!("This is the mail system at {hostname}.\r\n\r\n");
    match report.kind {
        Kind::Failed => text.push_str(
            "Your message could not be delivered to the recipients below;\r\n\
             delivery has been given up. Its header section is attached.\r\n",
        ),
        Kind::Delayed => {
            text.push_str("Your message has not been delivered yet to the recipients below.\r\n");
            match report.retry_until {
                Some(until) => {
                    let _ = write!(
                        text,
                        "Delivery will be retried until {}.\r\n\
                         You do not need to send it again; you will be told\r\n\
                         if it fails for good.\r\n",
                        rfc5322_date(until)
                    );
                }
                None => text.push_str(
                    "Delivery is still being retried. You do not need to send\r\n\
                     it again; you will be told if it fails for good.\r\n",
                ),
            }
        }
    }
    let _ = write!(text, "\r\nQueue ID: {}\r\n", clean(report.queue_id, 100));
    for r in report.recipients {
        let _ = write!(text, "\r\n<{}>:\r\n", clean(&r.recipient, 512));
        match &r.diagnostic {
            Some(d) => {
                let _ = write!(text, "    {}\r\n", clean(d, MAX_DIAGNOSTIC));
            }
            None => {
                let _ = write!(text, "    status {}\r\n", clean(&r.status, 20));
            }
        }
        if let Some(mta) = &r.remote_mta {
            let _ = write!(text, "    (answered by {})\r\n", clean(mta, 300));
        }
    }
    text
}

fn delivery_status(report: &Report, hostname: &str, global: bool) -> String {
    let mut text = String::new();
    let _ = write!(
        text,
        "Reporting-MTA: dns; {hostname}\r\n\
         X-Postbox-Queue-ID: {}\r\n\
         Arrival-Date: {}\r\n",
        clean(report.queue_id, 100),
        rfc5322_date(report.arrival),
    );
    let address_type = if global { "utf-8" } else { "rfc822" };
    let now = rfc5322_date(report.now);
    for r in report.recipients {
        let _ = write!(
            text,
            "\r\n\
             Final-Recipient: {address_type}; {}\r\n\
             Action: {}\r\n\
             Status: {}\r\n",
            clean(&r.recipient, 512),
            match report.kind {
                Kind::Failed => "failed",
                Kind::Delayed => "delayed",
            },
            clean(&r.status, 20),
        );
        if let Some(host) = r
            .remote_mta
            .as_deref()
            .and_then(|m| m.split_whitespace().next())
        {
            let _ = write!(text, "Remote-MTA: dns; {}\r\n", clean(host, 255));
        }
        if let Some(d) = &r.diagnostic {
            let d = clean(d, MAX_DIAGNOSTIC);
            // RFC 3464's "smtp" type is for a server's reply; anything
            // else (a refused connection, a DNS failure) is our own words.
            let is_reply = d.len() >= 3
                && d.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && matches!(d.as_bytes()[0], b'2'..=b'5');
            let kind = if is_reply { "smtp" } else { "X-Postbox" };
            let _ = write!(text, "Diagnostic-Code: {kind}; {d}\r\n");
        }
        let _ = write!(text, "Last-Attempt-Date: {now}\r\n");
        if let (Kind::Delayed, Some(until)) = (report.kind, report.retry_until) {
            let _ = write!(text, "Will-Retry-Until: {}\r\n", rfc5322_date(until));
        }
    }
    text
}

/// Copies header lines up to the empty line that ends them, with CRLF line
/// ends; a line cut by the size cap is left out.
fn copy_header_section(original: &mut impl BufRead, out: &mut impl Write) -> io::Result<()> {
    let mut limited = original.take(MAX_ORIGINAL_HEADERS);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if limited.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let complete = line.ends_with(b"\n");
        if !complete && limited.limit() == 0 {
            return Ok(());
        }
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(&line);
        if content.is_empty() {
            return Ok(());
        }
        out.write_all(content)?;
        out.write_all(b"\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::time::{Duration, UNIX_EPOCH};

    const ORIGINAL: &str = "Received: from a.example\r\n\
                            \tby mx.club.example; Tue, 24 Nov 2026 15:18:00 +0000\r\n\
                            From: Alice <alice@club.example>\r\n\
                            To: bob@elsewhere.example\r\n\
                            Subject: lunch\r\n\
                            \r\n\
                            SECRET BODY\r\n";

    fn recipients() -> Vec<RecipientStatus> {
        vec![
            RecipientStatus {
                recipient: "bob@elsewhere.example".into(),
                status: "5.1.1".into(),
                diagnostic: Some("550 5.1.1 No such user\r\nInjected: yes".into()),
                remote_mta: Some("mx.elsewhere.example [192.0.2.7]".into()),
            },
            RecipientStatus {
                recipient: "carol@far.example".into(),
                status: "5.4.4".into(),
                diagnostic: Some("no mail host for far.example".into()),
                remote_mta: None,
            },
        ]
    }

    fn render(kind: Kind, recipients: &[RecipientStatus], original: &str) -> (Vec<u8>, u64) {
        let arrival = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let report = Report {
            kind,
            hostname: "mx.club.example",
            queue_id: "Q123",
            sender: "alice@club.example",
            arrival,
            retry_until: Some(arrival + Duration::from_secs(5 * 86_400)),
            recipients,
            message_id: "1795000100.R1.mx",
            now: arrival + Duration::from_secs(100),
        };
        let mut input = Cursor::new(original.as_bytes());
        let mut out = Vec::new();
        write(&report, &mut input, &mut out).unwrap();
        (out, input.position())
    }

    fn python_check(message: &[u8], action: &str) {
        const SCRIPT: &str = r#"
import email, sys
m = email.message_from_bytes(sys.stdin.buffer.read())
assert m.get_content_type() == "multipart/report", m.get_content_type()
assert m.get_param("report-type") == "delivery-status"
assert m["Auto-Submitted"] == "auto-replied"
parts = m.get_payload()
types = [p.get_content_type() for p in parts]
assert types == ["text/plain", "message/delivery-status", "text/rfc822-headers"], types
status = parts[1].get_payload()
assert status[0]["Reporting-MTA"] == "dns; mx.club.example", status[0].items()
assert [s["Action"] for s in status[1:]] == [sys.argv[1]] * 2, status
assert status[1]["Final-Recipient"] == "rfc822; bob@elsewhere.example"
assert status[1]["Remote-MTA"] == "dns; mx.elsewhere.example"
assert "Subject: lunch" in parts[2].get_payload()
assert not m.defects and not any(p.defects for p in parts), (m.defects, [p.defects for p in parts])
"#;
        let mut child = std::process::Command::new("python3")
            .args(["-c", SCRIPT, action])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        child.stdin.take().unwrap().write_all(message).unwrap();
        let result = child.wait_with_output().unwrap();
        assert!(
            result.status.success(),
            "python's email package rejects the report:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
    }

    #[test]
    fn failure_report_structure() {
        let (out, consumed) = render(Kind::Failed, &recipients(), ORIGINAL);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.replace("\r\n", "").contains('\n'), "bare LF");
        assert!(!text.replace("\r\n", "").contains('\r'), "bare CR");
        assert!(text.starts_with("From: Mail Delivery System <MAILER-DAEMON@mx.club.example>\r\n"));
        assert!(text.contains("\r\nTo: <alice@club.example>\r\n"));
        assert!(text.contains("\r\nSubject: Undelivered Mail Returned to Sender\r\n"));
        assert!(text.contains("\r\nMessage-ID: <1795000100.R1.mx@mx.club.example>\r\n"));
        let boundary = text
            .split("boundary=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        let opening = format!("--{boundary}");
        let closing = format!("--{boundary}--");
        assert_eq!(lines.iter().filter(|l| **l == opening).count(), 3);
        assert_eq!(lines.iter().filter(|l| **l == closing).count(), 1);
        let parts: Vec<&str> = text.split(&format!("\r\n{opening}\r\n")).skip(1).collect();
        assert!(parts[0].starts_with("Content-Type: text/plain"));
        assert!(parts[1].starts_with("Content-Type: message/delivery-status\r\n"));
        assert!(parts[2].starts_with("Content-Type: text/rfc822-headers\r\n"));
        assert!(parts[1].contains("\r\n\r\nFinal-Recipient: rfc822; bob@elsewhere.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
        assert!(
            parts[1].contains("Diagnostic-Code: smtp; 550 5.1.1 No such user  Injected: yes\r\n")
        );
        assert!(parts[1].contains("Diagnostic-Code: X-Postbox; no mail host for far.example\r\n"));
        assert!(!parts[1].contains("Will-Retry-Until"));
        assert!(parts[0].contains("<carol@far.example>:"));
        assert!(parts[0].contains("mx.elsewhere.example [192.0.2.7]"));
        assert!(parts[2].contains("Subject: lunch\r\n"));
        assert!(!text.contains("SECRET BODY"));
        assert!(!text.contains("\r\nInjected: yes"));
        // The header section and its empty line, not one byte of the body.
        assert_eq!(consumed as usize, ORIGINAL.find("SECRET").unwrap());
        python_check(&out, "failed");
    }

    #[test]
    fn delay_notice_names_the_retry_limit() {
        let (out, _) = render(Kind::Delayed, &recipients(), ORIGINAL);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("\r\nSubject: Delayed Mail (still being retried)\r\n"));
        assert!(text.contains("Action: delayed\r\n"));
        let until = rfc5322_date(UNIX_EPOCH + Duration::from_secs(1_795_000_000 + 5 * 86_400));
        assert!(text.contains(&format!("Will-Retry-Until: {until}\r\n")));
        assert!(text.contains(&format!("retried until {until}")));
        python_check(&out, "delayed");
    }

    #[test]
    fn original_headers_are_capped_and_line_ends_fixed() {
        let long = format!(
            "Subject: bare LF\nX-Long: {}\n\nbody\n",
            "x".repeat(MAX_ORIGINAL_HEADERS as usize)
        );
        let (out, consumed) = render(Kind::Failed, &recipients(), &long);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nSubject: bare LF\r\n\r\n--"));
        assert!(!text.contains("X-Long"));
        assert!(consumed <= MAX_ORIGINAL_HEADERS);
        // A message with no body and no final line end.
        let (out, _) = render(Kind::Failed, &recipients(), "Subject: short");
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("\r\nSubject: short\r\n\r\n--"));
    }

    #[test]
    fn utf8_addresses_use_the_global_forms() {
        let mut list = recipients();
        list[0].recipient = "jörg@bücher.example".into();
        let (out, _) = render(Kind::Failed, &list, ORIGINAL);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
        assert!(text.contains("Final-Recipient: utf-8; jörg@bücher.example\r\n"));
        assert!(text.contains("Content-Transfer-Encoding: 8bit\r\n"));
    }

    #[test]
    fn who_never_gets_a_report() {
        for sender in ["", "<>", " ", "MAILER-DAEMON@mx.example", "mailer-daemon@x"] {
            assert!(must_not_bounce(sender), "{sender:?}");
        }
        for sender in ["alice@example.org", "daemon@example.org", "postmaster@x"] {
            assert!(!must_not_bounce(sender), "{sender:?}");
        }
    }
}
