//! Settings: built-in defaults, overridden by a TOML file, overridden by
//! command-line flags. `postbox.toml.example` documents every key.

use crate::limits::*;
use crate::policy::relay::Cidr;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DATA_DIR: &str = "postbox-data";
pub const DEFAULT_SMTP: &str = "127.0.0.1:2525";
pub const DEFAULT_POP3: &str = "127.0.0.1:2110";
pub const DEFAULT_DOMAIN: &str = "localhost";
pub const DEFAULT_SUBMISSION: &str = "127.0.0.1:2587";
pub const DEFAULT_SUBMISSIONS: &str = "127.0.0.1:2465";
pub const DEFAULT_POP3S: &str = "127.0.0.1:2995";

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Argon2id hash of the admin console's password (the appliance);
    /// `None`: the console asks for one on first use and keeps it in the data dir.
    pub admin_password_hash: Option<String>,
    /// After binding its ports as root, `serve` continues as this user.
    pub run_as: Option<String>,
    pub hostname: String,
    /// Served domains; the first is the default for bare user names.
    pub domains: Vec<String>,
    /// The user (`local` or `local@domain`) who receives `postmaster@` mail.
    pub postmaster: Option<String>,
    pub log_level: log::LevelFilter,
    pub smtp: SmtpConfig,
    pub pop3: Pop3Config,
    /// Submission with STARTTLS (587); `None` when turned off.
    pub submission: Option<SocketAddr>,
    /// Submission over implicit TLS (465).
    pub submissions: Option<SocketAddr>,
    /// POP3 over implicit TLS (995).
    pub pop3s: Option<SocketAddr>,
    /// Sessions each of the last three listeners may hold (port 25's and
    /// 110's are `smtp.max_sessions` and `pop3.max_sessions`).
    pub listener_sessions: ListenerSessions,
    pub tls: TlsConfig,
    /// Clients that may relay without logging in.
    pub relay_from: Vec<Cidr>,
    /// Lets clients on 127.0.0.1/::1 log in without TLS.
    pub allow_plaintext_on_loopback: bool,
    /// A logged-in member's MAIL FROM and From: must be their addresses.
    pub from_must_match: bool,
    pub limits: LimitsConfig,
    pub quota: QuotaConfig,
    /// DNS blocklist zones checked for strangers on port 25 (empty: off).
    pub dnsbl: Vec<String>,
    /// Where DNS questions go (blocklists); default: /etc/resolv.conf's first.
    pub dns_resolver: Option<SocketAddr>,
    /// Greylisting settings; `None` when it is off.
    pub greylist: Option<crate::policy::greylist::Settings>,
    pub spam: crate::spam::Settings,
    pub queue: QueueConfig,
    /// The aliases file (/etc/aliases syntax); default DATA/aliases.
    pub aliases: PathBuf,
}

/// How mail for other domains leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Relay everything through this server; `None`: deliver direct to MX.
    pub smarthost: Option<Smarthost>,
    /// A delay notice goes to the sender after this long (`queue_warn`).
    pub warn: Duration,
    /// Undelivered mail is returned to the sender after this long
    /// (`queue_return`).
    pub expire: Duration,
    /// The first retry waits this long; each next one twice as long...
    pub retry_first: Duration,
    /// ...up to this.
    pub retry_max: Duration,
    /// Deliveries running at once, in all.
    pub max_deliveries: usize,
    /// Deliveries running at once to one destination domain.
    pub max_per_destination: usize,
    /// The port of MX hosts (25; other values only for tests and odd networks).
    pub smtp_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smarthost {
    pub host: String,
    pub port: u16,
    /// Login (AUTH PLAIN, or LOGIN when only that is offered).
    pub login: Option<(String, String)>,
    pub tls: SmarthostTls,
    /// PEM certificates trusted for the smarthost besides the built-in
    /// web roots (a private CA, or the server's own certificate).
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmarthostTls {
    /// STARTTLS, required, certificate verified (default; port 587).
    StartTls,
    /// TLS from the first byte (default on port 465).
    Implicit,
    /// Plain text: only for a smarthost on a trusted local network.
    None,
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

/// Mailbox size limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaConfig {
    /// Bytes per mailbox unless `user quota` says otherwise; 0: unlimited.
    pub default: u64,
    /// Over quota is a temporary failure (452 4.2.2), not 552 5.2.2.
    pub temporary: bool,
    /// A warning message is delivered when a mailbox passes this share.
    pub warn_percent: u8,
}

/// Limits per client address, over all listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    pub sessions_per_address: usize,
    /// New connections per address per minute; 0 turns the limit off.
    pub connections_per_minute: u32,
    /// Failed logins from an address before it is refused for a while.
    pub login_failures: u32,
    /// Time a client has to finish a TLS handshake.
    pub tls_handshake_timeout: Duration,
}

/// Session budgets of the members' TLS and submission listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSessions {
    pub submission: usize,
    pub submissions: usize,
    pub pop3s: usize,
}

#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// PEM files; both `None` means the self-signed one in the data dir.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub listen: SocketAddr,
    pub max_sessions: usize,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_errors: u32,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// Pause before greeting strangers on port 25; one who talks during it
    /// is a spam engine (postscreen's pregreet test). Zero: off.
    pub greet_delay: Duration,
}

#[derive(Debug, Clone)]
pub struct Pop3Config {
    pub listen: SocketAddr,
    pub max_sessions: usize,
    /// Client errors before the session is closed.
    pub max_errors: u32,
    pub timeout: Duration,
}

/// Values given on the command line; each wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub smtp: Option<SocketAddr>,
    pub pop3: Option<SocketAddr>,
    pub hostname: Option<String>,
    pub domains: Vec<String>,
    pub log_level: Option<log::LevelFilter>,
    pub submission: Option<Listen>,
    pub submissions: Option<Listen>,
    pub pop3s: Option<Listen>,
    pub allow_plaintext_on_loopback: bool,
    pub run_as: Option<String>,
}

/// A listener's address, or `None` for "off".
pub type Listen = Option<SocketAddr>;

/// `off` or an address.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("invalid listen address {text:?} (e.g. 0.0.0.0:587, or off)"))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    admin_password_hash: Option<String>,
    /// Read by the appliance's init (address, gateway, time servers);
    /// checked here so a typo is reported, not silently ignored.
    #[serde(default)]
    network: NetworkFile,
    hostname: Option<String>,
    domains: Option<Vec<String>>,
    postmaster: Option<String>,
    log_level: Option<String>,
    #[serde(default)]
    smtp: SmtpFile,
    #[serde(default)]
    pop3: Pop3File,
    #[serde(default)]
    submission: ListenFile,
    #[serde(default)]
    submissions: ListenFile,
    #[serde(default)]
    pop3s: ListenFile,
    #[serde(default)]
    tls: TlsFile,
    #[serde(default)]
    auth: AuthFile,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    quota: QuotaFile,
    #[serde(default)]
    greylist: GreylistFile,
    relay_from: Option<Vec<String>>,
    dns_resolver: Option<SocketAddr>,
    #[serde(default)]
    dnsbl: DnsblFile,
    #[serde(default)]
    spam: SpamFile,
    smarthost: Option<String>,
    smarthost_user: Option<String>,
    smarthost_password: Option<String>,
    smarthost_tls: Option<String>,
    smarthost_ca: Option<PathBuf>,
    queue_warn: Option<DurationValue>,
    queue_return: Option<DurationValue>,
    aliases: Option<PathBuf>,
    #[serde(default)]
    queue: QueueFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct QueueFile {
    retry_first: Option<DurationValue>,
    retry_max: Option<DurationValue>,
    max_deliveries: Option<i64>,
    max_per_destination: Option<i64>,
    smtp_port: Option<i64>,
}

/// Seconds, or text with a unit (`"4h"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(i64),
    Text(String),
}

/// What a number in the file counts, for its range and its error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Percent,
    /// Written as a number of bytes or as text (`"500M"`).
    Bytes,
    /// Written as a number of seconds or as text (`"4h"`).
    Seconds,
    Hours,
    Days,
}

/// The allowed values of one numeric key.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub key: &'static str,
    pub min: u64,
    pub max: u64,
    pub unit: Unit,
}

const fn bound(key: &'static str, min: u64, max: u64, unit: Unit) -> Bound {
    Bound {
        key,
        min,
        max,
        unit,
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86400;
const KIB: u64 = 1024;
const GIB: u64 = 1 << 30;

/// Every number a config file may set, with its range: each is checked
/// here, so no value can overflow a clock or a size later. The example
/// file states the same ranges (a test compares them).
pub const BOUNDS: &[Bound] = &[
    bound("smtp.max_sessions", 1, 10_000, Unit::Count),
    bound("smtp.max_message_size", KIB, GIB, Unit::Bytes),
    bound("smtp.max_recipients", 1, 10_000, Unit::Count),
    bound("smtp.max_errors", 1, 1000, Unit::Count),
    bound("smtp.command_timeout", 1, HOUR, Unit::Seconds),
    bound("smtp.data_timeout", 1, HOUR, Unit::Seconds),
    bound("smtp.greet_delay", 0, MINUTE, Unit::Seconds),
    bound("pop3.max_sessions", 1, 10_000, Unit::Count),
    bound("pop3.max_errors", 1, 1000, Unit::Count),
    bound("pop3.timeout", 1, HOUR, Unit::Seconds),
    bound("limits.sessions_per_address", 1, 10_000, Unit::Count),
    bound("limits.connections_per_minute", 0, 100_000, Unit::Count),
    bound("limits.login_failures", 1, 1000, Unit::Count),
    bound("limits.tls_handshake_timeout", 1, 5 * MINUTE, Unit::Seconds),
    bound("submission.max_sessions", 1, 10_000, Unit::Count),
    bound("submissions.max_sessions", 1, 10_000, Unit::Count),
    bound("pop3s.max_sessions", 1, 10_000, Unit::Count),
    bound("quota.default", 0, 16384 * GIB, Unit::Bytes),
    bound("quota.warn_percent", 1, 100, Unit::Percent),
    bound("greylist.delay", 0, DAY, Unit::Seconds),
    bound("greylist.retry_window_hours", 1, 720, Unit::Hours),
    bound("greylist.allow_days", 1, 365, Unit::Days),
    bound("spam.recipient_limit", 0, 1000, Unit::Count),
    bound("queue_warn", 1, 30 * DAY, Unit::Seconds),
    bound("queue_return", 1, 30 * DAY, Unit::Seconds),
    bound("queue.retry_first", 1, DAY, Unit::Seconds),
    bound("queue.retry_max", 1, DAY, Unit::Seconds),
    bound("queue.max_deliveries", 1, 100, Unit::Count),
    bound("queue.max_per_destination", 1, 100, Unit::Count),
    bound("queue.smtp_port", 1, 65535, Unit::Count),
];

impl Bound {
    pub fn of(key: &str) -> &'static Bound {
        BOUNDS
            .iter()
            .find(|b| b.key == key)
            .unwrap_or_else(|| panic!("no range for config key {key}"))
    }

    /// `1 to 10000`, `1s to 1h`, `1K to 1G`, as the example file says it.
    pub fn range(&self) -> String {
        let show = |n: u64| match self.unit {
            Unit::Seconds => human(n, &[(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (1, "s")]),
            Unit::Bytes => human(n, &[(GIB, "G"), (1 << 20, "M"), (KIB, "K")]),
            _ => n.to_string(),
        };
        format!("{} to {}", show(self.min), show(self.max))
    }

    /// The value when it is in range; otherwise an error naming the key,
    /// the range and what was given.
    fn check(&self, value: i64, given: impl std::fmt::Display) -> Result<u64, String> {
        match u64::try_from(value) {
            Ok(n) if (self.min..=self.max).contains(&n) => Ok(n),
            _ => {
                let unit = match self.unit {
                    Unit::Hours => " hours",
                    Unit::Days => " days",
                    Unit::Percent => " percent",
                    _ => "",
                };
                Err(format!(
                    "{} must be {}{unit}, not {given}",
                    self.key,
                    self.range()
                ))
            }
        }
    }

    fn number<T: TryFrom<u64>>(&self, value: Option<i64>, default: T) -> Result<T, String> {
        match value {
            None => Ok(default),
            Some(n) => {
                let n = self.check(n, n)?;
                // Every maximum fits the field's type.
                Ok(T::try_from(n).unwrap_or_else(|_| unreachable!("{} range", self.key)))
            }
        }
    }

    fn duration(
        &self,
        value: &Option<DurationValue>,
        default: Duration,
    ) -> Result<Duration, String> {
        let seconds = match value {
            None => return Ok(default),
            Some(DurationValue::Seconds(n)) => self.check(*n, format_args!("{n} seconds"))?,
            Some(DurationValue::Text(t)) => {
                let d = parse_duration(t).map_err(|e| format!("{}: {e}", self.key))?;
                let n = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                self.check(n, format_args!("{t:?}"))?
            }
        };
        Ok(Duration::from_secs(seconds))
    }

    fn size(&self, value: &Option<SizeValue>, default: u64) -> Result<u64, String> {
        match value {
            None => Ok(default),
            Some(SizeValue::Bytes(n)) => self.check(*n, format_args!("{n} bytes")),
            Some(SizeValue::Text(t)) => {
                let n =
                    crate::store::quota::parse_size(t).map_err(|e| format!("{}: {e}", self.key))?;
                self.check(i64::try_from(n).unwrap_or(i64::MAX), format_args!("{t:?}"))
            }
        }
    }
}

/// `n` in the largest unit that divides it evenly (`3600` -> `1h`).
fn human(n: u64, units: &[(u64, &str)]) -> String {
    if n == 0 {
        return "0".into();
    }
    match units.iter().find(|(size, _)| n.is_multiple_of(*size)) {
        Some((size, suffix)) => format!("{}{suffix}", n / size),
        None => n.to_string(),
    }
}

fn smarthost(file: &FileConfig) -> Result<Option<Smarthost>, String> {
    let Some(text) = file.smarthost.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let (host, port) = match text.trim().rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("smarthost: invalid port in {text:?}"))?,
        ),
        None => (text.trim(), 587),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("smarthost: no host in {text:?}"));
    }
    let tls = match file.smarthost_tls.as_deref() {
        None if port == 465 => SmarthostTls::Implicit,
        None | Some("starttls") => SmarthostTls::StartTls,
        Some("implicit") => SmarthostTls::Implicit,
        Some("none") => SmarthostTls::None,
        Some(other) => {
            return Err(format!(
                "smarthost_tls: expected \"starttls\", \"implicit\" or \"none\", not {other:?}"
            ))
        }
    };
    let login = match (&file.smarthost_user, &file.smarthost_password) {
        (Some(u), Some(p)) => Some((u.clone(), p.clone())),
        (None, None) => None,
        _ => return Err("smarthost_user and smarthost_password go together".into()),
    };
    Ok(Some(Smarthost {
        host: host.to_string(),
        port,
        login,
        tls,
        ca: file.smarthost_ca.clone(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    mode: Option<String>,
    interface: Option<String>,
    address: Option<String>,
    gateway: Option<String>,
    dns: Option<String>,
    ntp: Option<String>,
}

impl NetworkFile {
    fn check(&self) -> Result<(), String> {
        match self.mode.as_deref() {
            None | Some("dhcp") => {}
            Some("static") => {
                let address = self.address.as_deref().unwrap_or("");
                let valid = address.split_once('/').is_some_and(|(ip, len)| {
                    ip.parse::<std::net::IpAddr>().is_ok()
                        && len.parse::<u8>().is_ok_and(|n| n <= 128)
                });
                if !valid {
                    return Err(format!(
                        "network.address: expected an address with prefix length like \"192.168.1.20/24\", not {address:?}"
                    ));
                }
            }
            Some(other) => {
                return Err(format!(
                    "network.mode: expected \"dhcp\" or \"static\", not {other:?}"
                ))
            }
        }
        if let Some(gateway) = &self.gateway {
            gateway
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("network.gateway: invalid address {gateway:?}"))?;
        }
        for server in self.dns.as_deref().unwrap_or("").split_whitespace() {
            server
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("network.dns: invalid address {server:?}"))?;
        }
        let words = |v: &Option<String>| v.as_deref().unwrap_or("").split_whitespace().count();
        if words(&self.interface) > 1 || words(&self.ntp) > 8 {
            return Err("network.interface is one name; network.ntp at most 8 servers".into());
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SpamFile {
    recipient_limit: Option<i64>,
    action: Option<String>,
    subject_tag: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DnsblFile {
    zones: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GreylistFile {
    enabled: Option<bool>,
    delay: Option<DurationValue>,
    retry_window_hours: Option<i64>,
    allow_days: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct QuotaFile {
    default: Option<SizeValue>,
    temporary: Option<bool>,
    warn_percent: Option<i64>,
}

/// A size as bytes or as text (`"500M"`, `"unlimited"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(i64),
    Text(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    sessions_per_address: Option<i64>,
    connections_per_minute: Option<i64>,
    login_failures: Option<i64>,
    tls_handshake_timeout: Option<DurationValue>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListenFile {
    listen: Option<String>,
    max_sessions: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    allow_plaintext_on_loopback: Option<bool>,
    from_must_match: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SmtpFile {
    listen: Option<SocketAddr>,
    max_sessions: Option<i64>,
    max_message_size: Option<SizeValue>,
    max_recipients: Option<i64>,
    max_errors: Option<i64>,
    command_timeout: Option<DurationValue>,
    data_timeout: Option<DurationValue>,
    greet_delay: Option<DurationValue>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Pop3File {
    listen: Option<SocketAddr>,
    max_sessions: Option<i64>,
    max_errors: Option<i64>,
    timeout: Option<DurationValue>,
}

pub fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    s.parse()
        .map_err(|_| format!("invalid log level {s:?} (off, error, warn, info, debug, trace)"))
}

/// The machine's name, for greetings and Received: headers.
fn os_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Config {
    pub fn load(o: &Overrides) -> Result<Config, String> {
        let file = match &o.config_file {
            Some(path) => parse_file(path)?,
            None => FileConfig::default(),
        };
        Config::build(file, o)
    }

    /// Settings from TOML text alone (no flags), as a config file gives them.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        Config::build(parse_text(text)?, &Overrides::default())
    }

    fn build(file: FileConfig, o: &Overrides) -> Result<Config, String> {
        let b = Bound::of;
        let queue = QueueConfig {
            smarthost: smarthost(&file)?,
            warn: b("queue_warn").duration(&file.queue_warn, Duration::from_secs(4 * HOUR))?,
            expire: b("queue_return").duration(&file.queue_return, Duration::from_secs(5 * DAY))?,
            retry_first: b("queue.retry_first")
                .duration(&file.queue.retry_first, Duration::from_secs(5 * MINUTE))?,
            retry_max: b("queue.retry_max")
                .duration(&file.queue.retry_max, Duration::from_secs(2 * HOUR))?,
            max_deliveries: b("queue.max_deliveries").number(file.queue.max_deliveries, 8)?,
            max_per_destination: b("queue.max_per_destination")
                .number(file.queue.max_per_destination, 2)?,
            smtp_port: b("queue.smtp_port").number(file.queue.smtp_port, 25)?,
        };
        let mut domains = file
            .domains
            .unwrap_or_else(|| vec![DEFAULT_DOMAIN.to_string()]);
        domains.extend(o.domains.iter().cloned());
        let mut seen = Vec::new();
        for d in domains {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if !crate::wire::address::domain_is_valid(&d) || d.starts_with('[') {
                return Err(format!("invalid domain {d:?}"));
            }
            if !seen.contains(&d) {
                seen.push(d);
            }
        }
        if seen.is_empty() {
            return Err("at least one domain must be configured".into());
        }
        let log_level = match (o.log_level, &file.log_level) {
            (Some(level), _) => level,
            (None, Some(s)) => parse_level(s)?,
            (None, None) => std::env::var("RUST_LOG")
                .ok()
                .and_then(|s| parse_level(&s).ok())
                .unwrap_or(log::LevelFilter::Info),
        };
        let smtp = SmtpConfig {
            listen: o
                .smtp
                .or(file.smtp.listen)
                .unwrap_or_else(|| DEFAULT_SMTP.parse().unwrap()),
            max_sessions: b("smtp.max_sessions")
                .number(file.smtp.max_sessions, DEFAULT_MAX_SESSIONS)?,
            max_message_size: b("smtp.max_message_size")
                .size(&file.smtp.max_message_size, DEFAULT_MAX_MESSAGE_SIZE)?,
            max_recipients: b("smtp.max_recipients")
                .number(file.smtp.max_recipients, DEFAULT_MAX_RECIPIENTS)?,
            max_errors: b("smtp.max_errors").number(file.smtp.max_errors, DEFAULT_MAX_ERRORS)?,
            command_timeout: b("smtp.command_timeout")
                .duration(&file.smtp.command_timeout, DEFAULT_COMMAND_TIMEOUT)?,
            data_timeout: b("smtp.data_timeout")
                .duration(&file.smtp.data_timeout, DEFAULT_DATA_TIMEOUT)?,
            greet_delay: b("smtp.greet_delay").duration(&file.smtp.greet_delay, Duration::ZERO)?,
        };
        let pop3 = Pop3Config {
            listen: o
                .pop3
                .or(file.pop3.listen)
                .unwrap_or_else(|| DEFAULT_POP3.parse().unwrap()),
            max_sessions: b("pop3.max_sessions")
                .number(file.pop3.max_sessions, DEFAULT_MAX_SESSIONS)?,
            max_errors: b("pop3.max_errors").number(file.pop3.max_errors, DEFAULT_MAX_ERRORS)?,
            timeout: b("pop3.timeout").duration(&file.pop3.timeout, DEFAULT_POP3_TIMEOUT)?,
        };
        let listen = |flag: &Option<Listen>, file: &ListenFile, default: &str| match flag {
            Some(l) => Ok(*l),
            None => parse_listen(file.listen.as_deref().unwrap_or(default)),
        };
        let submission = listen(&o.submission, &file.submission, DEFAULT_SUBMISSION)?;
        let submissions = listen(&o.submissions, &file.submissions, DEFAULT_SUBMISSIONS)?;
        let pop3s = listen(&o.pop3s, &file.pop3s, DEFAULT_POP3S)?;
        let tls = match (file.tls.cert, file.tls.key) {
            (Some(cert), Some(key)) => TlsConfig {
                cert: Some(cert),
                key: Some(key),
            },
            (None, None) => TlsConfig::default(),
            _ => return Err("tls.cert and tls.key must be given together".into()),
        };
        let relay_from = file
            .relay_from
            .unwrap_or_default()
            .iter()
            .map(|text| Cidr::parse(text).map_err(|e| format!("relay_from: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let limits = LimitsConfig {
            sessions_per_address: b("limits.sessions_per_address").number(
                file.limits.sessions_per_address,
                DEFAULT_SESSIONS_PER_ADDRESS,
            )?,
            connections_per_minute: b("limits.connections_per_minute")
                .number(file.limits.connections_per_minute, 0)?,
            login_failures: b("limits.login_failures")
                .number(file.limits.login_failures, DEFAULT_LOGIN_FAILURES)?,
            tls_handshake_timeout: b("limits.tls_handshake_timeout").duration(
                &file.limits.tls_handshake_timeout,
                DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            )?,
        };
        let listener_sessions = ListenerSessions {
            submission: b("submission.max_sessions")
                .number(file.submission.max_sessions, DEFAULT_MAX_SESSIONS)?,
            submissions: b("submissions.max_sessions")
                .number(file.submissions.max_sessions, DEFAULT_MAX_SESSIONS)?,
            pop3s: b("pop3s.max_sessions").number(file.pop3s.max_sessions, DEFAULT_MAX_SESSIONS)?,
        };
        let quota = QuotaConfig {
            default: b("quota.default").size(&file.quota.default, 0)?,
            temporary: file.quota.temporary.unwrap_or(false),
            warn_percent: b("quota.warn_percent").number(file.quota.warn_percent, 90)?,
        };
        let g = &file.greylist;
        // Checked even while greylisting is off, so turning it on cannot fail later.
        let greylist_settings = crate::policy::greylist::Settings {
            delay: b("greylist.delay").duration(&g.delay, Duration::from_secs(5 * MINUTE))?,
            retry_window: Duration::from_secs(
                b("greylist.retry_window_hours").number(g.retry_window_hours, 48u64)? * HOUR,
            ),
            allow: Duration::from_secs(b("greylist.allow_days").number(g.allow_days, 36u64)? * DAY),
        };
        let greylist = g.enabled.unwrap_or(false).then_some(greylist_settings);
        let dnsbl = file.dnsbl.zones.unwrap_or_default();
        for zone in &dnsbl {
            if !crate::wire::address::domain_is_valid(zone.trim_end_matches('.')) {
                return Err(format!("dnsbl.zones: invalid zone {zone:?}"));
            }
        }
        file.network.check()?;
        if let Some(hash) = &file.admin_password_hash {
            if !hash.starts_with("$argon2") {
                return Err(
                    "admin_password_hash: expected an Argon2 hash (\"$argon2id$...\")".into(),
                );
            }
        }
        let spam_defaults = crate::spam::Settings::default();
        let spam = crate::spam::Settings {
            recipient_limit: b("spam.recipient_limit")
                .number(file.spam.recipient_limit, spam_defaults.recipient_limit)?,
            action: match file.spam.action.as_deref() {
                None => spam_defaults.action,
                Some("reject") => crate::spam::Action::Reject,
                Some("tag") => crate::spam::Action::Tag,
                Some(other) => {
                    return Err(format!(
                        "spam.action: expected \"reject\" or \"tag\", not {other:?}"
                    ))
                }
            },
            subject_tag: file.spam.subject_tag.unwrap_or(spam_defaults.subject_tag),
        };
        if spam.subject_tag.contains(['\r', '\n']) {
            return Err("spam.subject_tag must be one line".into());
        }
        let data_dir = o
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Ok(Config {
            aliases: file.aliases.unwrap_or_else(|| data_dir.join("aliases")),
            admin_password_hash: file.admin_password_hash,
            run_as: o.run_as.clone(),
            limits,
            quota,
            greylist,
            spam,
            queue,
            dnsbl,
            dns_resolver: file.dns_resolver,
            submission,
            submissions,
            pop3s,
            listener_sessions,
            tls,
            relay_from,
            allow_plaintext_on_loopback: o.allow_plaintext_on_loopback
                || file.auth.allow_plaintext_on_loopback.unwrap_or(false),
            from_must_match: file.auth.from_must_match.unwrap_or(true),
            data_dir,
            hostname: o
                .hostname
                .clone()
                .or(file.hostname)
                .unwrap_or_else(os_hostname),
            domains: seen,
            postmaster: file.postmaster,
            log_level,
            smtp,
            pop3,
        })
    }

    pub fn default_domain(&self) -> &str {
        &self.domains[0]
    }

    pub fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// Every key a config file may set (`smtp.listen`, `queue_warn`), read
/// from the parser itself, so documentation can be checked against it.
pub fn known_keys() -> Vec<String> {
    let mut keys = Vec::new();
    FileConfig::deserialize(KeyLister {
        path: String::new(),
        keys: &mut keys,
    })
    .expect("every config key is optional");
    keys
}

/// A deserializer that offers every field of each section and records the
/// path of each leaf (an `Option`, left `None`).
struct KeyLister<'a> {
    path: String,
    keys: &'a mut Vec<String>,
}

impl<'de> serde::Deserializer<'de> for KeyLister<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom(format!(
            "{} is neither optional nor a section",
            self.path
        )))
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.keys.push(self.path);
        visitor.visit_none()
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(Fields {
            lister: self,
            fields: fields.iter(),
            current: "",
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple tuple_struct
        map enum identifier ignored_any
    }
}

struct Fields<'a> {
    lister: KeyLister<'a>,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de> serde::de::MapAccess<'de> for Fields<'_> {
    type Error = serde::de::value::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        use serde::de::IntoDeserializer;
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize(field.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let path = match self.lister.path.as_str() {
            "" => self.current.to_string(),
            section => format!("{section}.{}", self.current),
        };
        seed.deserialize(KeyLister {
            path,
            keys: &mut *self.lister.keys,
        })
    }
}

fn parse_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    parse_text(&text).map_err(|e| format!("config {}: {e}", path.display()))
}

fn parse_text(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().replace('\n', " ").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postbox.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn embedded_defaults() {
        let c = Config::load(&Overrides::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("postbox-data"));
        assert_eq!(c.smtp.listen.to_string(), "127.0.0.1:2525");
        assert_eq!(c.pop3.listen.to_string(), "127.0.0.1:2110");
        assert_eq!(c.domains, vec!["localhost"]);
        assert_eq!(c.smtp.max_message_size, 25 * 1024 * 1024);
        assert_eq!(c.smtp.max_recipients, 100);
        assert!(!c.hostname.is_empty());
    }

    #[test]
    fn file_then_flags() {
        let (_d, path) = write(
            "data_dir = \"/srv/mail\"\nhostname = \"mx.example.org\"\ndomains = [\"Example.org\"]\n[smtp]\nlisten = \"0.0.0.0:25\"\nmax_recipients = 5\n[pop3]\ntimeout = 60\n",
        );
        let mut o = Overrides {
            config_file: Some(path),
            ..Default::default()
        };
        let c = Config::load(&o).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/mail"));
        assert_eq!(c.domains, vec!["example.org"]);
        assert_eq!(c.smtp.max_recipients, 5);
        assert_eq!(c.pop3.timeout, Duration::from_secs(60));
        o.smtp = Some("127.0.0.1:9925".parse().unwrap());
        o.domains = vec!["club.example".into(), "example.org".into()];
        o.hostname = Some("other".into());
        let c = Config::load(&o).unwrap();
        assert_eq!(c.smtp.listen.port(), 9925);
        assert_eq!(c.domains, vec!["example.org", "club.example"]);
        assert_eq!(c.hostname, "other");
        assert!(c.serves("CLUB.example"));
    }

    #[test]
    fn errors_are_clear() {
        let (_d, path) = write("smtp_port = 25\n");
        let e = Config::load(&Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("smtp_port"), "{e}");
        let e = Config::load(&Overrides {
            config_file: Some("/nonexistent/postbox.toml".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.starts_with("cannot read config"));
        let (_d, path) = write("[smtp]\nmax_errors = 0\n");
        let e = Config::load(&Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("max_errors"));
        let (_d, path) = write("[pop3]\nmax_errors = 0\n");
        let e = Config::load(&Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("pop3.max_errors"), "{e}");
        let e = Config::load(&Overrides {
            domains: vec!["bad domain".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("invalid domain"));
    }

    #[test]
    fn tls_listeners_and_relay() {
        let c = Config::load(&Overrides::default()).unwrap();
        assert_eq!(c.submission.unwrap().to_string(), DEFAULT_SUBMISSION);
        assert_eq!(c.submissions.unwrap().to_string(), DEFAULT_SUBMISSIONS);
        assert_eq!(c.pop3s.unwrap().to_string(), DEFAULT_POP3S);
        assert!(c.relay_from.is_empty());
        assert!(!c.allow_plaintext_on_loopback);
        let (_d, path) = write(
            "relay_from = [\"127.0.0.1/32\", \"192.168.1.0/24\"]\n[submissions]\nlisten = \"off\"\n[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n[auth]\nallow_plaintext_on_loopback = true\n",
        );
        let c = Config::load(&Overrides {
            config_file: Some(path),
            pop3s: Some(None),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.relay_from.len(), 2);
        assert_eq!(c.submissions, None);
        assert_eq!(c.pop3s, None);
        assert_eq!(c.tls.key, Some(PathBuf::from("/k.pem")));
        assert!(c.allow_plaintext_on_loopback);
        let (_d, path) = write("relay_from = [\"10.0.0.0/40\"]\n");
        let e = Config::load(&Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("relay_from"), "{e}");
        let (_d, path) = write("[tls]\ncert = \"/c.pem\"\n");
        assert!(Config::load(&Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn example_file_parses_to_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("postbox.toml.example");
        let from_example = Config::load(&Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .unwrap();
        let defaults = Config::load(&Overrides::default()).unwrap();
        assert_eq!(
            format!("{:?}", from_example.smtp),
            format!("{:?}", defaults.smtp)
        );
        assert_eq!(
            format!("{:?}", from_example.pop3),
            format!("{:?}", defaults.pop3)
        );
        assert_eq!(from_example.domains, defaults.domains);
        assert_eq!(
            (
                from_example.submission,
                from_example.submissions,
                from_example.pop3s
            ),
            (defaults.submission, defaults.submissions, defaults.pop3s)
        );
        assert_eq!(from_example.relay_from, defaults.relay_from);
        assert_eq!(from_example.limits, defaults.limits);
        assert_eq!(from_example.listener_sessions, defaults.listener_sessions);
        assert_eq!(from_example.quota, defaults.quota);
        assert_eq!(
            format!("{:?}", from_example.greylist),
            format!("{:?}", defaults.greylist)
        );
        assert_eq!(
            from_example.allow_plaintext_on_loopback,
            defaults.allow_plaintext_on_loopback
        );
        assert_eq!(from_example.data_dir, defaults.data_dir);
        assert_eq!(from_example.spam, defaults.spam);
        assert_eq!(from_example.from_must_match, defaults.from_must_match);
        assert_eq!(from_example.queue, defaults.queue);
    }

    fn example_text() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("postbox.toml.example");
        std::fs::read_to_string(path).unwrap()
    }

    /// `name` of a `name = value` line, or of `[name]` when `section`.
    fn key_of(line: &str, section: bool) -> Option<&str> {
        let name = if section {
            line.strip_prefix('[')?.strip_suffix(']')?
        } else {
            line.split_once(" = ")?.0
        };
        let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        (!name.is_empty() && name.chars().all(plain)).then_some(name)
    }

    /// The example's keys (commented out or not) with the comment lines
    /// just above each, and its text with every such key uncommented.
    fn example_keys() -> (Vec<(String, String)>, String) {
        let (mut keys, mut uncommented) = (Vec::new(), String::new());
        let (mut section, mut comments) = (String::new(), String::new());
        for line in example_text().lines() {
            let setting = line.strip_prefix("# ").unwrap_or(line);
            if let Some(name) = key_of(setting, true) {
                section = name.to_string();
                comments.clear();
            } else if let Some(name) = key_of(setting, false) {
                let key = match section.as_str() {
                    "" => name.to_string(),
                    s => format!("{s}.{name}"),
                };
                keys.push((key, std::mem::take(&mut comments)));
            } else if line.starts_with('#') {
                comments.push_str(line);
                comments.push('\n');
                uncommented.push_str(line);
                uncommented.push('\n');
                continue;
            } else {
                comments.clear();
            }
            uncommented.push_str(setting);
            uncommented.push('\n');
        }
        (keys, uncommented)
    }

    #[test]
    fn example_lists_every_key_the_parser_knows() {
        let (documented, uncommented) = example_keys();
        let documented: Vec<&str> = documented.iter().map(|(k, _)| k.as_str()).collect();
        let known = known_keys();
        assert!(known.contains(&"smtp.listen".to_string()), "{known:?}");
        let missing: Vec<&String> = known
            .iter()
            .filter(|k| !documented.contains(&k.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "not in postbox.toml.example: {missing:?}"
        );
        // And every key shown there is one the parser takes, with a valid
        // example value: the whole file parses with each one set.
        Config::from_toml(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        for key in &documented {
            assert!(known.iter().any(|k| k == key), "{key} is not a key");
        }
    }

    #[test]
    fn example_states_each_range() {
        let (documented, _) = example_keys();
        for bound in BOUNDS {
            let comments = documented
                .iter()
                .find(|(key, _)| key == bound.key)
                .map(|(_, c)| c.as_str())
                .unwrap_or_else(|| panic!("{} not in the example", bound.key));
            assert!(
                comments.contains(&format!("{})", bound.range())),
                "{}: no \"{}\" in its comment:\n{comments}",
                bound.key,
                bound.range()
            );
        }
    }

    #[test]
    fn every_number_has_a_range() {
        // Each key that takes a number refuses one beyond any range, by
        // name and with its range; every other key refuses numbers.
        for key in known_keys() {
            let toml = format!("{key} = 9223372036854775807\n");
            let e = Config::from_toml(&toml).unwrap_err();
            match BOUNDS.iter().find(|b| b.key == key) {
                Some(b) => assert!(
                    e.starts_with(&format!("{key} must be {}", b.range())),
                    "{key}: {e}"
                ),
                None => assert!(e.contains("invalid type"), "{key}: {e}"),
            }
        }
    }

    #[test]
    fn numbers_out_of_range_fail_with_key_and_range() {
        for (toml, expected) in [
            (
                "[smtp]\ncommand_timeout = 9223372036854775807\n",
                "smtp.command_timeout must be 1s to 1h, not 9223372036854775807 seconds",
            ),
            (
                "[greylist]\nallow_days = 213503982334601\n",
                "greylist.allow_days must be 1 to 365 days, not 213503982334601",
            ),
            (
                "[smtp]\ndata_timeout = \"99999999999999d\"\n",
                "smtp.data_timeout must be 1s to 1h, not \"99999999999999d\"",
            ),
            (
                "[pop3]\nmax_sessions = -1\n",
                "pop3.max_sessions must be 1 to 10000, not -1",
            ),
            (
                "[smtp]\nmax_errors = 0\n",
                "smtp.max_errors must be 1 to 1000, not 0",
            ),
            (
                "[smtp]\nmax_message_size = \"unlimited\"\n",
                "smtp.max_message_size must be 1K to 1G, not \"unlimited\"",
            ),
            (
                "[quota]\nwarn_percent = 101\n",
                "quota.warn_percent must be 1 to 100 percent",
            ),
            ("queue_return = \"31d\"\n", "queue_return must be 1s to 30d"),
            (
                "[queue]\nmax_deliveries = 0\n",
                "queue.max_deliveries must be 1 to 100",
            ),
            (
                "[queue]\nsmtp_port = 65536\n",
                "queue.smtp_port must be 1 to 65535",
            ),
        ] {
            let e = Config::from_toml(toml).unwrap_err();
            assert!(e.starts_with(expected), "{toml:?}: {e}");
        }
        // The ends of a range are in it.
        let c = Config::from_toml(
            "[smtp]\ncommand_timeout = \"1h\"\ngreet_delay = 0\nmax_message_size = \"1G\"\n\
             [greylist]\nenabled = true\nallow_days = 365\n",
        )
        .unwrap();
        assert_eq!(c.smtp.command_timeout, Duration::from_secs(3600));
        assert_eq!(c.smtp.max_message_size, 1 << 30);
        assert_eq!(c.greylist.unwrap().allow, Duration::from_secs(365 * 86400));
    }
}
