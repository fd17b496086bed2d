//! The trace headers prepended at delivery: `Return-Path:` (RFC 5321
//! §4.4) and `Received:` with the client's name and address.

use crate::ops::clock::rfc5322_date;
use crate::wire::address::Address;
use core::fmt::Write;
use std::net::IpAddr;
use std::time::SystemTime;

pub struct Trace<'a> {
    pub sender: Option<&'a Address>,
    pub helo: &'a str,
    pub peer: IpAddr,
    pub hostname: &'a str,
    pub esmtp: bool,
    /// The session was encrypted / logged in (RFC 3848 ESMTPS, ESMTPA).
    pub tls: bool,
    pub authenticated: bool,
    pub id: &'a str,
    /// Named in the header only for a single recipient, so a list's
    /// members are not shown to each other.
    pub single_recipient: Option<&'a Address>,
    pub now: SystemTime,
}

/// Renders both headers, CRLF-terminated.
pub fn trace_headers(t: &Trace<'_>) -> String {
    let mut s = String::with_capacity(256);
    let sender = t.sender.map(Address::as_str).unwrap_or("");
    let _ = write!(s, "Return-Path: <{sender}>\r\n");
    let helo: String = t.helo.chars().filter(|c| !c.is_control()).collect();
    let _ = write!(
        s,
        "Received: from {helo} ([{}])\r\n\tby {} (Postbox) with {} id {}",
        t.peer,
        t.hostname,
        protocol(t),
        t.id
    );
    if let Some(rcpt) = t.single_recipient {
        let _ = write!(s, "\r\n\tfor <{rcpt}>");
    }
    let _ = write!(s, ";\r\n\t{}\r\n", rfc5322_date(t.now));
    s
}

/// The `with` keyword of RFC 3848.
fn protocol(t: &Trace<'_>) -> &'static str {
    match (t.esmtp, t.tls, t.authenticated) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn headers() {
        let from = Address::new("a", "b.test").unwrap();
        let to = Address::new("c", "localhost").unwrap();
        let h = trace_headers(&Trace {
            sender: Some(&from),
            helo: "client\u{7}.test",
            peer: "127.0.0.1".parse().unwrap(),
            hostname: "mx.test",
            esmtp: true,
            tls: false,
            authenticated: false,
            id: "ID1",
            single_recipient: Some(&to),
            now: UNIX_EPOCH,
        });
        assert_eq!(
            h,
            "Return-Path: <a@b.test>\r\nReceived: from client.test ([127.0.0.1])\r\n\tby mx.test (Postbox) with ESMTP id ID1\r\n\tfor <c@localhost>;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"
        );
        let bounce = trace_headers(&Trace {
            sender: None,
            helo: "c",
            peer: "::1".parse().unwrap(),
            hostname: "h",
            esmtp: false,
            tls: false,
            authenticated: false,
            id: "x",
            single_recipient: None,
            now: UNIX_EPOCH,
        });
        assert!(bounce.starts_with("Return-Path: <>\r\n"));
        assert!(!bounce.contains("for <"));
    }
}
