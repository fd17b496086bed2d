//! Settings: built-in defaults, overridden by a TOML file, overridden by
//! command-line flags. `postbox.toml.example` documents every key.

mod bounds;
pub mod clients;
mod fetch;
mod file;
mod keys;
mod sections;
#[cfg(test)]
mod tests;
mod value;

pub use bounds::{Bound, OldName, Unit, BOUNDS, OLD_NAMES};
pub use fetch::{FetchEntry, Protocol, Upstream};
pub use keys::known_keys;
pub use value::{parse_duration, parse_size, HttpsUrl};

use crate::policy::relay::Cidr;
use bounds::Problems;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

// The defaults of the keys that are not numbers (numbers: `BOUNDS`).
pub const DEFAULT_DATA_DIR: &str = "postbox-data";
pub const DEFAULT_SMTP: &str = "127.0.0.1:2525";
pub const DEFAULT_POP3: &str = "127.0.0.1:2110";
pub const DEFAULT_DOMAIN: &str = "localhost";
pub const DEFAULT_SUBMISSION: &str = "127.0.0.1:2587";
pub const DEFAULT_SUBMISSIONS: &str = "127.0.0.1:2465";
pub const DEFAULT_POP3S: &str = "127.0.0.1:2995";
pub const DEFAULT_WEB: &str = "127.0.0.1:2443";
pub const DEFAULT_HTTP: &str = "127.0.0.1:2080";
/// Where the admin pages may be asked from: the private ranges of a home
/// or club network (RFC 1918, RFC 4193) and the machine itself.
pub const DEFAULT_ADMIN_FROM: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
    "127.0.0.0/8",
    "::1/128",
];
/// When neither the file, --log-level nor RUST_LOG gives one.
pub const DEFAULT_LOG_LEVEL: log::LevelFilter = log::LevelFilter::Info;
pub const DEFAULT_SMARTHOST_PORT: u16 = 587;
pub const DEFAULT_SPAM_ACTION: SpamAction = SpamAction::Tag;
pub const DEFAULT_SUBJECT_TAG: &str = "[SPAM]";
pub const DEFAULT_FROM_MUST_MATCH: bool = true;
pub const DEFAULT_PLAINTEXT_ON_LOOPBACK: bool = false;
pub const DEFAULT_PROXY_PROTOCOL: bool = false;
pub const DEFAULT_QUOTA_TEMPORARY: bool = false;
pub const DEFAULT_GREYLIST_ENABLED: bool = false;
pub const DEFAULT_DKIM_SIGN: bool = true;
pub const DEFAULT_ACME_ENABLED: bool = false;
/// Let's Encrypt's production service.
pub const DEFAULT_ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

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
    /// Listeners behind a proxy that sends the PROXY protocol header.
    pub proxy: ProxyConfig,
    /// Lets clients on 127.0.0.1/::1 log in without TLS.
    pub allow_plaintext_on_loopback: bool,
    /// A logged-in member's MAIL FROM and From: must be their addresses.
    pub from_must_match: bool,
    pub limits: LimitsConfig,
    pub quota: QuotaConfig,
    pub backup: BackupConfig,
    /// The Wi-Fi network the board joins (`[network] wifi_*`), if any.
    pub wifi: Option<crate::appliance::wifi::Wifi>,
    /// DNS blocklist zones checked for strangers on port 25 (empty: off).
    pub dnsbl: Vec<String>,
    /// Where DNS questions go (blocklists, MX hosts, SPF, DKIM keys, DMARC);
    /// `--dns-resolver` or the file; default: /etc/resolv.conf's first.
    pub dns_resolver: Option<SocketAddr>,
    /// Greylisting settings; `None` when it is off.
    pub greylist: Option<GreylistConfig>,
    pub spam: SpamSettings,
    pub dkim: DkimConfig,
    /// What the arrival checks of strangers' mail do (`[inbound]`).
    pub inbound: InboundModes,
    pub queue: QueueConfig,
    pub web: WebConfig,
    pub acme: AcmeConfig,
    /// The aliases file (/etc/aliases syntax); default DATA/aliases
    /// (SHARED/aliases in a cluster).
    pub aliases: PathBuf,
    /// Members' upstream mailboxes to fetch mail from (`[[fetch]]`).
    pub fetch: Vec<FetchEntry>,
    /// One of several nodes on a shared directory (`[cluster]`).
    pub cluster: Option<ClusterConfig>,
}

/// A node of a cluster: the shared directory holds users, aliases,
/// forwards, quotas, mailboxes and each node's spool and queue
/// (`nodes/NODE/`); counters, logs, status and keys stay in `data_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's name: unique among the nodes; in message file names,
    /// POP3 locks and `nodes/NODE`.
    pub node: String,
    pub shared: PathBuf,
    /// How long a POP3 lock lasts unless renewed (every third of it), so
    /// a dead node's locks free up.
    pub lease: Duration,
}

/// Where a cluster node keeps its spool and queue, under the shared directory.
pub const NODES_DIR: &str = "nodes";
pub const DEFAULT_CLUSTER_LEASE: Duration = Duration::from_secs(30);

/// The web pages (`[web]`): members' and the admin's pages over HTTPS,
/// and plain HTTP that only sends browsers there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// HTTPS, with the mail listeners' certificate; `None` when off.
    pub listen: Option<SocketAddr>,
    /// Plain HTTP: redirects to HTTPS, certificate challenges, mail
    /// program set-up; `None` when off.
    pub http_listen: Option<SocketAddr>,
    /// Sessions each of the two listeners holds at once.
    pub max_sessions: usize,
    /// Clients that may open the admin pages.
    pub admin_from: Vec<Cidr>,
}

/// Listeners that a proxy (haproxy, a load balancer) stands in front of:
/// each connection to one begins with a PROXY protocol header naming the
/// client, and is taken only from `from`. Each listener's section has its
/// `proxy_protocol`; `[web]`'s covers both web listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The proxies: the only sources whose headers are believed.
    pub from: Vec<Cidr>,
    pub smtp: bool,
    pub submission: bool,
    pub submissions: bool,
    pub pop3: bool,
    pub pop3s: bool,
    /// HTTPS and plain HTTP.
    pub web: bool,
}

/// Certificates from an ACME service (`[acme]`, RFC 8555), for the host
/// name and `names`; while enabled, an ACME certificate wins over `[tls]`
/// files and the self-signed one, which serve until it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    pub enabled: bool,
    /// The service's directory.
    pub directory: HttpsUrl,
    /// `mailto:ADDRESS`, given to the service for expiry notices.
    pub contact: Option<String>,
    /// PEM certificates trusted for the service besides the web roots.
    pub ca: Option<PathBuf>,
    /// DNS names the certificate covers besides the host name.
    pub names: Vec<String>,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            enabled: DEFAULT_ACME_ENABLED,
            directory: HttpsUrl::parse(DEFAULT_ACME_DIRECTORY).expect("the default URL parses"),
            contact: None,
            ca: None,
            names: Vec::new(),
        }
    }
}

impl Config {
    /// Every name an ACME certificate is for: the host name first.
    pub fn acme_names(&self) -> Vec<String> {
        let mut names = vec![self.hostname.to_ascii_lowercase()];
        for name in &self.acme.names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}

/// How mail for other domains leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Relay everything through this server; `None`: deliver direct to MX.
    pub smarthost: Option<Smarthost>,
    /// A delay notice goes to the sender after this long (`queue.warn`).
    pub warn: Duration,
    /// Undelivered mail is returned to the sender after this long
    /// (`queue.return`).
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

/// Greylisting's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreylistConfig {
    /// How long a new triplet must wait before its retry is accepted.
    pub delay: Duration,
    /// How long a deferred triplet waits for its retry before starting over.
    pub retry_window: Duration,
    /// How long a triplet that passed keeps passing without a new delay.
    pub allow: Duration,
}

/// `[inbound]`: the arrival checks of strangers' mail. The defaults
/// (`spf = "tag"`, `dkim = "verify"`, `dmarc = "enforce"`) follow the
/// policies domains publish: `dmarc::judge` has the rules.
pub use crate::dmarc::{DkimMode, Enforcement, InboundModes};

/// DKIM signing of members' outgoing mail (`[dkim]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimConfig {
    /// The selector base new keys are named after (`r` and `e` appended
    /// per key kind); `None`: `pb` and the year and month they are made.
    pub selector: Option<String>,
    /// Whether outgoing mail of the served domains is signed.
    pub sign: bool,
}

impl Default for DkimConfig {
    fn default() -> Self {
        DkimConfig {
            selector: None,
            sign: DEFAULT_DKIM_SIGN,
        }
    }
}

/// What happens to a message judged spam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpamAction {
    /// 554 at the end of DATA: the sender learns at once, nothing is kept.
    Reject,
    /// Delivered with `X-Spam: yes` and the subject tagged.
    Tag,
}

/// The recipient rule and what to do with what it catches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpamSettings {
    /// To:+Cc: addresses from which the rule applies; 0 turns it off.
    pub recipient_limit: usize,
    pub action: SpamAction,
    /// Put in front of the subject of tagged messages.
    pub subject_tag: String,
}

impl Default for SpamSettings {
    fn default() -> Self {
        SpamSettings {
            recipient_limit: Bound::of("spam.recipient_limit").default as usize,
            action: DEFAULT_SPAM_ACTION,
            subject_tag: DEFAULT_SUBJECT_TAG.into(),
        }
    }
}

/// Backups to a USB stick on the appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// Archives kept on the stick; older ones are removed.
    pub keep: usize,
    /// How often the board backs up by itself; zero: never.
    pub every: Duration,
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
    pub dns_resolver: Option<SocketAddr>,
    pub log_level: Option<log::LevelFilter>,
    pub submission: Option<Listen>,
    pub submissions: Option<Listen>,
    pub pop3s: Option<Listen>,
    pub web: Option<Listen>,
    pub http: Option<Listen>,
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
    /// The settings, or the problems on one line (the CLI's failures are
    /// one line; `check` gives them one by one).
    pub fn load(o: &Overrides) -> Result<Config, String> {
        Config::check(o).map_err(|problems| problems.join("; "))
    }

    /// The settings, or every problem found (each naming its key): a file
    /// that does not parse gives one, a parsed one all its bad values.
    pub fn check(o: &Overrides) -> Result<Config, Vec<String>> {
        let file = match &o.config_file {
            Some(path) => file::parse_file(path).map_err(|e| vec![e])?,
            None => file::FileConfig::default(),
        };
        Config::build(file, o)
    }

    /// Settings from TOML text alone (no flags), as a config file gives them.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        Config::build(file::parse_text(text)?, &Overrides::default())
            .map_err(|problems| problems.join("; "))
    }

    fn build(file: file::FileConfig, o: &Overrides) -> Result<Config, Vec<String>> {
        use sections::*;
        let p = &mut Problems::default();
        let queue = queue(&file, p);
        let domains = domains(&file.domains, o, p);
        let log_level = log_level(&file.log_level, o, p);
        let smtp = smtp(&file.smtp, o, p);
        let pop3 = pop3(&file.pop3, o, p);
        let submission = listen(
            &o.submission,
            &file.submission,
            ("submission", DEFAULT_SUBMISSION),
            p,
        );
        let submissions = listen(
            &o.submissions,
            &file.submissions,
            ("submissions", DEFAULT_SUBMISSIONS),
            p,
        );
        let pop3s = listen(&o.pop3s, &file.pop3s, ("pop3s", DEFAULT_POP3S), p);
        let tls = tls(&file.tls, p);
        let relay_from = relay_from(&file.relay_from, p);
        let proxy = proxy(&file, p);
        let limits = limits(&file.limits, p);
        let listener_sessions = listener_sessions(&file, p);
        let quota = quota(&file.quota, p);
        let backup = backup(&file.backup, p);
        let greylist = greylist(&file.greylist, p);
        let dnsbl = dnsbl(&file.dnsbl, p);
        let wifi = file.network.check(p);
        let admin_password_hash = admin_password_hash(&file.admin_password_hash, p);
        let spam = spam(&file.spam, p);
        let dkim = dkim(&file.dkim, p);
        let inbound = inbound(&file.inbound, p);
        let web = web(&file.web, o, p);
        let acme = acme(&file.acme, p);
        let fetch = fetch::entries(file.fetch.as_deref().unwrap_or_default(), p);
        let cluster = cluster(&file.cluster, p);
        let hostname = o
            .hostname
            .clone()
            .or(file.hostname)
            .unwrap_or_else(os_hostname);
        if acme.enabled && !crate::wire::address::domain_is_valid(&hostname) {
            p.0.push(format!(
                "acme.enabled: the host name {hostname:?} is not a DNS name a certificate can be for"
            ));
        }
        if !p.0.is_empty() {
            return Err(std::mem::take(&mut p.0));
        }
        let data_dir = o
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Ok(Config {
            fetch,
            aliases: file.aliases.unwrap_or_else(|| {
                let mail_dir = cluster.as_ref().map_or(&data_dir, |c| &c.shared);
                mail_dir.join("aliases")
            }),
            cluster,
            admin_password_hash,
            run_as: o.run_as.clone(),
            limits,
            quota,
            backup,
            wifi,
            greylist,
            spam,
            dkim,
            inbound,
            queue,
            web,
            acme,
            dnsbl,
            dns_resolver: o.dns_resolver.or(file.dns_resolver),
            submission,
            submissions,
            pop3s,
            listener_sessions,
            tls,
            relay_from,
            proxy,
            allow_plaintext_on_loopback: o.allow_plaintext_on_loopback
                || file
                    .auth
                    .allow_plaintext_on_loopback
                    .unwrap_or(DEFAULT_PLAINTEXT_ON_LOOPBACK),
            from_must_match: file.auth.from_must_match.unwrap_or(DEFAULT_FROM_MUST_MATCH),
            data_dir,
            hostname,
            domains,
            postmaster: file.postmaster,
            log_level,
            smtp,
            pop3,
        })
    }

    /// What every node must see: users, aliases, forwards, quotas and
    /// mailboxes. The data directory unless this is a cluster node.
    pub fn mail_dir(&self) -> &std::path::Path {
        self.cluster.as_ref().map_or(&self.data_dir, |c| &c.shared)
    }

    /// This node's spool and outbound queue: on the shared filesystem in a
    /// cluster, so delivery stays a hard link and another node can adopt
    /// the queue of a dead one.
    pub fn node_dir(&self) -> PathBuf {
        match &self.cluster {
            Some(c) => c.shared.join(NODES_DIR).join(&c.node),
            None => self.data_dir.clone(),
        }
    }

    /// The host part of message file names: the node's name joins it in a
    /// cluster, so names stay unique across nodes sharing mailboxes.
    pub fn unique_host(&self) -> String {
        match &self.cluster {
            Some(c) => format!("{}.{}", c.node, self.hostname),
            None => self.hostname.clone(),
        }
    }

    pub fn default_domain(&self) -> &str {
        &self.domains[0]
    }

    pub fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}
