//! The two value syntaxes every config key shares: durations ("30s", "4h",
//! "5d") and sizes ("64K", "500M", "2G"). The admin verbs use the same.

use serde::Deserialize;
use std::time::Duration;

/// A number or text, as a duration or size key is written in the file;
/// what a plain number counts is the key's own (see `bounds`).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Value {
    Number(i64),
    Text(String),
}

/// `300`, `"30s"`, `"10m"`, `"4h"`, `"5d"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (e.g. 90s, 10m, 4h, 5d)"))?;
    let unit_secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("invalid duration {text:?} (e.g. 90s, 10m, 4h, 5d)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(unit_secs)))
}

/// `1048576`, `512K`, `500M`, `0.5M`, `2G` (binary units; a fraction
/// with a unit, rounded down to a byte), or `0`/`unlimited`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") {
        return Ok(0);
    }
    let invalid = || format!("invalid size {text:?} (e.g. 500M, 0.5G, 2G, unlimited)");
    let number_end = t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
        .map_or(t.len(), |(i, _)| i);
    let (number, unit) = t.split_at(number_end);
    let (digits, fraction) = number.split_once('.').unwrap_or((number, ""));
    if digits.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty())
    {
        return Err(invalid());
    }
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(invalid()),
    };
    if !fraction.is_empty() && shift == 0 {
        return Err(invalid()); // no fractions of a byte
    }
    let too_large = || format!("size {text:?} is too large");
    let whole: u64 = digits.parse().map_err(|_| too_large())?;
    let whole = whole.checked_mul(1 << shift).ok_or_else(too_large)?;
    // Nine digits of fraction are plenty below a byte of a GiB.
    let fraction = &fraction[..fraction.len().min(9)];
    let part = match fraction {
        "" => 0,
        f => {
            let n: u64 = f.parse().map_err(|_| invalid())?;
            ((u128::from(n) << shift) / 10u128.pow(f.len() as u32)) as u64
        }
    };
    whole.checked_add(part).ok_or_else(too_large)
}

/// An `https://` URL as ACME uses them: host (a name or an IP literal,
/// IPv6 in brackets), port (443 unless given) and the path with its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path: String,
}

impl HttpsUrl {
    pub fn parse(text: &str) -> Result<HttpsUrl, String> {
        let invalid = |why: &str| format!("invalid URL {text:?}: {why}");
        let rest = text
            .strip_prefix("https://")
            .ok_or_else(|| invalid("expected https://"))?;
        if rest.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(invalid("spaces or non-ASCII characters"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let path = path.split('#').next().unwrap_or("/").to_string();
        if authority.contains('@') {
            return Err(invalid("user names are not allowed"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (ip, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed ["))?;
                ip.parse::<std::net::Ipv6Addr>()
                    .map_err(|_| invalid("bad IPv6 address"))?;
                (ip, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            None => 443,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| invalid("bad port"))?,
        };
        let host = host.to_ascii_lowercase();
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        if !is_ip && !crate::wire::address::domain_is_valid(&host) {
            return Err(invalid("bad host name"));
        }
        Ok(HttpsUrl { host, port, path })
    }

    /// The host as a `Host:` field gives it (with the port unless 443).
    pub fn authority(&self) -> String {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        match self.port {
            443 => host,
            port => format!("{host}:{port}"),
        }
    }
}

impl std::fmt::Display for HttpsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls() {
        let u = HttpsUrl::parse("https://acme-v02.api.letsencrypt.org/directory").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("acme-v02.api.letsencrypt.org", 443, "/directory")
        );
        assert_eq!(
            u.to_string(),
            "https://acme-v02.api.letsencrypt.org/directory"
        );
        let u = HttpsUrl::parse("https://127.0.0.1:14000").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 14000, "/")
        );
        let u = HttpsUrl::parse("https://[::1]:8443/dir?x=1#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8443, "/dir?x=1")
        );
        assert_eq!(u.authority(), "[::1]:8443");
        let u = HttpsUrl::parse("https://Acme.Test:14000?q").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("acme.test", "/?q"));
        for bad in [
            "http://acme.test/dir",
            "acme.test",
            "https://",
            "https://acme.test:0/",
            "https://acme.test:99999/",
            "https://user@acme.test/",
            "https://acme test/",
            "https://[::1/",
            "https://-bad-.test/",
        ] {
            assert!(HttpsUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("500m").unwrap(), 500 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("unlimited").unwrap(), 0);
        assert_eq!(parse_size("0.5M").unwrap(), 512 << 10);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("0.001k").unwrap(), 1);
        for bad in [
            "",
            "M",
            "1.5",
            ".5M",
            "1.M",
            "1.2.3M",
            "12X",
            "1,5M",
            "99999999999999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
