//! The trace headers prepended at delivery: `Return-Path:` (RFC 5321
//! §4.4) and `Received:` with the client's name and address.

use crate::wire::address::Address;
use core::fmt::Write;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// `Tue, 24 Nov 2026 15:18:00 +0000` (RFC 5322 §3.3), always in UTC.
pub fn rfc5322_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let rem = secs % 86_400;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_965_480);
        assert_eq!(rfc5322_date(t), "Sun, 29 Nov 2026 15:18:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

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
