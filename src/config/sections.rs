//! One function per section of the file: each turns what the file gives
//! into settings, filling in defaults and noting every problem by key.

use super::bounds::{Bound, Problems};
use super::file::*;
use super::*;
use crate::appliance::wifi::{self, Wifi};

fn b(key: &str) -> &'static Bound {
    Bound::of(key)
}

pub(super) fn domains(file: &Option<Vec<String>>, o: &Overrides, p: &mut Problems) -> Vec<String> {
    let listed = file
        .clone()
        .unwrap_or_else(|| vec![DEFAULT_DOMAIN.to_string()]);
    let given = listed.into_iter().map(|d| ("domains", d));
    let flags = o.domains.iter().map(|d| ("--domain", d.clone()));
    let mut seen = Vec::new();
    for (key, d) in given.chain(flags) {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        if !crate::wire::address::domain_is_valid(&d) || d.starts_with('[') {
            p.0.push(format!("{key}: invalid domain {d:?}"));
        } else if !seen.contains(&d) {
            seen.push(d);
        }
    }
    if seen.is_empty() && p.0.is_empty() {
        p.0.push("at least one domain must be configured".into());
    }
    if seen.is_empty() {
        seen.push(DEFAULT_DOMAIN.to_string());
    }
    seen
}

pub(super) fn log_level(
    file: &Option<String>,
    o: &Overrides,
    p: &mut Problems,
) -> log::LevelFilter {
    match (o.log_level, file) {
        (Some(level), _) => level,
        (None, Some(s)) => p
            .check(parse_level(s).map_err(|e| format!("log_level: {e}")))
            .unwrap_or(DEFAULT_LOG_LEVEL),
        (None, None) => std::env::var("RUST_LOG")
            .ok()
            .and_then(|s| parse_level(&s).ok())
            .unwrap_or(DEFAULT_LOG_LEVEL),
    }
}

pub(super) fn smtp(f: &SmtpFile, o: &Overrides, p: &mut Problems) -> SmtpConfig {
    SmtpConfig {
        listen: o
            .smtp
            .or(f.listen)
            .unwrap_or_else(|| DEFAULT_SMTP.parse().unwrap()),
        max_sessions: b("smtp.max_sessions").count(f.max_sessions, p),
        max_message_size: b("smtp.max_message_size").size(&f.max_message_size, p),
        max_recipients: b("smtp.max_recipients").count(f.max_recipients, p),
        max_errors: b("smtp.max_errors").count(f.max_errors, p),
        command_timeout: b("smtp.command_timeout").duration(&f.command_timeout, p),
        data_timeout: b("smtp.data_timeout").duration(&f.data_timeout, p),
        greet_delay: b("smtp.greet_delay").duration(&f.greet_delay, p),
    }
}

pub(super) fn pop3(f: &Pop3File, o: &Overrides, p: &mut Problems) -> Pop3Config {
    Pop3Config {
        listen: o
            .pop3
            .or(f.listen)
            .unwrap_or_else(|| DEFAULT_POP3.parse().unwrap()),
        max_sessions: b("pop3.max_sessions").count(f.max_sessions, p),
        max_errors: b("pop3.max_errors").count(f.max_errors, p),
        timeout: b("pop3.timeout").duration(&f.timeout, p),
    }
}

/// A members' listener: the flag, else the file, else its default address.
pub(super) fn listen(
    flag: &Option<Listen>,
    f: &ListenFile,
    (section, default): (&str, &str),
    p: &mut Problems,
) -> Listen {
    match flag {
        Some(l) => *l,
        None => {
            let text = f.listen.as_deref().unwrap_or(default);
            let listen = parse_listen(text).map_err(|e| format!("{section}.listen: {e}"));
            p.check(listen).flatten()
        }
    }
}

pub(super) fn web(f: &WebFile, o: &Overrides, p: &mut Problems) -> WebConfig {
    let mut address = |key: &str, flag: &Option<Listen>, given: &Option<String>, default| match flag
    {
        Some(l) => *l,
        None => {
            let text = given.as_deref().unwrap_or(default);
            p.check(parse_listen(text).map_err(|e| format!("{key}: {e}")))
                .flatten()
        }
    };
    let listen = address("web.listen", &o.web, &f.listen, DEFAULT_WEB);
    let http_listen = address("web.http_listen", &o.http, &f.http_listen, DEFAULT_HTTP);
    let admin_from = match &f.admin_from {
        Some(networks) => networks
            .iter()
            .filter_map(|text| {
                p.check(Cidr::parse(text).map_err(|e| format!("web.admin_from: {e}")))
            })
            .collect(),
        None => DEFAULT_ADMIN_FROM
            .iter()
            .map(|text| Cidr::parse(text).expect("the default networks parse"))
            .collect(),
    };
    WebConfig {
        listen,
        http_listen,
        max_sessions: b("web.max_sessions").count(f.max_sessions, p),
        admin_from,
    }
}

/// `[cluster]`: both keys or neither; the node's name goes into file
/// names and a directory, so letters, digits and '-' only.
pub(super) fn cluster(f: &ClusterFile, p: &mut Problems) -> Option<ClusterConfig> {
    match (&f.node, &f.shared) {
        (None, None) => None,
        (Some(node), Some(shared)) => {
            let valid = !node.is_empty()
                && node.len() <= 63
                && node.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
            if !valid {
                p.0.push(format!(
                    "cluster.node: {node:?} is not a node name (1 to 63 letters, digits or '-')"
                ));
            }
            if shared.is_relative() {
                p.0.push(format!(
                    "cluster.shared: {} must be an absolute path",
                    shared.display()
                ));
            }
            let lease = match &f.lease {
                None => DEFAULT_CLUSTER_LEASE,
                Some(text) => parse_duration(text)
                    .ok()
                    .filter(|d| *d >= Duration::from_secs(1))
                    .unwrap_or_else(|| {
                        p.0.push(format!(
                            "cluster.lease: {text:?} is not a duration of 1s or more"
                        ));
                        DEFAULT_CLUSTER_LEASE
                    }),
            };
            Some(ClusterConfig {
                node: node.clone(),
                shared: shared.clone(),
                lease,
            })
        }
        _ => {
            p.0.push("cluster.node and cluster.shared must be given together".into());
            None
        }
    }
}

pub(super) fn acme(f: &AcmeFile, p: &mut Problems) -> AcmeConfig {
    let defaults = AcmeConfig::default();
    let directory = match &f.directory {
        None => defaults.directory,
        Some(text) => p
            .check(HttpsUrl::parse(text).map_err(|e| format!("acme.directory: {e}")))
            .unwrap_or(defaults.directory),
    };
    let contact = f.contact.as_ref().map(|text| {
        let address = text.strip_prefix("mailto:").unwrap_or(text);
        let valid = address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !local.contains([' ', ',', '<', '>', ':'])
                && crate::wire::address::domain_is_valid(domain)
                && !domain.starts_with('[')
        });
        if !valid {
            p.0.push(format!(
                "acme.contact: expected an email address, not {text:?}"
            ));
        }
        format!("mailto:{address}")
    });
    let enabled = f.enabled.unwrap_or(DEFAULT_ACME_ENABLED);
    // Checked while enabled only: the example names a file few have.
    if let (Some(ca), true) = (&f.ca, enabled) {
        if !ca.is_file() {
            p.0.push(format!("acme.ca: no such file {}", ca.display()));
        }
    }
    let mut names: Vec<String> = Vec::new();
    for name in f.names.iter().flatten() {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !crate::wire::address::domain_is_valid(&name) || name.starts_with('[') {
            p.0.push(format!("acme.names: invalid DNS name {name:?}"));
        } else if !names.contains(&name) {
            names.push(name);
        }
    }
    AcmeConfig {
        enabled,
        directory,
        contact,
        ca: f.ca.clone(),
        names,
    }
}

pub(super) fn listener_sessions(file: &FileConfig, p: &mut Problems) -> ListenerSessions {
    ListenerSessions {
        submission: b("submission.max_sessions").count(file.submission.max_sessions, p),
        submissions: b("submissions.max_sessions").count(file.submissions.max_sessions, p),
        pop3s: b("pop3s.max_sessions").count(file.pop3s.max_sessions, p),
    }
}

pub(super) fn tls(f: &TlsFile, p: &mut Problems) -> TlsConfig {
    match (&f.cert, &f.key) {
        (Some(cert), Some(key)) => TlsConfig {
            cert: Some(cert.clone()),
            key: Some(key.clone()),
        },
        (None, None) => TlsConfig::default(),
        _ => {
            p.0.push("tls.cert and tls.key must be given together".into());
            TlsConfig::default()
        }
    }
}

pub(super) fn relay_from(f: &Option<Vec<String>>, p: &mut Problems) -> Vec<Cidr> {
    let texts = f.as_deref().unwrap_or_default();
    texts
        .iter()
        .filter_map(|text| p.check(Cidr::parse(text).map_err(|e| format!("relay_from: {e}"))))
        .collect()
}

pub(super) fn proxy(file: &FileConfig, p: &mut Problems) -> ProxyConfig {
    let from: Vec<Cidr> = file
        .proxy_from
        .iter()
        .flatten()
        .filter_map(|text| p.check(Cidr::parse(text).map_err(|e| format!("proxy_from: {e}"))))
        .collect();
    let proxy = ProxyConfig {
        smtp: file.smtp.proxy_protocol.unwrap_or(DEFAULT_PROXY_PROTOCOL),
        submission: file
            .submission
            .proxy_protocol
            .unwrap_or(DEFAULT_PROXY_PROTOCOL),
        submissions: file
            .submissions
            .proxy_protocol
            .unwrap_or(DEFAULT_PROXY_PROTOCOL),
        pop3: file.pop3.proxy_protocol.unwrap_or(DEFAULT_PROXY_PROTOCOL),
        pop3s: file.pop3s.proxy_protocol.unwrap_or(DEFAULT_PROXY_PROTOCOL),
        web: file.web.proxy_protocol.unwrap_or(DEFAULT_PROXY_PROTOCOL),
        from,
    };
    let sections = [
        ("smtp", proxy.smtp),
        ("submission", proxy.submission),
        ("submissions", proxy.submissions),
        ("pop3", proxy.pop3),
        ("pop3s", proxy.pop3s),
        ("web", proxy.web),
    ];
    // Anyone could name any address: headers are believed only from the
    // proxies, so there must be some.
    if file.proxy_from.as_ref().is_none_or(|f| f.is_empty()) {
        for (section, _) in sections.iter().filter(|(_, on)| *on) {
            p.0.push(format!(
                "{section}.proxy_protocol: needs proxy_from, the networks of the proxies that send the header"
            ));
        }
    }
    proxy
}

pub(super) fn limits(f: &LimitsFile, p: &mut Problems) -> LimitsConfig {
    LimitsConfig {
        sessions_per_address: b("limits.sessions_per_address").count(f.sessions_per_address, p),
        connections_per_minute: b("limits.connections_per_minute")
            .count(f.connections_per_minute, p),
        login_failures: b("limits.login_failures").count(f.login_failures, p),
        tls_handshake_timeout: b("limits.tls_handshake_timeout")
            .duration(&f.tls_handshake_timeout, p),
    }
}

pub(super) fn backup(f: &BackupFile, p: &mut Problems) -> BackupConfig {
    BackupConfig {
        keep: b("backup.keep").count(f.keep, p),
        every: b("backup.every").duration(&f.every, p),
    }
}

pub(super) fn quota(f: &QuotaFile, p: &mut Problems) -> QuotaConfig {
    QuotaConfig {
        default: b("quota.default").size(&f.default, p),
        temporary: f.temporary.unwrap_or(DEFAULT_QUOTA_TEMPORARY),
        warn_percent: b("quota.warn_percent").count(f.warn_percent, p),
    }
}

/// Checked even while greylisting is off, so turning it on cannot fail later.
pub(super) fn greylist(f: &GreylistFile, p: &mut Problems) -> Option<GreylistConfig> {
    let retry_window = p.given(
        "greylist.retry_window",
        &f.retry_window,
        &f.retry_window_hours,
    );
    let allow = p.given("greylist.allow", &f.allow, &f.allow_days);
    let settings = GreylistConfig {
        delay: b("greylist.delay").duration(&f.delay, p),
        retry_window: b("greylist.retry_window").duration_given(retry_window, p),
        allow: b("greylist.allow").duration_given(allow, p),
    };
    f.enabled
        .unwrap_or(DEFAULT_GREYLIST_ENABLED)
        .then_some(settings)
}

pub(super) fn dnsbl(f: &DnsblFile, p: &mut Problems) -> Vec<String> {
    let zones = f.zones.clone().unwrap_or_default();
    for zone in &zones {
        if !crate::wire::address::domain_is_valid(zone.trim_end_matches('.')) {
            p.0.push(format!("dnsbl.zones: invalid zone {zone:?}"));
        }
    }
    zones
}

pub(super) fn admin_password_hash(f: &Option<String>, p: &mut Problems) -> Option<String> {
    let hash = f.as_ref()?;
    if !hash.starts_with("$argon2") {
        p.0.push("admin_password_hash: expected an Argon2 hash (\"$argon2id$...\")".into());
    }
    Some(hash.clone())
}

pub(super) fn spam(f: &SpamFile, p: &mut Problems) -> SpamSettings {
    let defaults = SpamSettings::default();
    let action = match f.action.as_deref() {
        None => defaults.action,
        Some("reject") => SpamAction::Reject,
        Some("tag") => SpamAction::Tag,
        Some(other) => {
            p.0.push(format!(
                "spam.action: expected \"reject\" or \"tag\", not {other:?}"
            ));
            defaults.action
        }
    };
    let subject_tag = f.subject_tag.clone().unwrap_or(defaults.subject_tag);
    if subject_tag.contains(['\r', '\n']) {
        p.0.push("spam.subject_tag must be one line".into());
    }
    SpamSettings {
        recipient_limit: b("spam.recipient_limit").count(f.recipient_limit, p),
        action,
        subject_tag,
    }
}

pub(super) fn dkim(f: &DkimFile, p: &mut Problems) -> DkimConfig {
    let selector = f.selector.clone();
    if let Some(base) = &selector {
        if !crate::dkim::keys::selector_base_is_valid(base) {
            p.0.push(format!(
                "dkim.selector: expected lowercase letters, digits and inner hyphens, at most {} characters, not {base:?}",
                crate::dkim::keys::MAX_SELECTOR_BASE
            ));
        }
    }
    DkimConfig {
        selector,
        sign: f.sign.unwrap_or(DEFAULT_DKIM_SIGN),
    }
}

pub(super) fn inbound(f: &InboundFile, p: &mut Problems) -> InboundModes {
    let defaults = InboundModes::default();
    let mut enforcement = |key: &str, value: &Option<String>, default| match value {
        None => default,
        Some(v) => Enforcement::parse(v).unwrap_or_else(|| {
            p.0.push(format!(
                "{key}: expected \"enforce\", \"tag\" or \"off\", not {v:?}"
            ));
            default
        }),
    };
    let spf = enforcement("inbound.spf", &f.spf, defaults.spf);
    let dmarc = enforcement("inbound.dmarc", &f.dmarc, defaults.dmarc);
    let dkim = match &f.dkim {
        None => defaults.dkim,
        Some(v) => DkimMode::parse(v).unwrap_or_else(|| {
            p.0.push(format!(
                "inbound.dkim: expected \"verify\" or \"off\", not {v:?}"
            ));
            defaults.dkim
        }),
    };
    InboundModes { spf, dkim, dmarc }
}

pub(super) fn queue(file: &FileConfig, p: &mut Problems) -> QueueConfig {
    let q = &file.queue;
    let warn = p.given("queue.warn", &q.warn, &file.queue_warn);
    let expire = p.given("queue.return", &q.give_back, &file.queue_return);
    QueueConfig {
        smarthost: smarthost(file, p),
        warn: b("queue.warn").duration_given(warn, p),
        expire: b("queue.return").duration_given(expire, p),
        retry_first: b("queue.retry_first").duration(&q.retry_first, p),
        retry_max: b("queue.retry_max").duration(&q.retry_max, p),
        max_deliveries: b("queue.max_deliveries").count(q.max_deliveries, p),
        max_per_destination: b("queue.max_per_destination").count(q.max_per_destination, p),
        smtp_port: b("queue.smtp_port").count(q.smtp_port, p),
    }
}

fn smarthost(file: &FileConfig, p: &mut Problems) -> Option<Smarthost> {
    let q = &file.queue;
    // Old names keep their old spelling in messages.
    let (text, key) = match p.given("queue.smarthost", &q.smarthost, &file.smarthost) {
        Some(g) => (g.value.as_str(), g.name),
        None => return None,
    };
    if text.trim().is_empty() {
        return None;
    }
    let user = p.given(
        "queue.smarthost_user",
        &q.smarthost_user,
        &file.smarthost_user,
    );
    let password = p.given(
        "queue.smarthost_password",
        &q.smarthost_password,
        &file.smarthost_password,
    );
    let tls = p.given("queue.smarthost_tls", &q.smarthost_tls, &file.smarthost_tls);
    let ca = p.given("queue.smarthost_ca", &q.smarthost_ca, &file.smarthost_ca);
    let (host, port) = p.check(smarthost_address(text, key))?;
    let tls = match tls.as_ref().map(|g| (g.value.as_str(), g.name)) {
        None if port == 465 => SmarthostTls::Implicit,
        None | Some(("starttls", _)) => SmarthostTls::StartTls,
        Some(("implicit", _)) => SmarthostTls::Implicit,
        Some(("none", _)) => SmarthostTls::None,
        Some((other, key)) => {
            p.0.push(format!(
                "{key}: expected \"starttls\", \"implicit\" or \"none\", not {other:?}"
            ));
            return None;
        }
    };
    let login = match (user, password) {
        (Some(u), Some(pw)) => Some((u.value.clone(), pw.value.clone())),
        (None, None) => None,
        (u, pw) => {
            let given = u.or(pw).map_or("", |g| g.name);
            let section = if given.starts_with("queue.") {
                "queue."
            } else {
                ""
            };
            p.0.push(format!(
                "{section}smarthost_user and {section}smarthost_password go together"
            ));
            return None;
        }
    };
    Some(Smarthost {
        host,
        port,
        login,
        tls,
        ca: ca.map(|g| g.value.clone()),
    })
}

/// `HOST`, `HOST:PORT` or `[HOST]:PORT`; the port is 587 when left out.
fn smarthost_address(text: &str, key: &str) -> Result<(String, u16), String> {
    let (host, port) = match text.trim().rsplit_once(':') {
        Some((h, port)) => (
            h,
            port.parse::<u16>()
                .map_err(|_| format!("{key}: invalid port in {text:?}"))?,
        ),
        None => (text.trim(), DEFAULT_SMARTHOST_PORT),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{key}: no host in {text:?}"));
    }
    Ok((host.to_string(), port))
}

impl NetworkFile {
    pub(super) fn check(&self, p: &mut Problems) -> Option<Wifi> {
        match self.mode.as_deref() {
            None | Some("dhcp") => {}
            Some("static") => {
                let address = self.address.as_deref().unwrap_or("");
                let valid = address.split_once('/').is_some_and(|(ip, len)| {
                    ip.parse::<std::net::IpAddr>().is_ok()
                        && len.parse::<u8>().is_ok_and(|n| n <= 128)
                });
                if !valid {
                    p.0.push(format!(
                        "network.address: expected an address with prefix length like \"192.168.1.20/24\", not {address:?}"
                    ));
                }
            }
            Some(other) => p.0.push(format!(
                "network.mode: expected \"dhcp\" or \"static\", not {other:?}"
            )),
        }
        let addresses = self.gateway.iter().map(|g| ("network.gateway", g.as_str()));
        let servers = self.dns.as_deref().unwrap_or("").split_whitespace();
        for (key, address) in addresses.chain(servers.map(|s| ("network.dns", s))) {
            if address.parse::<std::net::IpAddr>().is_err() {
                p.0.push(format!("{key}: invalid address {address:?}"));
            }
        }
        let words = |v: &Option<String>| v.as_deref().unwrap_or("").split_whitespace().count();
        if words(&self.interface) > 1 || words(&self.ntp) > 8 {
            p.0.push("network.interface is one name; network.ntp at most 8 servers".into());
        }
        self.check_wifi(p)
    }

    /// The Wi-Fi keys, as the supplicant will take them.
    fn check_wifi(&self, p: &mut Problems) -> Option<Wifi> {
        let keys = wifi::check(
            self.wifi_ssid.as_deref(),
            self.wifi_password.as_deref(),
            self.wifi_country.as_deref(),
        );
        keys.unwrap_or_else(|problems| {
            p.0.extend(problems);
            None
        })
    }
}
