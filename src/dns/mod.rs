//! A minimal DNS client over UDP for DNS blocklists and for finding the
//! mail servers of a domain (MX, then A/AAAA). The resolver address is
//! configurable so tests use a local responder and never the system's.

pub mod message;

use message::{parse_answer, query, Answer, DnsError, Record, TYPE_A, TYPE_AAAA, TYPE_MX};
use smol::net::UdpSocket;
use smol::{future, Timer};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The first `nameserver` of /etc/resolv.conf, on port 53.
pub fn system_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|line| {
        let addr = line.trim().strip_prefix("nameserver")?.trim();
        format!("{addr}:53")
            .parse()
            .or_else(|_| format!("[{addr}]:53").parse())
            .ok()
    })
}

/// Asks `resolver` for `name`'s records of type `kind`, waiting at most
/// `timeout`.
pub async fn lookup(
    resolver: SocketAddr,
    name: &str,
    kind: u16,
    timeout: Duration,
) -> Result<Answer, String> {
    let id = query_id();
    let packet = query(id, name, kind).map_err(|_| format!("invalid name {name:?}"))?;
    let bind: SocketAddr = if resolver.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal address");
    let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    socket.connect(resolver).await.map_err(|e| e.to_string())?;
    socket.send(&packet).await.map_err(|e| e.to_string())?;
    let exchange = async {
        let mut buf = [0u8; 1232];
        loop {
            let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
            match parse_answer(id, &buf[..n]) {
                // Not ours (a late answer to someone else): keep waiting.
                Err(DnsError::Malformed) => continue,
                Err(DnsError::ServerFailure(code)) => {
                    return Err(format!("resolver failed (rcode {code})"))
                }
                Ok(answer) => return Ok(answer),
            }
        }
    };
    future::or(exchange, async {
        Timer::after(timeout).await;
        Err(format!("no answer from {resolver} within {timeout:?}"))
    })
    .await
}

/// A query id that is hard to guess (answers are matched on it).
fn query_id() -> u16 {
    let mut bytes = [0u8; 2];
    let rng = ring::rand::SystemRandom::new();
    let _ = ring::rand::SecureRandom::fill(&rng, &mut bytes);
    u16::from_ne_bytes(bytes)
}

/// The name a blocklist is asked about: the address reversed, under `zone`
/// (RFC 5782: octets for IPv4, nibbles for IPv6).
pub fn blocklist_name(ip: std::net::IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}")
        }
        std::net::IpAddr::V6(v6) => {
            let mut name = String::with_capacity(64 + zone.len());
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            name + zone
        }
    }
}

/// Whether `ip` is listed in `zone` (an answer in 127.0.0.0/8). Errors
/// and timeouts count as not listed: a broken list must not stop mail.
pub async fn listed(resolver: SocketAddr, ip: std::net::IpAddr, zone: &str) -> bool {
    let name = blocklist_name(ip, zone);
    match lookup(resolver, &name, TYPE_A, Duration::from_secs(3)).await {
        Ok(answer) => answer.ipv4().iter().any(|a| a.octets()[0] == 127),
        Err(e) => {
            log::warn!("blocklist {zone}: {e}");
            false
        }
    }
}

/// Where mail for a domain goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailHosts {
    /// Host names in the order to try them (MX preference; the domain
    /// itself when it has no MX, RFC 5321 §5.1).
    Hosts(Vec<String>),
    /// The domain does not exist, or says it takes no mail (null MX,
    /// RFC 7505): a permanent failure.
    NoMail(String),
}

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The mail hosts of `domain`. `Err` is a temporary failure.
pub async fn mail_hosts(resolver: SocketAddr, domain: &str) -> Result<MailHosts, String> {
    match lookup(resolver, domain, TYPE_MX, LOOKUP_TIMEOUT).await? {
        Answer::NoSuchName => Ok(MailHosts::NoMail(format!("domain {domain} does not exist"))),
        Answer::Records(records) => {
            let mut mx: Vec<(u16, String)> = records
                .into_iter()
                .filter_map(|r| match r {
                    Record::Mx(pref, host) => Some((pref, host)),
                    _ => None,
                })
                .collect();
            if mx.is_empty() {
                return Ok(MailHosts::Hosts(vec![domain.to_string()]));
            }
            if mx.iter().any(|(_, host)| host.is_empty()) {
                return Ok(MailHosts::NoMail(format!(
                    "domain {domain} accepts no mail (null MX)"
                )));
            }
            // Stable: equal preferences keep the resolver's order.
            mx.sort_by_key(|(pref, _)| *pref);
            Ok(MailHosts::Hosts(mx.into_iter().map(|(_, h)| h).collect()))
        }
    }
}

/// The addresses of `host`: IPv4 first (what small home networks reach),
/// then IPv6. A literal address is returned as is.
pub async fn host_addresses(resolver: SocketAddr, host: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![ip]);
    }
    let v4 = lookup(resolver, host, TYPE_A, LOOKUP_TIMEOUT).await?;
    let mut found: Vec<IpAddr> = v4.ipv4().into_iter().map(IpAddr::V4).collect();
    if let Ok(Answer::Records(records)) = lookup(resolver, host, TYPE_AAAA, LOOKUP_TIMEOUT).await {
        found.extend(records.into_iter().filter_map(|r| match r {
            Record::Aaaa(a) => Some(IpAddr::V6(a)),
            _ => None,
        }));
    }
    if found.is_empty() {
        return Err(format!("host {host} has no address"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocklist_names() {
        assert_eq!(
            blocklist_name("192.0.2.99".parse().unwrap(), "bl.test."),
            "99.2.0.192.bl.test"
        );
        assert_eq!(
            blocklist_name("::ffff:192.0.2.1".parse().unwrap(), "bl.test"),
            "1.2.0.192.bl.test"
        );
        let v6 = blocklist_name("2001:db8::1".parse().unwrap(), "bl.test");
        assert!(v6.starts_with("1.0.0.0.0.0.0.0"), "{v6}");
        assert!(v6.ends_with("8.b.d.0.1.0.0.2.bl.test"), "{v6}");
    }
}
