//! Settings: built-in defaults, overridden by a TOML file, overridden by
//! command-line flags. `postbox.toml.example` documents every key.

use crate::limits::*;
use crate::relay::Cidr;
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
    pub greylist: Option<crate::greylist::Settings>,
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
    max_deliveries: Option<usize>,
    max_per_destination: Option<usize>,
    smtp_port: Option<u16>,
}

/// Seconds, or text with a unit (`"4h"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(u64),
    Text(String),
}

fn duration(
    value: &Option<DurationValue>,
    key: &str,
    default: Duration,
) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(DurationValue::Seconds(n)) => Ok(Duration::from_secs(*n)),
        Some(DurationValue::Text(t)) => parse_duration(t).map_err(|e| format!("{key}: {e}")),
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
    recipient_limit: Option<usize>,
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
    delay: Option<u64>,
    retry_window_hours: Option<u64>,
    allow_days: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct QuotaFile {
    default: Option<SizeValue>,
    temporary: Option<bool>,
    warn_percent: Option<u8>,
}

/// A size as bytes or as text (`"500M"`, `"unlimited"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    sessions_per_address: Option<usize>,
    connections_per_minute: Option<u32>,
    login_failures: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListenFile {
    listen: Option<String>,
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
    max_sessions: Option<usize>,
    max_message_size: Option<u64>,
    max_recipients: Option<usize>,
    max_errors: Option<u32>,
    command_timeout: Option<u64>,
    data_timeout: Option<u64>,
    greet_delay: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Pop3File {
    listen: Option<SocketAddr>,
    max_sessions: Option<usize>,
    max_errors: Option<u32>,
    timeout: Option<u64>,
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
        let queue = QueueConfig {
            smarthost: smarthost(&file)?,
            warn: duration(
                &file.queue_warn,
                "queue_warn",
                Duration::from_secs(4 * 3600),
            )?,
            expire: duration(
                &file.queue_return,
                "queue_return",
                Duration::from_secs(5 * 86400),
            )?,
            retry_first: duration(
                &file.queue.retry_first,
                "queue.retry_first",
                Duration::from_secs(300),
            )?,
            retry_max: duration(
                &file.queue.retry_max,
                "queue.retry_max",
                Duration::from_secs(2 * 3600),
            )?,
            max_deliveries: file.queue.max_deliveries.unwrap_or(8).max(1),
            max_per_destination: file.queue.max_per_destination.unwrap_or(2).max(1),
            smtp_port: file.queue.smtp_port.unwrap_or(25),
        };
        let mut domains = file
            .domains
            .unwrap_or_else(|| vec![DEFAULT_DOMAIN.to_string()]);
        domains.extend(o.domains.iter().cloned());
        let mut seen = Vec::new();
        for d in domains {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if !crate::address::domain_is_valid(&d) || d.starts_with('[') {
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
            max_sessions: file.smtp.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS),
            max_message_size: file
                .smtp
                .max_message_size
                .unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
            max_recipients: file.smtp.max_recipients.unwrap_or(DEFAULT_MAX_RECIPIENTS),
            max_errors: file.smtp.max_errors.unwrap_or(DEFAULT_MAX_ERRORS),
            command_timeout: file
                .smtp
                .command_timeout
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_COMMAND_TIMEOUT),
            data_timeout: file
                .smtp
                .data_timeout
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_DATA_TIMEOUT),
            greet_delay: Duration::from_secs(file.smtp.greet_delay.unwrap_or(0)),
        };
        let pop3 = Pop3Config {
            listen: o
                .pop3
                .or(file.pop3.listen)
                .unwrap_or_else(|| DEFAULT_POP3.parse().unwrap()),
            max_sessions: file.pop3.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS),
            max_errors: file.pop3.max_errors.unwrap_or(DEFAULT_MAX_ERRORS),
            timeout: file
                .pop3
                .timeout
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_POP3_TIMEOUT),
        };
        for (name, zero) in [
            ("smtp.max_sessions", smtp.max_sessions == 0),
            ("smtp.max_recipients", smtp.max_recipients == 0),
            ("smtp.max_errors", smtp.max_errors == 0),
            ("smtp.max_message_size", smtp.max_message_size == 0),
            ("smtp.command_timeout", smtp.command_timeout.is_zero()),
            ("smtp.data_timeout", smtp.data_timeout.is_zero()),
            ("pop3.max_sessions", pop3.max_sessions == 0),
            ("pop3.max_errors", pop3.max_errors == 0),
            ("pop3.timeout", pop3.timeout.is_zero()),
        ] {
            if zero {
                return Err(format!("{name} must be greater than 0"));
            }
        }
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
            sessions_per_address: file
                .limits
                .sessions_per_address
                .unwrap_or(DEFAULT_SESSIONS_PER_ADDRESS),
            connections_per_minute: file.limits.connections_per_minute.unwrap_or(0),
            login_failures: file.limits.login_failures.unwrap_or(DEFAULT_LOGIN_FAILURES),
        };
        if limits.sessions_per_address == 0 || limits.login_failures == 0 {
            return Err(
                "limits.sessions_per_address and limits.login_failures must be greater than 0"
                    .into(),
            );
        }
        let quota = QuotaConfig {
            default: match &file.quota.default {
                None => 0,
                Some(SizeValue::Bytes(n)) => *n,
                Some(SizeValue::Text(t)) => {
                    crate::store::quota::parse_size(t).map_err(|e| format!("quota.default: {e}"))?
                }
            },
            temporary: file.quota.temporary.unwrap_or(false),
            warn_percent: file.quota.warn_percent.unwrap_or(90),
        };
        if !(1..=100).contains(&quota.warn_percent) {
            return Err("quota.warn_percent must be between 1 and 100".into());
        }
        let g = &file.greylist;
        let greylist = g
            .enabled
            .unwrap_or(false)
            .then(|| crate::greylist::Settings {
                delay: Duration::from_secs(g.delay.unwrap_or(300)),
                retry_window: Duration::from_secs(g.retry_window_hours.unwrap_or(48) * 3600),
                allow: Duration::from_secs(g.allow_days.unwrap_or(36) * 86400),
            });
        let dnsbl = file.dnsbl.zones.unwrap_or_default();
        for zone in &dnsbl {
            if !crate::address::domain_is_valid(zone.trim_end_matches('.')) {
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
            recipient_limit: file
                .spam
                .recipient_limit
                .unwrap_or(spam_defaults.recipient_limit),
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
}
