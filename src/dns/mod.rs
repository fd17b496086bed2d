//! A minimal DNS client for DNS blocklists, for finding the mail servers
//! of a domain (MX, then A/AAAA), and for mail authentication (TXT, PTR):
//! over UDP with EDNS0 (without it for a server that does not know it),
//! sent again each [`DNS_UDP_RESEND`] while unanswered, and again over TCP
//! when the answer is truncated. The messages are built
//! and read in [`message`], answers remembered in [`cache`]; this is the
//! thin layer that moves them. [`Resolver`] is the handle to share (in an
//! `Rc`): a resolver address, a time limit per question, and the cache.
//! The resolver address is configurable so tests use a local responder and
//! never the system's.

pub mod cache;
pub mod message;

use crate::limits::{DNS_QUERY_TIMEOUT, DNS_UDP_RESEND};
use cache::Cache;
use message::{
    parse_answer, query, query_without_edns, tcp_frame, tcp_length, valid_name, Answer, DnsError,
    RCODE_FORMAT_ERROR, TYPE_A, TYPE_AAAA, TYPE_MX,
};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpStream, UdpSocket};
use smol::{future, Timer};
use std::cell::RefCell;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Instant;
use std::time::{Duration, SystemTime};

/// The first `nameserver` of /etc/resolv.conf, on port 53. The file is
/// read again only when it changes (DHCP may rewrite it).
pub fn system_resolver() -> Option<SocketAddr> {
    thread_local! {
        static SYSTEM: ResolvConf = ResolvConf::new("/etc/resolv.conf");
    }
    SYSTEM.with(ResolvConf::resolver)
}

/// A resolv.conf and what was read from it, by modification time.
pub struct ResolvConf {
    path: PathBuf,
    read: RefCell<Option<(SystemTime, Option<SocketAddr>)>>,
    reads: std::cell::Cell<u64>,
}

impl ResolvConf {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ResolvConf {
            path: path.into(),
            read: RefCell::new(None),
            reads: std::cell::Cell::new(0),
        }
    }

    /// Its first nameserver, read again only if the file changed.
    pub fn resolver(&self) -> Option<SocketAddr> {
        let Ok(modified) = std::fs::metadata(&self.path).and_then(|m| m.modified()) else {
            *self.read.borrow_mut() = None;
            return None;
        };
        if let Some((seen, resolver)) = *self.read.borrow() {
            if seen == modified {
                return resolver;
            }
        }
        let resolver = first_nameserver(&self.path);
        self.reads.set(self.reads.get() + 1);
        *self.read.borrow_mut() = Some((modified, resolver));
        resolver
    }

    /// How many times the file was read.
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }
}

fn first_nameserver(path: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let addr = line.trim().strip_prefix("nameserver")?.trim();
        format!("{addr}:53")
            .parse()
            .or_else(|_| format!("[{addr}]:53").parse())
            .ok()
    })
}

/// Why a question got no answer. Each is temporary as far as mail is
/// concerned (SPF's temperror) except [`LookupError::InvalidName`], which
/// no server would ever answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The name cannot be put in a query (an empty label, one over 63
    /// bytes, over 255 in all).
    InvalidName,
    /// No resolver is configured and /etc/resolv.conf names none.
    NoResolver,
    /// No answer within the time limit.
    TimedOut,
    /// The resolver failed (SERVFAIL, REFUSED...), answered nonsense, or
    /// could not be reached.
    Failed(String),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::InvalidName => write!(f, "invalid name"),
            LookupError::NoResolver => write!(f, "no DNS resolver configured"),
            LookupError::TimedOut => write!(f, "no answer in time"),
            LookupError::Failed(why) => write!(f, "{why}"),
        }
    }
}

impl From<LookupError> for String {
    fn from(e: LookupError) -> String {
        e.to_string()
    }
}

/// Asks `resolver` for `name`'s records of type `kind`, over UDP and, if
/// the answer is truncated, over TCP; waiting at most `timeout` in all.
pub async fn lookup(
    resolver: SocketAddr,
    name: &str,
    kind: u16,
    timeout: Duration,
) -> Result<Answer, LookupError> {
    let id = query_id();
    let invalid = |_| LookupError::InvalidName;
    let mut packet = query(id, name, kind).map_err(invalid)?;
    let exchange = async {
        let mut outcome = exchange_udp(resolver, id, &packet).await?;
        if outcome == Err(DnsError::ServerFailure(RCODE_FORMAT_ERROR)) {
            packet = query_without_edns(id, name, kind).map_err(invalid)?;
            outcome = exchange_udp(resolver, id, &packet).await?;
        }
        match outcome {
            Ok(answer) => Ok(answer),
            Err(DnsError::Truncated) => exchange_tcp(resolver, id, &packet).await,
            Err(DnsError::ServerFailure(code)) => Err(LookupError::Failed(format!(
                "resolver failed (rcode {code})"
            ))),
            Err(DnsError::Malformed) => Err(LookupError::Failed("malformed answer".into())),
        }
    };
    future::or(exchange, async {
        Timer::after(timeout).await;
        Err(LookupError::TimedOut)
    })
    .await
}

/// The DNS client to share among sessions (in an `Rc`): where to ask, how
/// long one question may take, and the answers remembered.
pub struct Resolver {
    server: Option<SocketAddr>,
    timeout: Duration,
    cache: RefCell<Cache>,
}

impl Resolver {
    /// Asks `server` (config `dns_resolver`), or when `None` the first
    /// nameserver of /etc/resolv.conf as it is at each question; each
    /// question may take [`DNS_QUERY_TIMEOUT`].
    pub fn new(server: Option<SocketAddr>) -> Self {
        Resolver {
            server,
            timeout: DNS_QUERY_TIMEOUT,
            cache: RefCell::new(Cache::default()),
        }
    }

    /// The same with another time limit per question.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `name`'s records of type `kind`: remembered, or asked and then
    /// remembered for their TTL. Failures are not remembered.
    pub async fn lookup(&self, name: &str, kind: u16) -> Result<Answer, LookupError> {
        if !valid_name(name) {
            return Err(LookupError::InvalidName);
        }
        if let Some(answer) = self.cache.borrow().get(name, kind, Instant::now()) {
            return Ok(answer.clone());
        }
        let server = self
            .server
            .or_else(system_resolver)
            .ok_or(LookupError::NoResolver)?;
        let answer = lookup(server, name, kind, self.timeout).await?;
        let now = Instant::now();
        self.cache
            .borrow_mut()
            .insert(name, kind, answer.clone(), now);
        Ok(answer)
    }

    /// How many answers are remembered.
    pub fn cached(&self) -> usize {
        self.cache.borrow().len()
    }
}

/// One query over UDP: the answer, or what the server said instead
/// (truncated, or failed); `Err` when nothing could be exchanged.
async fn exchange_udp(
    resolver: SocketAddr,
    id: u16,
    packet: &[u8],
) -> Result<Result<Answer, DnsError>, LookupError> {
    let io = |e: std::io::Error| LookupError::Failed(e.to_string());
    let bind: SocketAddr = if resolver.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal address");
    let socket = UdpSocket::bind(bind).await.map_err(io)?;
    socket.connect(resolver).await.map_err(io)?;
    socket.send(packet).await.map_err(io)?;
    // Room beyond what was offered, for servers that send more anyway.
    let mut buf = [0u8; 4096];
    loop {
        let received = future::or(async { Some(socket.recv(&mut buf).await) }, async {
            Timer::after(DNS_UDP_RESEND).await;
            None
        })
        .await;
        let Some(received) = received else {
            // A datagram may have been lost: ask again, with the same id.
            socket.send(packet).await.map_err(io)?;
            continue;
        };
        let n = received.map_err(io)?;
        match parse_answer(id, &buf[..n]) {
            // Not ours (a late answer to someone else): keep waiting.
            Err(DnsError::Malformed) => continue,
            outcome => return Ok(outcome),
        }
    }
}

/// One query over TCP, each message behind its 2-byte length.
async fn exchange_tcp(resolver: SocketAddr, id: u16, packet: &[u8]) -> Result<Answer, LookupError> {
    let tcp_error = |e: std::io::Error| LookupError::Failed(format!("over TCP: {e}"));
    let mut stream = TcpStream::connect(resolver).await.map_err(tcp_error)?;
    stream
        .write_all(&tcp_frame(packet))
        .await
        .map_err(tcp_error)?;
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).await.map_err(tcp_error)?;
    let mut msg = vec![0u8; tcp_length(prefix)];
    stream.read_exact(&mut msg).await.map_err(tcp_error)?;
    match parse_answer(id, &msg) {
        Ok(answer) => Ok(answer),
        Err(DnsError::ServerFailure(code)) => Err(LookupError::Failed(format!(
            "resolver failed (rcode {code})"
        ))),
        Err(_) => Err(LookupError::Failed("malformed answer over TCP".into())),
    }
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
        Answer::NoSuchName { .. } => {
            Ok(MailHosts::NoMail(format!("domain {domain} does not exist")))
        }
        answer => {
            let mut mx: Vec<(u16, String)> = answer
                .mx()
                .into_iter()
                .map(|(pref, host)| (pref, host.to_string()))
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
    if let Ok(v6) = lookup(resolver, host, TYPE_AAAA, LOOKUP_TIMEOUT).await {
        found.extend(v6.ipv6().into_iter().map(IpAddr::V6));
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
    fn resolv_conf_is_read_again_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        let conf = ResolvConf::new(&path);
        assert_eq!(conf.resolver(), None, "no file yet");
        std::fs::write(&path, "# comment\nnameserver 192.0.2.53\n").unwrap();
        let first: SocketAddr = "192.0.2.53:53".parse().unwrap();
        assert_eq!(conf.resolver(), Some(first));
        assert_eq!(conf.resolver(), Some(first));
        assert_eq!(conf.reads(), 1);
        std::fs::write(&path, "nameserver 2001:db8::53\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(conf.resolver(), Some("[2001:db8::53]:53".parse().unwrap()));
        assert_eq!(conf.reads(), 2);
    }

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
