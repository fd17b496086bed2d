//! SMTP command lines (RFC 5321 §4.1) parsed into a [`Command`], with no
//! I/O and no allocation. Verbs and parameter names are case-insensitive.

use crate::wire::address::{Address, AddressError};

#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Helo(&'a str),
    Ehlo(&'a str),
    Mail(MailFrom),
    Rcpt(RcptTo),
    Data,
    Rset,
    Noop,
    Quit,
    Help,
    Vrfy,
    Expn,
    StartTls,
    /// AUTH mechanism [initial-response] (RFC 4954).
    Auth {
        mechanism: &'a str,
        initial: Option<&'a str>,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub struct MailFrom {
    /// `None` is the null reverse-path `<>` used by bounces.
    pub from: Option<Address>,
    /// The client's SIZE= declaration (RFC 1870).
    pub size: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RcptTo {
    /// `<Postmaster>` with no domain (RFC 5321 §4.1.1.3).
    Postmaster,
    Mailbox(Address),
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not a verb we know: 500 5.5.1.
    Unknown,
    /// Known verb, malformed arguments: 501 5.5.4.
    Syntax(&'static str),
    /// The address inside the path is unusable: 501 5.1.3 (or 5.1.7 for senders).
    BadAddress(AddressError),
    /// A MAIL/RCPT parameter we do not implement: 555 5.5.4.
    UnsupportedParameter,
}

pub fn parse(line: &[u8]) -> Result<Command<'_>, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax("invalid UTF-8"))?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let no_args = |command: Command<'static>| {
        if rest.trim().is_empty() {
            Ok(command)
        } else {
            Err(ParseError::Syntax("this command takes no arguments"))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "HELO" => domain_arg(rest).map(Command::Helo),
        "EHLO" => domain_arg(rest).map(Command::Ehlo),
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "QUIT" => no_args(Command::Quit),
        // NOOP, HELP, VRFY and EXPN may carry an argument we ignore.
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(mechanism), initial, None) => Ok(Command::Auth { mechanism, initial }),
                _ => Err(ParseError::Syntax(
                    "expected AUTH mechanism [initial-response]",
                )),
            }
        }
        _ => Err(ParseError::Unknown),
    }
}

fn domain_arg(rest: &str) -> Result<&str, ParseError> {
    let arg = rest.trim();
    if arg.is_empty() || arg.contains(' ') {
        return Err(ParseError::Syntax("expected one domain or address literal"));
    }
    Ok(arg)
}

/// Splits `KEYWORD:<path> params` after the verb, tolerating the common
/// space after the colon.
fn path_and_params<'a>(rest: &'a str, keyword: &str) -> Result<(&'a str, &'a str), ParseError> {
    let rest = rest.trim_start();
    let head = rest
        .get(..keyword.len())
        .ok_or(ParseError::Syntax("expected a path"))?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(ParseError::Syntax("expected a path"));
    }
    let after = rest[keyword.len()..].trim_start();
    let inner_and_more = after
        .strip_prefix('<')
        .ok_or(ParseError::Syntax("path must be enclosed in <>"))?;
    let close = closing_bracket(inner_and_more).ok_or(ParseError::Syntax("missing >"))?;
    let params = &inner_and_more[close + 1..];
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(ParseError::Syntax("expected a space after the path"));
    }
    Ok((&inner_and_more[..close], params.trim()))
}

/// The `>` that ends a path, skipping over quoted local parts.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_mail(rest: &str) -> Result<Command<'_>, ParseError> {
    let (inner, params) = path_and_params(rest, "FROM:")?;
    let from = if inner.is_empty() {
        None
    } else {
        Some(Address::parse_path(inner).map_err(ParseError::BadAddress)?)
    };
    let mut size = None;
    for param in params.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (param, None),
        };
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) => {
                size = Some(
                    v.parse()
                        .map_err(|_| ParseError::Syntax("SIZE must be a number"))?,
                )
            }
            ("BODY", Some(v))
                if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {}
            ("SMTPUTF8", None) => {}
            _ => return Err(ParseError::UnsupportedParameter),
        }
    }
    Ok(Command::Mail(MailFrom { from, size }))
}

fn parse_rcpt(rest: &str) -> Result<Command<'_>, ParseError> {
    let (inner, params) = path_and_params(rest, "TO:")?;
    if !params.is_empty() {
        return Err(ParseError::UnsupportedParameter);
    }
    if inner.eq_ignore_ascii_case("postmaster") {
        return Ok(Command::Rcpt(RcptTo::Postmaster));
    }
    Address::parse_path(inner)
        .map(|a| Command::Rcpt(RcptTo::Mailbox(a)))
        .map_err(ParseError::BadAddress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse_path(s).unwrap()
    }

    #[test]
    fn simple_verbs_any_case() {
        assert_eq!(parse(b"data"), Ok(Command::Data));
        assert_eq!(parse(b"RSET"), Ok(Command::Rset));
        assert_eq!(parse(b"Quit"), Ok(Command::Quit));
        assert_eq!(parse(b"NOOP whatever"), Ok(Command::Noop));
        assert_eq!(parse(b"HELP MAIL"), Ok(Command::Help));
        assert_eq!(parse(b"VRFY alice"), Ok(Command::Vrfy));
        assert_eq!(parse(b"EXPN list"), Ok(Command::Expn));
        assert!(matches!(parse(b"DATA now"), Err(ParseError::Syntax(_))));
        assert_eq!(parse(b"starttls"), Ok(Command::StartTls));
        assert!(matches!(parse(b"STARTTLS x"), Err(ParseError::Syntax(_))));
        assert_eq!(
            parse(b"AUTH PLAIN AGEAYg=="),
            Ok(Command::Auth {
                mechanism: "PLAIN",
                initial: Some("AGEAYg==")
            })
        );
        assert_eq!(
            parse(b"auth login"),
            Ok(Command::Auth {
                mechanism: "login",
                initial: None
            })
        );
        assert!(matches!(parse(b"AUTH"), Err(ParseError::Syntax(_))));
        assert!(matches!(
            parse(b"AUTH PLAIN a b"),
            Err(ParseError::Syntax(_))
        ));
        assert_eq!(parse(b"FOO"), Err(ParseError::Unknown));
        assert_eq!(parse(b""), Err(ParseError::Unknown));
        assert_eq!(parse(b"\xff\xfe"), Err(ParseError::Syntax("invalid UTF-8")));
    }

    #[test]
    fn helo_and_ehlo() {
        assert_eq!(
            parse(b"EHLO client.example"),
            Ok(Command::Ehlo("client.example"))
        );
        assert_eq!(parse(b"helo [127.0.0.1]"), Ok(Command::Helo("[127.0.0.1]")));
        assert!(matches!(parse(b"EHLO"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"EHLO a b"), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn mail_from_forms() {
        assert_eq!(
            parse(b"MAIL FROM:<a@b.example>"),
            Ok(Command::Mail(MailFrom {
                from: Some(addr("a@b.example")),
                size: None
            }))
        );
        assert_eq!(
            parse(b"mail from: <a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8"),
            Ok(Command::Mail(MailFrom {
                from: Some(addr("a@b.example")),
                size: Some(1000)
            }))
        );
        assert_eq!(
            parse(b"MAIL FROM:<>"),
            Ok(Command::Mail(MailFrom {
                from: None,
                size: None
            }))
        );
        assert_eq!(
            parse(b"MAIL FROM:<\"odd > local\"@b.example>"),
            Ok(Command::Mail(MailFrom {
                from: Some(addr("\"odd > local\"@b.example")),
                size: None
            }))
        );
    }

    #[test]
    fn mail_from_errors() {
        assert!(matches!(parse(b"MAIL a@b"), Err(ParseError::Syntax(_))));
        assert!(matches!(
            parse(b"MAIL FROM:a@b.example"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"MAIL FROM:<a@b.example"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"MAIL FROM:<a@b.example>SIZE=1"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"MAIL FROM:<a@b> SIZE=x"),
            Err(ParseError::Syntax(_))
        ));
        assert_eq!(
            parse(b"MAIL FROM:<a@b> AUTH=<>"),
            Err(ParseError::UnsupportedParameter)
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b> BODY=BINARYMIME"),
            Err(ParseError::UnsupportedParameter)
        );
        assert!(matches!(
            parse(b"MAIL FROM:<nodomain>"),
            Err(ParseError::BadAddress(_))
        ));
    }

    #[test]
    fn rcpt_to_forms() {
        assert_eq!(
            parse(b"RCPT TO:<Alice@LocalHost>"),
            Ok(Command::Rcpt(RcptTo::Mailbox(addr("Alice@localhost"))))
        );
        assert_eq!(
            parse(b"RCPT TO:<Postmaster>"),
            Ok(Command::Rcpt(RcptTo::Postmaster))
        );
        assert_eq!(
            parse(b"RCPT TO:<@hop.example:bob@localhost>"),
            Ok(Command::Rcpt(RcptTo::Mailbox(addr("bob@localhost"))))
        );
        assert!(matches!(
            parse(b"RCPT TO:<>"),
            Err(ParseError::BadAddress(_))
        ));
        assert!(matches!(
            parse(b"RCPT FROM:<a@b>"),
            Err(ParseError::Syntax(_))
        ));
        assert_eq!(
            parse(b"RCPT TO:<a@b> NOTIFY=NEVER"),
            Err(ParseError::UnsupportedParameter)
        );
    }
}
