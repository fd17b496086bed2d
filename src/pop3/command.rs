//! POP3 command lines (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH), parsed
//! without I/O. Message numbers are 1-based as on the wire.

#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    User(&'a str),
    Pass(&'a str),
    Auth {
        mechanism: &'a str,
        initial: Option<&'a str>,
    },
    Capa,
    Stls,
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Top(u32, u32),
    Uidl(Option<u32>),
    Quit,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    Unknown,
    Syntax(&'static str),
}

pub fn parse(line: &[u8]) -> Result<Command<'_>, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax("invalid UTF-8"))?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let mut args = rest.split(' ').filter(|a| !a.is_empty());
    let verb = verb.to_ascii_uppercase();
    let command = match verb.as_str() {
        // PASS takes the rest of the line: passwords may contain spaces.
        "PASS" => {
            if rest.is_empty() {
                return Err(ParseError::Syntax("PASS needs a password"));
            }
            return Ok(Command::Pass(rest));
        }
        "USER" => Command::User(args.next().ok_or(ParseError::Syntax("USER needs a name"))?),
        "AUTH" => match args.next() {
            // Bare AUTH lists mechanisms (RFC 5034 is silent; clients use CAPA).
            None => return Err(ParseError::Syntax("AUTH needs a mechanism")),
            Some(mechanism) => Command::Auth {
                mechanism,
                initial: args.next(),
            },
        },
        "CAPA" => Command::Capa,
        "STLS" => Command::Stls,
        "STAT" => Command::Stat,
        "LIST" => Command::List(optional_number(args.next())?),
        "RETR" => Command::Retr(number(args.next())?),
        "DELE" => Command::Dele(number(args.next())?),
        "NOOP" => Command::Noop,
        "RSET" => Command::Rset,
        "TOP" => {
            let msg = number(args.next())?;
            let lines = args
                .next()
                .ok_or(ParseError::Syntax(
                    "TOP needs a message number and a line count",
                ))?
                .parse()
                .map_err(|_| ParseError::Syntax("invalid line count"))?;
            Command::Top(msg, lines)
        }
        "UIDL" => Command::Uidl(optional_number(args.next())?),
        "QUIT" => Command::Quit,
        _ => return Err(ParseError::Unknown),
    };
    if args.next().is_some() {
        return Err(ParseError::Syntax("too many arguments"));
    }
    Ok(command)
}

fn number(arg: Option<&str>) -> Result<u32, ParseError> {
    let arg = arg.ok_or(ParseError::Syntax("message number required"))?;
    match arg.parse::<u32>() {
        Ok(n) if n > 0 && arg.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(ParseError::Syntax("invalid message number")),
    }
}

fn optional_number(arg: Option<&str>) -> Result<Option<u32>, ParseError> {
    arg.map(|a| number(Some(a))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command() {
        assert_eq!(parse(b"user alice"), Ok(Command::User("alice")));
        assert_eq!(parse(b"PASS pass word "), Ok(Command::Pass("pass word ")));
        assert_eq!(
            parse(b"AUTH PLAIN"),
            Ok(Command::Auth {
                mechanism: "PLAIN",
                initial: None
            })
        );
        assert_eq!(
            parse(b"AUTH PLAIN AGFsaWNlAHNlY3JldA=="),
            Ok(Command::Auth {
                mechanism: "PLAIN",
                initial: Some("AGFsaWNlAHNlY3JldA==")
            })
        );
        assert_eq!(parse(b"CAPA"), Ok(Command::Capa));
        assert_eq!(parse(b"STAT"), Ok(Command::Stat));
        assert_eq!(parse(b"LIST"), Ok(Command::List(None)));
        assert_eq!(parse(b"LIST 2"), Ok(Command::List(Some(2))));
        assert_eq!(parse(b"RETR 1"), Ok(Command::Retr(1)));
        assert_eq!(parse(b"DELE 3"), Ok(Command::Dele(3)));
        assert_eq!(parse(b"NOOP"), Ok(Command::Noop));
        assert_eq!(parse(b"RSET"), Ok(Command::Rset));
        assert_eq!(parse(b"TOP 1 0"), Ok(Command::Top(1, 0)));
        assert_eq!(parse(b"UIDL"), Ok(Command::Uidl(None)));
        assert_eq!(parse(b"uidl 4"), Ok(Command::Uidl(Some(4))));
        assert_eq!(parse(b"QUIT"), Ok(Command::Quit));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse(b"APOP a b"), Err(ParseError::Unknown));
        assert_eq!(parse(b""), Err(ParseError::Unknown));
        for bad in [
            &b"RETR"[..],
            b"RETR 0",
            b"RETR -1",
            b"RETR +1",
            b"RETR x",
            b"RETR 99999999999",
            b"DELE 1 2",
            b"TOP 1",
            b"TOP 1 x",
            b"USER",
            b"PASS",
            b"AUTH",
            b"STAT 1",
            b"\xff",
        ] {
            assert!(matches!(parse(bad), Err(ParseError::Syntax(_))), "{bad:?}");
        }
    }
}
