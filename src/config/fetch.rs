//! `[[fetch]]`: a member's mailbox elsewhere whose mail Postbox fetches
//! into the member's own, over POP3 or IMAP, always over TLS unless
//! `tls = "none"` says the upstream is on a trusted LAN.

use super::bounds::Problems;
use super::file::FetchFile;
use super::value::{parse_duration, Value};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How often an entry runs when `every` is not given.
pub const DEFAULT_FETCH_EVERY: Duration = Duration::from_secs(5 * 60);
/// The range of `every`: often enough for a test, rarely enough for a
/// provider's patience.
pub const FETCH_EVERY_MIN: Duration = Duration::from_secs(10);
pub const FETCH_EVERY_MAX: Duration = Duration::from_secs(86400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// POP3 over TLS from the first byte (`pop3s://`).
    Pop3s,
    /// POP3 with STLS, required unless `stls` is false (`tls = "none"`).
    Pop3 { stls: bool },
    /// IMAP over TLS from the first byte (`imaps://`).
    Imaps,
}

impl Protocol {
    /// The name for `Received:` lines and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Pop3s => "POP3S",
            Protocol::Pop3 { stls: true } => "POP3S",
            Protocol::Pop3 { stls: false } => "POP3",
            Protocol::Imaps => "IMAPS",
        }
    }

    pub fn is_imap(&self) -> bool {
        *self == Protocol::Imaps
    }
}

/// Where the mail is: `pop3s://NAME@HOST[:PORT]`, `pop3://NAME@HOST[:PORT]`
/// or `imaps://NAME@HOST[:PORT]/FOLDER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub protocol: Protocol,
    /// The login name (percent-decoded).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// IMAP's folder (INBOX when the URL names none).
    pub folder: String,
}

impl fmt::Display for Upstream {
    /// The URL as written, without any password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.protocol {
            Protocol::Pop3s => "pop3s",
            Protocol::Pop3 { .. } => "pop3",
            Protocol::Imaps => "imaps",
        };
        let name = self.name.replace('%', "%25").replace('@', "%40");
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        write!(f, "{scheme}://{name}@{host}:{}", self.port)?;
        if self.protocol.is_imap() {
            write!(f, "/{}", self.folder)?;
        }
        Ok(())
    }
}

/// One `[[fetch]]` entry, checked.
#[derive(Clone)]
pub struct FetchEntry {
    /// The member it delivers to (`local` or `local@domain`).
    pub user: String,
    pub upstream: Upstream,
    pub password: String,
    /// Leave the mail on the server (and remember what was fetched).
    pub keep: bool,
    pub every: Duration,
    /// An extra root certificate (PEM) for the upstream's.
    pub ca: Option<PathBuf>,
}

impl fmt::Debug for FetchEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of logs and debug output.
        f.debug_struct("FetchEntry")
            .field("user", &self.user)
            .field("upstream", &self.upstream)
            .field("keep", &self.keep)
            .field("every", &self.every)
            .field("ca", &self.ca)
            .finish()
    }
}

pub(super) fn entries(files: &[FetchFile], p: &mut Problems) -> Vec<FetchEntry> {
    let mut entries = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let before = p.0.len();
        let entry = entry(file, &format!("fetch[{i}]"), p);
        if let (Some(entry), true) = (entry, p.0.len() == before) {
            let twice = entries.iter().any(|e: &FetchEntry| {
                e.user == entry.user && e.upstream.to_string() == entry.upstream.to_string()
            });
            if twice {
                p.0.push(format!(
                    "fetch[{i}]: {} into {} is already an entry",
                    entry.upstream, entry.user
                ));
            }
            entries.push(entry);
        }
    }
    entries
}

fn entry(f: &FetchFile, key: &str, p: &mut Problems) -> Option<FetchEntry> {
    let user = match f.user.as_deref().map(str::trim) {
        None | Some("") => {
            p.0.push(format!("{key}.user: missing (the member the mail is for)"));
            None
        }
        Some(user) => p.check(user_name(user).map_err(|e| format!("{key}.user: {e}"))),
    };
    let upstream = match f.url.as_deref() {
        None => {
            p.0.push(format!(
                "{key}.url: missing (pop3s://NAME@HOST, pop3://NAME@HOST or imaps://NAME@HOST/FOLDER)"
            ));
            None
        }
        Some(url) => p.check(parse_url(url, f.tls.as_deref()).map_err(|e| format!("{key}.{e}"))),
    };
    let password = password(f, key, p);
    let every = match &f.every {
        None => Some(DEFAULT_FETCH_EVERY),
        Some(value) => p.check(every(value).map_err(|e| format!("{key}.every: {e}"))),
    };
    if let Some(ca) = &f.ca {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let certs = CertificateDer::pem_file_iter(ca).map(|certs| certs.count());
        match certs {
            Err(e) => {
                p.0.push(format!("{key}.ca: cannot read {}: {e}", ca.display()))
            }
            Ok(0) => {
                p.0.push(format!("{key}.ca: no certificate in {}", ca.display()))
            }
            Ok(_) => {}
        }
    }
    Some(FetchEntry {
        user: user?,
        upstream: upstream?,
        password: password?,
        keep: f.keep.unwrap_or(true),
        every: every?,
        ca: f.ca.clone(),
    })
}

/// `local` or `local@domain`, as the user commands take it.
fn user_name(text: &str) -> Result<String, String> {
    let (local, domain) = text.split_once('@').unwrap_or((text, "x"));
    let plain = |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '@');
    if !plain(local) || !plain(domain) || !crate::wire::address::domain_is_valid(domain) {
        return Err(format!(
            "expected a member as local or local@domain, not {text:?}"
        ));
    }
    Ok(text.to_ascii_lowercase())
}

fn password(f: &FetchFile, key: &str, p: &mut Problems) -> Option<String> {
    let password = given_password(f, key, p)?;
    // It goes on a command line of its own to the upstream.
    if password.contains(['\r', '\n', '\0']) {
        let which = if f.password.is_some() {
            "password"
        } else {
            "password_file"
        };
        p.0.push(format!("{key}.{which}: a line end or NUL in the password"));
        return None;
    }
    Some(password)
}

fn given_password(f: &FetchFile, key: &str, p: &mut Problems) -> Option<String> {
    match (&f.password, &f.password_file) {
        (Some(_), Some(_)) => {
            p.0.push(format!("{key}: give password or password_file, not both"));
            None
        }
        (None, None) => {
            p.0.push(format!("{key}.password: missing (or password_file)"));
            None
        }
        (Some(password), None) => Some(password.clone()),
        (None, Some(path)) => {
            let read = std::fs::read_to_string(path)
                .map_err(|e| format!("{key}.password_file: cannot read {}: {e}", path.display()));
            let password = p.check(read)?;
            // A file written by `echo` ends in a line end that is no part of it.
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            if password.is_empty() {
                p.0.push(format!("{key}.password_file: {} is empty", path.display()));
                return None;
            }
            Some(password)
        }
    }
}

fn every(value: &Value) -> Result<Duration, String> {
    let every = match value {
        Value::Number(n) => Duration::from_secs(u64::try_from(*n).unwrap_or(0)),
        Value::Text(t) => parse_duration(t)?,
    };
    if !(FETCH_EVERY_MIN..=FETCH_EVERY_MAX).contains(&every) {
        return Err(format!(
            "must be 10s to 1d, not {} seconds",
            every.as_secs()
        ));
    }
    Ok(every)
}

/// Parses an entry's URL; `tls` is the entry's `tls` key. The error
/// starts with the key it is about (`url: ...`, `tls: ...`).
pub fn parse_url(text: &str, tls: Option<&str>) -> Result<Upstream, String> {
    let bad = |why: &str| format!("url: {why} in {text:?}");
    let (scheme, rest) = text.split_once("://").ok_or_else(|| {
        bad("expected pop3s://NAME@HOST, pop3://NAME@HOST or imaps://NAME@HOST/FOLDER")
    })?;
    let (protocol, default_port) = match (scheme.to_ascii_lowercase().as_str(), tls) {
        ("pop3s", None) => (Protocol::Pop3s, 995),
        ("pop3", None) => (Protocol::Pop3 { stls: true }, 110),
        ("pop3", Some("none")) => (Protocol::Pop3 { stls: false }, 110),
        ("imaps", None) => (Protocol::Imaps, 993),
        ("pop3s" | "imaps", Some(_)) => {
            return Err(format!(
                "tls: only a pop3:// URL may turn TLS off; {scheme}:// is TLS from the start"
            ))
        }
        ("pop3", Some(other)) => {
            return Err(format!(
                "tls: expected \"none\" (a trusted LAN) or nothing, not {other:?}"
            ))
        }
        (other, _) => {
            return Err(bad(&format!(
                "unknown scheme {other:?} (pop3s, pop3 or imaps)"
            )))
        }
    };
    let (authority, folder) = match rest.split_once('/') {
        Some((a, f)) => (a, percent_decode(f).map_err(|e| bad(&e))?),
        None => (rest, String::new()),
    };
    if !folder.is_empty() && !protocol.is_imap() {
        return Err(bad("a folder is for imaps:// only"));
    }
    let (name, host_port) = authority
        .rsplit_once('@')
        .ok_or_else(|| bad("no login name (NAME@HOST)"))?;
    if name.contains(':') {
        return Err(bad(
            "a password in the URL; give it as password or password_file",
        ));
    }
    let name = percent_decode(name).map_err(|e| bad(&e))?;
    let (host, port) = host_and_port(host_port, default_port).map_err(|e| bad(&e))?;
    if name.is_empty() || name.contains(|c: char| c.is_control()) {
        return Err(bad("an empty or unusable login name"));
    }
    let folder = match folder.as_str() {
        "" => "INBOX".to_string(),
        f if f.contains(|c: char| c.is_control()) => return Err(bad("an unusable folder name")),
        f => f.to_string(),
    };
    Ok(Upstream {
        protocol,
        name,
        host,
        port,
        folder,
    })
}

fn host_and_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or("an unclosed [")?;
            (host, after.strip_prefix(':'))
        }
        None => match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or(format!("invalid port {p:?}"))?,
    };
    let valid =
        host.parse::<std::net::IpAddr>().is_ok() || crate::wire::address::domain_is_valid(host);
    if host.is_empty() || !valid {
        return Err(format!("invalid host {host:?}"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// `%40` and the like, as URLs write an `@` in a login name.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("a bad %-escape at {:?}", &text[i..]))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "%-escapes that are not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn urls_of_each_kind() {
        let u = parse_url("pop3s://Ann%40mail.example@POP.example", None).unwrap();
        assert_eq!(
            (u.protocol, u.name.as_str(), u.host.as_str(), u.port),
            (Protocol::Pop3s, "Ann@mail.example", "pop.example", 995)
        );
        assert_eq!(u.to_string(), "pop3s://Ann%40mail.example@pop.example:995");
        let u = parse_url("pop3://ann@10.0.0.2:1110", Some("none")).unwrap();
        assert_eq!(u.protocol, Protocol::Pop3 { stls: false });
        assert_eq!(u.port, 1110);
        let u = parse_url("imaps://ann@[::1]:1993/Lists/Club", None).unwrap();
        assert_eq!((u.host.as_str(), u.folder.as_str()), ("::1", "Lists/Club"));
        assert_eq!(u.to_string(), "imaps://ann@[::1]:1993/Lists/Club");
        assert_eq!(
            parse_url("imaps://ann@h.example", None).unwrap().folder,
            "INBOX"
        );
    }

    #[test]
    fn bad_urls_name_the_key_and_the_fault() {
        for (url, tls, expected) in [
            ("pop.example", None, "url: expected pop3s://"),
            ("http://a@b.example", None, "unknown scheme \"http\""),
            ("pop3s://b.example", None, "no login name"),
            ("pop3s://a:pw@b.example", None, "a password in the URL"),
            ("pop3s://a@b.example:0", None, "invalid port"),
            ("pop3s://a@b.example/INBOX", None, "for imaps:// only"),
            (
                "pop3s://a@b.example",
                Some("none"),
                "tls: only a pop3:// URL",
            ),
            ("pop3://a@b.example", Some("off"), "tls: expected \"none\""),
            ("pop3s://a@bad host", None, "invalid host"),
        ] {
            let e = parse_url(url, tls).unwrap_err();
            assert!(e.contains(expected), "{url}: {e}");
        }
    }

    #[test]
    fn entries_are_checked_key_by_key() {
        let c = Config::from_toml(
            "[[fetch]]\nuser = \"ann\"\nurl = \"pop3s://ann@pop.example\"\npassword = \"pw\"\n",
        )
        .unwrap();
        let entry = &c.fetch[0];
        assert!(entry.keep);
        assert_eq!(entry.every, DEFAULT_FETCH_EVERY);
        assert!(!format!("{entry:?}").contains("pw"), "no password in logs");
        for (toml, expected) in [
            ("url = \"pop3s://a@b.example\"\npassword = \"x\"", "fetch[0].user: missing"),
            ("user = \"a b\"\nurl = \"pop3s://a@b.example\"\npassword = \"x\"", "fetch[0].user"),
            ("user = \"a\"\npassword = \"x\"", "fetch[0].url: missing"),
            ("user = \"a\"\nurl = \"pop3s://a@b.example\"", "fetch[0].password: missing"),
            (
                "user = \"a\"\nurl = \"pop3s://a@b.example\"\npassword = \"x\"\npassword_file = \"/nonexistent\"",
                "not both",
            ),
            (
                "user = \"a\"\nurl = \"pop3s://a@b.example\"\npassword_file = \"/nonexistent/pw\"",
                "fetch[0].password_file: cannot read /nonexistent/pw",
            ),
            (
                "user = \"a\"\nurl = \"pop3s://a@b.example\"\npassword = \"x\\r\\nDELE 1\"",
                "fetch[0].password: a line end or NUL",
            ),
            (
                "user = \"a\"\nurl = \"pop3s://a@b.example\"\npassword = \"x\"\nevery = \"1s\"",
                "fetch[0].every: must be 10s to 1d",
            ),
            (
                "user = \"a\"\nurl = \"pop3s://a@b.example\"\npassword = \"x\"\nevery = \"often\"",
                "fetch[0].every: invalid duration",
            ),
            (
                "user = \"a\"\nurl = \"pop3s://a@b.example\"\npassword = \"x\"\nca = \"/nonexistent.pem\"",
                "fetch[0].ca: cannot read /nonexistent.pem",
            ),
            (
                "user = \"a\"\nurl = \"pop3s://a@b.example\"\npassword = \"x\"\nkeep = \"yes\"",
                "invalid type",
            ),
            (
                "user = \"a\"\nurl = \"pop3s://a@b.example\"\npasword = \"x\"",
                "unknown field `pasword`",
            ),
        ] {
            let e = Config::from_toml(&format!("[[fetch]]\n{toml}\n")).unwrap_err();
            assert!(e.contains(expected), "{toml}: {e}");
        }
        let twice = "[[fetch]]\nuser = \"a\"\nurl = \"pop3s://a@b.example\"\npassword = \"x\"\n";
        let e = Config::from_toml(&format!("{twice}{twice}")).unwrap_err();
        assert!(
            e.contains("fetch[1]: pop3s://a@b.example:995 into a is already an entry"),
            "{e}"
        );
    }
}
