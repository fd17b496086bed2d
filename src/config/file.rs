//! The config file as TOML gives it: one struct per section, every key
//! optional, unknown keys refused. `sections` turns each into settings.

use super::value::Value;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub admin_password_hash: Option<String>,
    /// Read by the appliance's init (address, gateway, time servers);
    /// checked here so a typo is reported, not silently ignored.
    #[serde(default)]
    pub network: NetworkFile,
    pub hostname: Option<String>,
    pub domains: Option<Vec<String>>,
    pub postmaster: Option<String>,
    pub log_level: Option<String>,
    #[serde(default)]
    pub smtp: SmtpFile,
    #[serde(default)]
    pub pop3: Pop3File,
    #[serde(default)]
    pub submission: ListenFile,
    #[serde(default)]
    pub submissions: ListenFile,
    #[serde(default)]
    pub pop3s: ListenFile,
    #[serde(default)]
    pub tls: TlsFile,
    #[serde(default)]
    pub auth: AuthFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub quota: QuotaFile,
    #[serde(default)]
    pub backup: BackupFile,
    #[serde(default)]
    pub greylist: GreylistFile,
    pub relay_from: Option<Vec<String>>,
    pub proxy_from: Option<Vec<String>>,
    pub dns_resolver: Option<SocketAddr>,
    #[serde(default)]
    pub dnsbl: DnsblFile,
    #[serde(default)]
    pub spam: SpamFile,
    #[serde(default)]
    pub dkim: DkimFile,
    #[serde(default)]
    pub inbound: InboundFile,
    pub aliases: Option<PathBuf>,
    #[serde(default)]
    pub queue: QueueFile,
    #[serde(default)]
    pub web: WebFile,
    #[serde(default)]
    pub acme: AcmeFile,
    /// Members' upstream mailboxes, one `[[fetch]]` table each.
    pub fetch: Option<Vec<FetchFile>>,
    #[serde(default)]
    pub cluster: ClusterFile,
    /// Old names of `[queue]` keys, from before the outbound keys had a
    /// section of their own (see `bounds::OLD_NAMES`).
    pub smarthost: Option<String>,
    pub smarthost_user: Option<String>,
    pub smarthost_password: Option<String>,
    pub smarthost_tls: Option<String>,
    pub smarthost_ca: Option<PathBuf>,
    pub queue_warn: Option<Value>,
    pub queue_return: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueFile {
    pub smarthost: Option<String>,
    pub smarthost_user: Option<String>,
    pub smarthost_password: Option<String>,
    pub smarthost_tls: Option<String>,
    pub smarthost_ca: Option<PathBuf>,
    pub warn: Option<Value>,
    #[serde(rename = "return")]
    pub give_back: Option<Value>,
    pub retry_first: Option<Value>,
    pub retry_max: Option<Value>,
    pub max_deliveries: Option<i64>,
    pub max_per_destination: Option<i64>,
    pub smtp_port: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FetchFile {
    pub user: Option<String>,
    pub url: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub keep: Option<bool>,
    pub every: Option<Value>,
    pub ca: Option<PathBuf>,
    pub tls: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct WebFile {
    pub listen: Option<String>,
    pub http_listen: Option<String>,
    pub max_sessions: Option<i64>,
    pub admin_from: Option<Vec<String>>,
    pub proxy_protocol: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ClusterFile {
    pub node: Option<String>,
    pub shared: Option<PathBuf>,
    pub lease: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AcmeFile {
    pub enabled: Option<bool>,
    pub directory: Option<String>,
    pub contact: Option<String>,
    pub ca: Option<PathBuf>,
    pub names: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct NetworkFile {
    pub mode: Option<String>,
    pub interface: Option<String>,
    pub address: Option<String>,
    pub gateway: Option<String>,
    pub dns: Option<String>,
    pub ntp: Option<String>,
    pub wifi_ssid: Option<String>,
    pub wifi_password: Option<String>,
    pub wifi_country: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SpamFile {
    pub recipient_limit: Option<i64>,
    pub action: Option<String>,
    pub subject_tag: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct DkimFile {
    pub selector: Option<String>,
    pub sign: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct InboundFile {
    pub spf: Option<String>,
    pub dkim: Option<String>,
    pub dmarc: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct DnsblFile {
    pub zones: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct GreylistFile {
    pub enabled: Option<bool>,
    pub delay: Option<Value>,
    pub retry_window: Option<Value>,
    pub allow: Option<Value>,
    /// Old names: a plain number counts hours, days.
    pub retry_window_hours: Option<Value>,
    pub allow_days: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct BackupFile {
    pub keep: Option<i64>,
    pub every: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct QuotaFile {
    pub default: Option<Value>,
    pub temporary: Option<bool>,
    pub warn_percent: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    pub sessions_per_address: Option<i64>,
    pub connections_per_minute: Option<i64>,
    pub login_failures: Option<i64>,
    pub tls_handshake_timeout: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ListenFile {
    pub listen: Option<String>,
    pub max_sessions: Option<i64>,
    pub proxy_protocol: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthFile {
    pub allow_plaintext_on_loopback: Option<bool>,
    pub from_must_match: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SmtpFile {
    pub listen: Option<SocketAddr>,
    pub max_sessions: Option<i64>,
    pub max_message_size: Option<Value>,
    pub max_recipients: Option<i64>,
    pub max_errors: Option<i64>,
    pub command_timeout: Option<Value>,
    pub data_timeout: Option<Value>,
    pub greet_delay: Option<Value>,
    pub proxy_protocol: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Pop3File {
    pub listen: Option<SocketAddr>,
    pub max_sessions: Option<i64>,
    pub max_errors: Option<i64>,
    pub timeout: Option<Value>,
    pub proxy_protocol: Option<bool>,
}

pub(super) fn parse_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    parse_text(&text).map_err(|e| format!("config {}: {e}", path.display()))
}

pub(super) fn parse_text(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().replace('\n', " ").trim().to_string())
}
