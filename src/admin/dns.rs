//! What a person puts into their DNS for a working box, and a check of
//! what is there: the MX, the host name's address, SPF, the DKIM keys, a
//! starting DMARC record, and what mail programs look up to set themselves
//! up (RFC 6186 SRV records, the autoconfig and autodiscover names), for
//! each served domain.

use crate::config::clients::{self as autoconfig, Security};
use crate::config::Config;
use crate::dkim::keys;
use crate::dns::message::{Answer, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_MX, TYPE_SRV, TYPE_TXT};
use crate::dns::{LookupError, Resolver};
use crate::store::disk;

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Owner name, without the trailing dot.
    pub name: String,
    pub kind: Kind,
    /// The record's data as a zone file writes it (TXT without quotes).
    pub value: String,
    /// What it is for, or what to put in, for a person.
    pub note: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mx,
    /// The host name's address: only a hint, Postbox does not know the
    /// address the world reaches it at.
    Address,
    Spf,
    Dkim,
    Dmarc,
    /// Where mail programs find a service (RFC 6186), or that it is not
    /// offered (target `.`).
    Srv,
    /// A name mail programs fetch their settings from, an alias of the
    /// host name (an address of its own does as well).
    Alias,
}

impl Kind {
    fn rr_type(self) -> &'static str {
        match self {
            Kind::Mx => "MX",
            Kind::Address => "A/AAAA",
            Kind::Spf | Kind::Dkim | Kind::Dmarc => "TXT",
            Kind::Srv => "SRV",
            Kind::Alias => "CNAME",
        }
    }

    /// The type a zone file line takes: the address hint is written as
    /// an A record, a line that only needs the address put in.
    fn zone_type(self) -> &'static str {
        match self {
            Kind::Address => "A",
            other => other.rr_type(),
        }
    }
}

impl Wanted {
    /// The record as a zone file line (TXT values in strings of at most
    /// 255 characters, the most one may hold). The owner name ends in a
    /// dot: without one, a zone file appends its $ORIGIN, and pasted into
    /// the domain's own zone `club.example` would become
    /// `club.example.club.example`.
    pub fn zone_line(&self) -> String {
        let data = match self.kind {
            Kind::Spf | Kind::Dkim | Kind::Dmarc => quoted_strings(&self.value),
            _ => self.value.clone(),
        };
        format!("{}. {} {}", self.name, self.kind.zone_type(), data)
    }
}

fn quoted_strings(value: &str) -> String {
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    strings.join(" ")
}

/// SPF mechanisms of smarthost providers whose SPF name is known: mail
/// they send for us passes SPF only when it is included.
const SMARTHOST_SPF: &[(&str, &str)] = &[
    ("smtp.gmail.com", "include:_spf.google.com"),
    ("smtp-relay.gmail.com", "include:_spf.google.com"),
    ("smtp.office365.com", "include:spf.protection.outlook.com"),
    (
        "smtp-mail.outlook.com",
        "include:spf.protection.outlook.com",
    ),
    ("smtp.fastmail.com", "include:spf.messagingengine.com"),
    ("smtp.mailgun.org", "include:mailgun.org"),
    ("smtp.sendgrid.net", "include:sendgrid.net"),
    (
        "email-smtp.eu-west-1.amazonaws.com",
        "include:amazonses.com",
    ),
    (
        "email-smtp.us-east-1.amazonaws.com",
        "include:amazonses.com",
    ),
];

/// The SPF record: the domain's MX hosts send its mail, and the
/// smarthost's senders when its provider is known.
pub fn spf_value(config: &Config) -> (String, &'static str) {
    let smarthost = config.queue.smarthost.as_ref().map(|s| s.host.as_str());
    let include = smarthost.and_then(|host| {
        SMARTHOST_SPF
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(host))
            .map(|(_, include)| *include)
    });
    match (smarthost, include) {
        (Some(_), Some(include)) => (
            format!("v=spf1 mx {include} -all"),
            "SPF: mail from this domain comes from its MX and the smarthost",
        ),
        (Some(_), None) => (
            "v=spf1 mx -all".into(),
            "SPF: add your smarthost provider's include: before -all",
        ),
        (None, _) => (
            "v=spf1 mx -all".into(),
            "SPF: mail from this domain comes from its MX",
        ),
    }
}

/// Every record `domain` needs. Makes the DKIM keys if they are missing,
/// as the server does at start.
pub fn records(config: &Config, domain: &str) -> Result<Vec<Wanted>, String> {
    let host = config.hostname.trim_end_matches('.');
    let mut wanted = vec![
        Wanted {
            name: domain.into(),
            kind: Kind::Mx,
            value: format!("10 {host}."),
            note: "mail for the domain comes here",
        },
        Wanted {
            name: host.into(),
            kind: Kind::Address,
            value: "<this box's public IPv4 address>".into(),
            note: "the address the world reaches this box at: put it in and remove the ';' (AAAA for IPv6)",
        },
    ];
    let (spf, note) = spf_value(config);
    wanted.push(Wanted {
        name: domain.into(),
        kind: Kind::Spf,
        value: spf,
        note,
    });
    for record in dkim_records(config, domain)? {
        let note = if record.removable_after.is_some() {
            "DKIM: a replaced key; keep it until mail signed with it has arrived"
        } else {
            "DKIM: the key outgoing mail is signed with"
        };
        wanted.push(Wanted {
            name: record.name,
            kind: Kind::Dkim,
            value: record.value,
            note,
        });
    }
    wanted.push(Wanted {
        name: format!("_dmarc.{domain}"),
        kind: Kind::Dmarc,
        value: format!("v=DMARC1; p=none; rua=mailto:postmaster@{domain}"),
        note: "DMARC: start with p=none; p=quarantine once reports show all is signed",
    });
    wanted.extend(client_setup(config, domain));
    Ok(wanted)
}

/// The RFC 6186 services, in the order they are listed: sending, then
/// reading; implicit TLS first. IMAP is not served.
const SETUP_SERVICES: &[&str] = &[
    "_submissions",
    "_submission",
    "_pop3s",
    "_pop3",
    "_imaps",
    "_imap",
];

/// What mail programs look up to set themselves up for `domain`: an SRV
/// record per RFC 6186 service (implicit TLS at a lower priority than
/// STARTTLS, which RFC 8314 §5.1 asks for; `0 0 0 .` for each not on), and
/// the names Thunderbird and Outlook fetch their settings from, when the
/// web listeners that answer them are on (Thunderbird asks over HTTPS, then
/// HTTP; Outlook posts over HTTPS only).
pub fn client_setup(config: &Config, domain: &str) -> Vec<Wanted> {
    let host = config.hostname.trim_end_matches('.');
    let services = autoconfig::services(config);
    let mut wanted: Vec<Wanted> = SETUP_SERVICES
        .iter()
        .map(|label| {
            let service = services.iter().find(|s| s.srv_label() == *label);
            let (value, note) = match service {
                Some(service) => {
                    let priority = match service.security {
                        Security::Implicit => 0,
                        Security::StartTls => 10,
                    };
                    (
                        format!("{priority} 1 {} {host}.", service.port),
                        "client setup (RFC 6186): where mail programs find this service",
                    )
                }
                None => (
                    "0 0 0 .".to_string(),
                    "client setup (RFC 6186): this service is not offered here",
                ),
            };
            Wanted {
                name: format!("{label}._tcp.{domain}"),
                kind: Kind::Srv,
                value,
                note,
            }
        })
        .collect();
    let web = &config.web;
    if web.listen.is_some() || web.http_listen.is_some() {
        wanted.push(Wanted {
            name: format!("autoconfig.{domain}"),
        kind: Kind::Alias,
        value: format!("{host}."),
        note: "client setup: Thunderbird fetches its settings from https://autoconfig.DOMAIN/mail/config-v1.1.xml",
    });
    }
    if web.listen.is_some() {
        wanted.push(Wanted {
        name: format!("autodiscover.{domain}"),
        kind: Kind::Alias,
        value: format!("{host}."),
        note: "client setup: Outlook posts to https://autodiscover.DOMAIN/autodiscover/autodiscover.xml",
    });
    }
    wanted
}

fn dkim_records(config: &Config, domain: &str) -> Result<Vec<keys::Record>, String> {
    let now = std::time::SystemTime::now();
    let base = config.dkim.selector.as_deref();
    let domains = [domain.to_string()];
    keys::ensure(disk::system(), &config.data_dir, &domains, base, now)
        .and_then(|_| keys::records(disk::system(), &config.data_dir, domain))
        .map_err(|e| format!("DKIM keys of {domain}: {e}"))
}

/// The served domains asked about: `domain` when given (it must be
/// served), else all of them.
fn domains_asked(config: &Config, domain: Option<&str>) -> Result<Vec<String>, String> {
    super::existing_data_dir(config)?;
    match domain {
        Some(name) => Ok(vec![super::dkim::served(config, name)?]),
        None => Ok(super::dkim::served_domains(config)),
    }
}

/// `dns records [DOMAIN]`: zone file lines, each after a comment saying
/// what it is for. The address hint is itself a comment, so the whole
/// answer stays a valid zone file until the address is put in.
pub fn show(config: &Config, domain: Option<&str>) -> Result<String, String> {
    let mut out = String::new();
    for domain in domains_asked(config, domain)? {
        for record in records(config, &domain)? {
            let hint = if record.kind == Kind::Address {
                "; "
            } else {
                ""
            };
            out.push_str(&format!(
                "; {}\n{hint}{}\n",
                record.note,
                record.zone_line()
            ));
        }
    }
    Ok(out.trim_end().to_string())
}

/// What the resolver said about one wanted record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Ok,
    Missing,
    /// Published, but not as wanted: what is there.
    Wrong(String),
    /// No answer: the check could not be made.
    Unknown(String),
}

/// Compares what is published for `wanted` with what it should be.
pub fn judge(wanted: &Wanted, answer: Result<&Answer, &LookupError>) -> Found {
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return Found::Unknown(e.to_string()),
    };
    match wanted.kind {
        Kind::Mx => {
            let host = wanted.value.split_whitespace().last().unwrap_or("");
            let host = host.trim_end_matches('.');
            let hosts: Vec<String> = answer.mx().iter().map(|(_, h)| h.to_string()).collect();
            if hosts.is_empty() {
                Found::Missing
            } else if hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                Found::Ok
            } else {
                Found::Wrong(hosts.join(", "))
            }
        }
        Kind::Address => {
            if answer.ipv4().is_empty() && answer.ipv6().is_empty() {
                Found::Missing
            } else {
                Found::Ok
            }
        }
        Kind::Srv => {
            let (port, target) = srv_port_and_target(&wanted.value);
            let found = answer.srv();
            let same = |(_, _, p, t): &(u16, u16, u16, &str)| {
                *p == port && t.trim_end_matches('.').eq_ignore_ascii_case(target)
            };
            let listed = || {
                found
                    .iter()
                    .map(|(priority, weight, port, target)| {
                        format!("{priority} {weight} {port} {target}.")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match found.as_slice() {
                [] => Found::Missing,
                // "Not offered" is one record alone (RFC 2782).
                [one] if target.is_empty() && same(one) => Found::Ok,
                _ if !target.is_empty() && found.iter().any(same) => Found::Ok,
                _ => Found::Wrong(listed()),
            }
        }
        Kind::Alias => {
            let host = wanted.value.trim_end_matches('.');
            match answer.cname().as_slice() {
                [] => Found::Missing,
                [one] if one.trim_end_matches('.').eq_ignore_ascii_case(host) => Found::Ok,
                more => Found::Wrong(format!("{}.", more.join(". "))),
            }
        }
        Kind::Spf | Kind::Dkim | Kind::Dmarc => {
            let prefix = match wanted.kind {
                Kind::Spf => "v=spf1",
                Kind::Dkim => "v=DKIM1",
                _ => "v=DMARC1",
            };
            let texts: Vec<String> = answer
                .txt()
                .iter()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .filter(|t| {
                    t.get(..prefix.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
                })
                .collect();
            match texts.as_slice() {
                [] => Found::Missing,
                [one] if same_record(wanted.kind, one, &wanted.value) => Found::Ok,
                // SPF and DMARC are the owner's to tune: any one record is fine.
                [_] if wanted.kind != Kind::Dkim => Found::Ok,
                [one] => Found::Wrong(one.clone()),
                more => Found::Wrong(format!("{} records: {}", more.len(), more.join(" | "))),
            }
        }
    }
}

/// The port and target of an SRV record's data (`0 1 465 host.`); the
/// target "" is the root.
fn srv_port_and_target(value: &str) -> (u16, &str) {
    let mut fields = value.split_whitespace().skip(2);
    let port = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let target = fields.next().unwrap_or(".").trim_end_matches('.');
    (port, target)
}

/// The same record, spaces aside; a DKIM key by its `p=`.
fn same_record(kind: Kind, found: &str, wanted: &str) -> bool {
    let squeeze = |s: &str| {
        s.split_whitespace()
            .collect::<String>()
            .to_ascii_lowercase()
    };
    if kind == Kind::Dkim {
        let key = |s: &str| {
            s.split(';')
                .map(str::trim)
                .find_map(|t| t.strip_prefix("p="))
                .map(|p| p.split_whitespace().collect::<String>())
        };
        return key(found).is_some() && key(found) == key(wanted);
    }
    squeeze(found) == squeeze(wanted)
}

/// `dns check [DOMAIN]`: asks the configured resolver for each record.
/// `Err` (exit 1) when something is missing or wrong, listing all.
pub fn check(config: &Config, domain: Option<&str>) -> Result<String, String> {
    let resolver = Resolver::new(config.dns_resolver);
    let mut all_wanted = Vec::new();
    for domain in domains_asked(config, domain)? {
        all_wanted.extend(records(config, &domain)?);
    }
    // Every question at once: a resolver that does not answer costs one
    // time limit in all, not one per record.
    let executor = smol::LocalExecutor::new();
    let asked: Vec<_> = all_wanted
        .iter()
        .map(|wanted| executor.spawn(ask(&resolver, wanted)))
        .collect();
    let all_found = smol::block_on(executor.run(async {
        let mut all = Vec::with_capacity(asked.len());
        for task in asked {
            all.push(task.await);
        }
        all
    }));
    let mut lines = Vec::new();
    let mut problems = 0;
    for (wanted, found) in all_wanted.iter().zip(all_found) {
        let line = match &found {
            Found::Ok => format!("ok       {} {}", wanted.name, wanted.kind.rr_type()),
            Found::Missing => format!("missing  {}", wanted.zone_line()),
            Found::Wrong(there) => format!(
                "wrong    {} {}: found {there}; want {}",
                wanted.name,
                wanted.kind.rr_type(),
                wanted.value
            ),
            Found::Unknown(why) => {
                format!("unknown  {} {}: {why}", wanted.name, wanted.kind.rr_type())
            }
        };
        problems += usize::from(found != Found::Ok);
        lines.push(line);
    }
    let text = lines.join("\n");
    if problems == 0 {
        Ok(text)
    } else {
        Err(format!(
            "{text}\n{problems} of {} records need attention",
            lines.len()
        ))
    }
}

async fn ask(resolver: &Resolver, wanted: &Wanted) -> Found {
    let name = wanted.name.as_str();
    match wanted.kind {
        Kind::Address => ask_address(resolver, name).await,
        Kind::Mx => judge(wanted, resolver.lookup(name, TYPE_MX).await.as_ref()),
        Kind::Srv => judge(wanted, resolver.lookup(name, TYPE_SRV).await.as_ref()),
        Kind::Alias => {
            let alias = resolver.lookup(name, TYPE_CNAME).await;
            if let Ok(Answer::NoData { .. }) = alias {
                // The name is there without an alias: an address of its
                // own reaches the box as well.
                return ask_address(resolver, name).await;
            }
            judge(wanted, alias.as_ref())
        }
        _ => judge(wanted, resolver.lookup(name, TYPE_TXT).await.as_ref()),
    }
}

/// Whether `name` has an IPv4 or IPv6 address.
async fn ask_address(resolver: &Resolver, name: &str) -> Found {
    let wanted = Wanted {
        name: name.into(),
        kind: Kind::Address,
        value: String::new(),
        note: "",
    };
    let (v4, v6) = smol::future::zip(
        resolver.lookup(name, TYPE_A),
        resolver.lookup(name, TYPE_AAAA),
    )
    .await;
    match (v4, v6) {
        (Ok(answer), _) if !answer.ipv4().is_empty() => Found::Ok,
        (_, Ok(answer)) => judge(&wanted, Ok(&answer)),
        (Err(e), Err(_)) => judge(&wanted, Err(&e)),
        (Ok(answer), Err(_)) => judge(&wanted, Ok(&answer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::message::{Record, Resource};

    fn txt(values: &[&str]) -> Answer {
        Answer::Records(
            values
                .iter()
                .map(|v| Resource {
                    record: Record::Txt(v.as_bytes().to_vec()),
                    ttl: 60,
                })
                .collect(),
        )
    }

    fn wanted(kind: Kind, value: &str) -> Wanted {
        Wanted {
            name: "club.example".into(),
            kind,
            value: value.into(),
            note: "",
        }
    }

    #[test]
    fn published_records_are_judged() {
        let spf = wanted(Kind::Spf, "v=spf1 mx -all");
        assert_eq!(judge(&spf, Ok(&txt(&["v=spf1 mx -all"]))), Found::Ok);
        assert_eq!(judge(&spf, Ok(&txt(&["v=spf1 a mx ~all"]))), Found::Ok);
        assert_eq!(
            judge(&spf, Ok(&txt(&["google-site-verification=x"]))),
            Found::Missing
        );
        assert!(matches!(
            judge(&spf, Ok(&txt(&["v=spf1 mx -all", "v=spf1 -all"]))),
            Found::Wrong(_)
        ));
        let nothing = Answer::NoSuchName { negative_ttl: None };
        assert_eq!(judge(&spf, Ok(&nothing)), Found::Missing);
        let key = wanted(Kind::Dkim, "v=DKIM1; k=ed25519; p=AAAA");
        assert_eq!(
            judge(&key, Ok(&txt(&["v=DKIM1; k=ed25519; p=AA AA"]))),
            Found::Ok
        );
        assert!(matches!(
            judge(&key, Ok(&txt(&["v=DKIM1; k=ed25519; p=BBBB"]))),
            Found::Wrong(_)
        ));
        assert!(matches!(
            judge(&key, Err(&LookupError::TimedOut)),
            Found::Unknown(_)
        ));
    }

    #[test]
    fn spf_includes_a_known_smarthost() {
        let mut config = crate::config::Config::load(&crate::config::Overrides {
            domains: vec!["club.example".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(spf_value(&config).0, "v=spf1 mx -all");
        config.queue.smarthost = Some(crate::config::Smarthost {
            host: "smtp.gmail.com".into(),
            port: 587,
            login: None,
            tls: crate::config::SmarthostTls::StartTls,
            ca: None,
        });
        assert_eq!(
            spf_value(&config).0,
            "v=spf1 mx include:_spf.google.com -all"
        );
    }

    fn records_of(records: Vec<Record>) -> Answer {
        Answer::Records(
            records
                .into_iter()
                .map(|record| Resource { record, ttl: 60 })
                .collect(),
        )
    }

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Record {
        Record::Srv {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn client_setup_names_the_listeners_that_are_on() {
        let config = crate::config::Config::from_toml(concat!(
            "hostname = \"mail.club.example\"\ndomains = [\"club.example\"]\n",
            "[pop3]\nlisten = \"0.0.0.0:110\"\n",
            "[pop3s]\nlisten = \"0.0.0.0:995\"\n",
            "[submission]\nlisten = \"off\"\n",
            "[submissions]\nlisten = \"0.0.0.0:465\"\n",
        ))
        .unwrap();
        let lines: Vec<String> = client_setup(&config, "club.example")
            .iter()
            .map(Wanted::zone_line)
            .collect();
        assert_eq!(
            lines,
            [
                "_submissions._tcp.club.example. SRV 0 1 465 mail.club.example.",
                "_submission._tcp.club.example. SRV 0 0 0 .",
                "_pop3s._tcp.club.example. SRV 0 1 995 mail.club.example.",
                "_pop3._tcp.club.example. SRV 10 1 110 mail.club.example.",
                "_imaps._tcp.club.example. SRV 0 0 0 .",
                "_imap._tcp.club.example. SRV 0 0 0 .",
                "autoconfig.club.example. CNAME mail.club.example.",
                "autodiscover.club.example. CNAME mail.club.example.",
            ]
        );
        // The aliases lead to the web listeners: none without them, and
        // Outlook's only with HTTPS.
        let names = |web: &str| -> Vec<String> {
            let toml = format!("hostname = \"mail.club.example\"\n[web]\n{web}");
            let config = crate::config::Config::from_toml(&toml).unwrap();
            client_setup(&config, "club.example")
                .into_iter()
                .filter(|w| w.kind == Kind::Alias)
                .map(|w| w.name)
                .collect()
        };
        assert!(names("listen = \"off\"\nhttp_listen = \"off\"\n").is_empty());
        assert_eq!(names("listen = \"off\"\n"), ["autoconfig.club.example"]);
    }

    #[test]
    fn srv_and_alias_records_are_judged() {
        let on = wanted(Kind::Srv, "0 1 465 mail.club.example.");
        let judged = |w: &Wanted, records: Vec<Record>| judge(w, Ok(&records_of(records)));
        assert_eq!(
            judged(&on, vec![srv(0, 1, 465, "mail.club.example")]),
            Found::Ok
        );
        assert_eq!(
            judged(&on, vec![srv(5, 0, 465, "MAIL.club.example.")]),
            Found::Ok,
            "priority and weight are the owner's"
        );
        assert_eq!(
            judged(&on, vec![srv(0, 1, 587, "mail.club.example")]),
            Found::Wrong("0 1 587 mail.club.example.".into())
        );
        assert_eq!(
            judged(&on, vec![srv(0, 0, 0, "")]),
            Found::Wrong("0 0 0 .".into())
        );
        assert_eq!(judged(&on, vec![]), Found::Missing);
        let nothing = Answer::NoSuchName { negative_ttl: None };
        assert_eq!(judge(&on, Ok(&nothing)), Found::Missing);
        let off = wanted(Kind::Srv, "0 0 0 .");
        assert_eq!(judged(&off, vec![srv(0, 0, 0, "")]), Found::Ok);
        assert!(matches!(
            judged(&off, vec![srv(0, 1, 143, "mail.club.example")]),
            Found::Wrong(_)
        ));
        let alias = wanted(Kind::Alias, "mail.club.example.");
        let cname = |t: &str| vec![Record::Cname(t.into())];
        assert_eq!(judged(&alias, cname("Mail.Club.Example.")), Found::Ok);
        assert_eq!(
            judged(&alias, cname("web.host.example")),
            Found::Wrong("web.host.example.".into())
        );
        assert_eq!(judge(&alias, Ok(&nothing)), Found::Missing);
    }

    #[test]
    fn txt_values_split_into_strings_of_255() {
        let long = "p=".to_string() + &"A".repeat(400);
        let line = wanted(Kind::Dkim, &long).zone_line();
        assert_eq!(line.matches('"').count(), 4);
    }
}
