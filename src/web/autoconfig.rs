//! What mail programs read to set themselves up: Thunderbird's autoconfig
//! file (clientConfig 1.1), Outlook's Autodiscover answer (POX, the 2006
//! schemas) and an Apple configuration profile. Pure functions of the
//! config: they name only the listeners that are on, implicit TLS before
//! STARTTLS, and logins by full address (a login names `local@domain`; a
//! bare name means the first served domain, which would be wrong for
//! members of the others).

use crate::config::Config;
use crate::limits::{AUTODISCOVER_MAX_DEPTH, AUTODISCOVER_MAX_REQUEST};
use crate::wire::address::Address;
use std::fmt::Write;

/// The namespace of an Outlook Autodiscover request.
pub const REQUEST_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
/// The response schema Outlook asks for and gets (mail settings).
pub const RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
/// The namespace of the Autodiscover response's outer element.
const OUTER_RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";

pub use crate::config::clients::{services, Protocol, Security, Service};

fn host(config: &Config) -> &str {
    config.hostname.trim_end_matches('.')
}

/// The served domain of `address` (lower case), if it is one.
fn served_domain<'a>(config: &'a Config, address: &str) -> Option<&'a str> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.');
    config
        .domains
        .iter()
        .find(|d| d.eq_ignore_ascii_case(domain))
        .map(String::as_str)
}

/// Text safe inside XML character data and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0 at all: left out.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// Thunderbird's autoconfig file (`/mail/config-v1.1.xml` and
/// `/.well-known/autoconfig/...`). `address` is the `emailaddress` query
/// parameter: its domain names the provider when it is served, else the
/// first served domain does. The user name is Thunderbird's placeholder for
/// the address typed in, so the file is the same for every member.
pub fn thunderbird(config: &Config, address: Option<&str>) -> String {
    let id = address
        .and_then(|a| served_domain(config, a))
        .unwrap_or_else(|| config.default_domain());
    let host = escape(host(config));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<clientConfig version=\"1.1\">\n");
    let _ = writeln!(out, "  <emailProvider id=\"{}\">", escape(id));
    let domains = std::iter::once(id).chain(
        config
            .domains
            .iter()
            .map(String::as_str)
            .filter(|d| !d.eq_ignore_ascii_case(id)),
    );
    for domain in domains {
        let _ = writeln!(out, "    <domain>{}</domain>", escape(domain));
    }
    let _ = writeln!(out, "    <displayName>{} mail</displayName>", escape(id));
    let _ = writeln!(
        out,
        "    <displayShortName>{}</displayShortName>",
        escape(id)
    );
    for service in services(config) {
        let element = match service.protocol {
            Protocol::Pop3 => "incomingServer type=\"pop3\"",
            Protocol::Submission => "outgoingServer type=\"smtp\"",
        };
        let socket = match service.security {
            Security::Implicit => "SSL",
            Security::StartTls => "STARTTLS",
        };
        let _ = writeln!(out, "    <{element}>");
        let _ = writeln!(out, "      <hostname>{host}</hostname>");
        let _ = writeln!(out, "      <port>{}</port>", service.port);
        let _ = writeln!(out, "      <socketType>{socket}</socketType>");
        out.push_str("      <username>%EMAILADDRESS%</username>\n");
        out.push_str("      <authentication>password-cleartext</authentication>\n");
        let close = element.split(' ').next().unwrap_or(element);
        let _ = writeln!(out, "    </{close}>");
    }
    out.push_str("  </emailProvider>\n</clientConfig>\n");
    out
}

/// Outlook's Autodiscover answer to `request` (the POX request schema with
/// an `EMailAddress`): a POP3 and an SMTP `Protocol` for each listener
/// that is on, logging in with that address. `Err` says why a request is
/// refused: too large, not the request schema, no address, a domain not
/// served here, or a response schema other than Outlook's mail settings.
pub fn autodiscover(config: &Config, request: &[u8]) -> Result<String, String> {
    let asked = read_request(request)?;
    if let Some(schema) = &asked.response_schema {
        if schema != RESPONSE_SCHEMA {
            return Err(format!("response schema {schema:?} is not offered"));
        }
    }
    let address = asked.address.ok_or("the request has no EMailAddress")?;
    let (local, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| format!("{address:?} is not a mail address"))?;
    let address = Address::new(local, domain)
        .map_err(|e| format!("{address:?} is not a mail address: {e}"))?;
    if !config.serves(address.domain()) {
        return Err(format!("{} is not served here", address.domain()));
    }
    let host = escape(host(config));
    let login = escape(address.as_str());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let _ = writeln!(out, "<Autodiscover xmlns=\"{OUTER_RESPONSE_SCHEMA}\">");
    let _ = writeln!(out, "  <Response xmlns=\"{RESPONSE_SCHEMA}\">");
    out.push_str("    <Account>\n");
    out.push_str("      <AccountType>email</AccountType>\n");
    out.push_str("      <Action>settings</Action>\n");
    for service in services(config) {
        let kind = match service.protocol {
            Protocol::Pop3 => "POP3",
            Protocol::Submission => "SMTP",
        };
        // Encryption overrides SSL (MS-OXDSCLI): SSL is implicit TLS, TLS
        // is STARTTLS; SSL says encryption is on either way.
        let encryption = match service.security {
            Security::Implicit => "SSL",
            Security::StartTls => "TLS",
        };
        out.push_str("      <Protocol>\n");
        let _ = writeln!(out, "        <Type>{kind}</Type>");
        let _ = writeln!(out, "        <Server>{host}</Server>");
        let _ = writeln!(out, "        <Port>{}</Port>", service.port);
        let _ = writeln!(out, "        <LoginName>{login}</LoginName>");
        out.push_str("        <DomainRequired>off</DomainRequired>\n");
        out.push_str("        <SPA>off</SPA>\n");
        out.push_str("        <SSL>on</SSL>\n");
        let _ = writeln!(out, "        <Encryption>{encryption}</Encryption>");
        out.push_str("        <AuthRequired>on</AuthRequired>\n");
        if service.protocol == Protocol::Submission {
            // The same login and password as for reading.
            out.push_str("        <UsePOPAuth>on</UsePOPAuth>\n");
        }
        out.push_str("      </Protocol>\n");
    }
    out.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    Ok(out)
}

/// What an Autodiscover request asks.
#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    address: Option<String>,
    response_schema: Option<String>,
}

/// Reads an Autodiscover request: just enough XML for it. Bounded in size
/// and depth; no DOCTYPE (so no entity definitions to expand), only the
/// predefined and numeric character references. Elements are matched by
/// local name under a root `Autodiscover` in the request namespace.
fn read_request(request: &[u8]) -> Result<Request, String> {
    if request.len() > AUTODISCOVER_MAX_REQUEST {
        return Err(format!(
            "request of {} bytes (at most {AUTODISCOVER_MAX_REQUEST})",
            request.len()
        ));
    }
    let text = std::str::from_utf8(request).map_err(|_| "request is not UTF-8")?;
    let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Open elements: (qualified name, local name).
    let mut open: Vec<(&str, &str)> = Vec::new();
    let mut chars = String::new();
    let mut asked = Request::default();
    let mut seen_root = false;
    loop {
        let Some(lt) = rest.find('<') else {
            if !rest.trim().is_empty() || !open.is_empty() {
                return Err("request ends inside an element".into());
            }
            break;
        };
        let between = &rest[..lt];
        if open.is_empty() {
            if !between.trim().is_empty() {
                return Err("text outside the root element".into());
            }
        } else {
            chars.push_str(&unescape(between)?);
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<?") {
            rest = skip_past(after, "?>")?;
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = skip_past(after, "-->")?;
        } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").ok_or("unterminated CDATA")?;
            if open.is_empty() {
                return Err("CDATA outside the root element".into());
            }
            chars.push_str(&after[..end]);
            rest = &after[end + 3..];
        } else if rest.starts_with("<!") {
            return Err("DOCTYPE and declarations are not accepted".into());
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').ok_or("unterminated end tag")?;
            let name = after[..end].trim_end();
            let (qualified, local) = open.pop().ok_or("end tag without a start")?;
            if name != qualified {
                return Err(format!("</{name}> closes <{qualified}>"));
            }
            let path: Vec<&str> = open.iter().map(|(_, l)| *l).collect();
            if path == ["Autodiscover", "Request"] {
                let value = chars.trim().to_string();
                match local {
                    "EMailAddress" => asked.address = Some(value),
                    "AcceptableResponseSchema" => asked.response_schema = Some(value),
                    _ => {}
                }
            }
            chars.clear();
            rest = &after[end + 1..];
        } else {
            let (tag, after) = start_tag(&rest[1..])?;
            if open.is_empty() {
                if seen_root {
                    return Err("more than one root element".into());
                }
                seen_root = true;
                if tag.local != "Autodiscover" || tag.namespace.as_deref() != Some(REQUEST_SCHEMA) {
                    return Err(format!(
                        "not an Autodiscover request in {REQUEST_SCHEMA} (root <{}>)",
                        tag.qualified
                    ));
                }
            }
            if !tag.empty {
                if open.len() >= AUTODISCOVER_MAX_DEPTH {
                    return Err("elements nested too deep".into());
                }
                open.push((tag.qualified, tag.local));
            }
            chars.clear();
            rest = after;
        }
    }
    if !seen_root {
        return Err("empty request".into());
    }
    Ok(asked)
}

fn skip_past<'a>(text: &'a str, end: &str) -> Result<&'a str, String> {
    text.find(end)
        .map(|at| &text[at + end.len()..])
        .ok_or_else(|| format!("no closing {end}"))
}

/// A start tag: its names, whether it is empty (`/>`), and the namespace
/// it declares for its own prefix.
struct StartTag<'a> {
    qualified: &'a str,
    local: &'a str,
    empty: bool,
    namespace: Option<String>,
}

/// Reads a start tag from just after its `<`; returns it and what follows.
fn start_tag(text: &str) -> Result<(StartTag<'_>, &str), String> {
    let name_end = text
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .ok_or("unterminated start tag")?;
    let qualified = &text[..name_end];
    if qualified.is_empty() {
        return Err("a start tag without a name".into());
    }
    let (prefix, local) = match qualified.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, qualified),
    };
    let wanted = match prefix {
        Some(p) => format!("xmlns:{p}"),
        None => "xmlns".to_string(),
    };
    let mut namespace = None;
    let mut rest = &text[name_end..];
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("/>") {
            let tag = StartTag {
                qualified,
                local,
                empty: true,
                namespace,
            };
            return Ok((tag, after));
        }
        if let Some(after) = rest.strip_prefix('>') {
            let tag = StartTag {
                qualified,
                local,
                empty: false,
                namespace,
            };
            return Ok((tag, after));
        }
        let eq = rest.find('=').ok_or("an attribute without a value")?;
        let name = rest[..eq].trim_end();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || "<>/\"'".contains(c)) {
            return Err("a malformed attribute".into());
        }
        let value_part = rest[eq + 1..].trim_start();
        let quote = value_part
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or("an attribute value without quotes")?;
        let body = &value_part[1..];
        let close = body.find(quote).ok_or("an unterminated attribute value")?;
        if name == wanted {
            namespace = Some(unescape(&body[..close])?);
        }
        rest = &body[close + 1..];
    }
}

/// Character data with its references replaced: the five predefined
/// entities and numeric references; anything else is refused.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .filter(|&at| at <= 10)
            .ok_or("an unterminated character reference")?;
        let name = &after[..semi];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(decimal) = name.strip_prefix('#') {
                    decimal.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown reference &{name};"))?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// An Apple configuration profile (`.mobileconfig`, unsigned) that adds a
/// POP3 account for `address` on iOS and macOS: the most preferred reading
/// and sending listeners (iOS and macOS take one of each; with UseSSL they
/// speak STARTTLS on a plain port). The password is asked on install. Its
/// identifiers and UUIDs follow from the host name and the address, so
/// installing it again replaces the account instead of adding another.
/// `address` is taken as given (the caller knows it is a member's);
/// whatever it holds stays text in the property list.
pub fn mobileconfig(config: &Config, address: &str, display_name: &str) -> Vec<u8> {
    let host = host(config);
    let all = services(config);
    let first = |protocol| all.iter().find(|s| s.protocol == protocol);
    let identifier = format!(
        "{}.mail.{}",
        reverse_dns(host),
        profile_uuid(host, address, "profile").to_ascii_lowercase()
    );
    let mut account = String::new();
    let mut entry = |key: &str, value: Value| {
        let _ = writeln!(account, "\t\t\t<key>{key}</key>");
        let _ = writeln!(account, "\t\t\t{}", value.xml());
    };
    entry("EmailAccountDescription", Value::Text(address.into()));
    entry("EmailAccountName", Value::Text(display_name.into()));
    entry("EmailAccountType", Value::Text("EmailTypePOP".into()));
    entry("EmailAddress", Value::Text(address.into()));
    let sides = [
        ("Incoming", first(Protocol::Pop3)),
        ("Outgoing", first(Protocol::Submission)),
    ];
    for (side, service) in sides {
        let Some(service) = service else { continue };
        let key = |what: &str| format!("{side}MailServer{what}");
        entry(
            &key("Authentication"),
            Value::Text("EmailAuthPassword".into()),
        );
        entry(&key("HostName"), Value::Text(host.into()));
        entry(&key("PortNumber"), Value::Integer(service.port.into()));
        entry(&key("UseSSL"), Value::Bool(true));
        entry(&key("Username"), Value::Text(address.into()));
    }
    if first(Protocol::Submission).is_some() {
        entry("OutgoingPasswordSameAsIncomingPassword", Value::Bool(true));
    }
    entry(
        "PayloadDisplayName",
        Value::Text(format!("Mail for {address}")),
    );
    entry(
        "PayloadIdentifier",
        Value::Text(format!("{identifier}.account")),
    );
    entry("PayloadType", Value::Text("com.apple.mail.managed".into()));
    entry(
        "PayloadUUID",
        Value::Text(profile_uuid(host, address, "account")),
    );
    entry("PayloadVersion", Value::Integer(1));

    let mut out = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" ",
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
        "<plist version=\"1.0\">\n<dict>\n",
        "\t<key>PayloadContent</key>\n\t<array>\n\t\t<dict>\n"
    ));
    out.push_str(&account);
    out.push_str("\t\t</dict>\n\t</array>\n");
    let mut entry = |key: &str, value: Value| {
        let _ = writeln!(out, "\t<key>{key}</key>");
        let _ = writeln!(out, "\t{}", value.xml());
    };
    entry(
        "PayloadDescription",
        Value::Text(format!(
            "Reads and sends mail for {address} through {host}."
        )),
    );
    entry("PayloadDisplayName", Value::Text(format!("Mail at {host}")));
    entry("PayloadIdentifier", Value::Text(identifier));
    entry("PayloadRemovalDisallowed", Value::Bool(false));
    entry("PayloadType", Value::Text("Configuration".into()));
    entry(
        "PayloadUUID",
        Value::Text(profile_uuid(host, address, "profile")),
    );
    entry("PayloadVersion", Value::Integer(1));
    out.push_str("</dict>\n</plist>\n");
    out.into_bytes()
}

/// A property list value.
enum Value {
    Text(String),
    Integer(i64),
    Bool(bool),
}

impl Value {
    fn xml(&self) -> String {
        match self {
            Value::Text(text) => format!("<string>{}</string>", escape(text)),
            Value::Integer(n) => format!("<integer>{n}</integer>"),
            Value::Bool(true) => "<true/>".into(),
            Value::Bool(false) => "<false/>".into(),
        }
    }
}

/// `mail.club.example` as `example.club.mail`, the reverse-DNS style of
/// profile identifiers.
fn reverse_dns(host: &str) -> String {
    let labels: Vec<&str> = host.rsplit('.').filter(|l| !l.is_empty()).collect();
    labels.join(".").to_ascii_lowercase()
}

/// A UUID named by the host, the address (case aside) and the payload's
/// role: SHA-256 of them, in the layout of RFC 9562's version 8 (its
/// name-based versions use MD5 and SHA-1).
fn profile_uuid(host: &str, address: &str, role: &str) -> String {
    let name = format!(
        "{}\0{}\0{role}",
        host.to_ascii_lowercase(),
        address.to_ascii_lowercase()
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config(toml: &str) -> Config {
        let base =
            "hostname = \"mail.club.example\"\ndomains = [\"club.example\", \"family.example\"]\n";
        Config::from_toml(&format!("{base}{toml}")).unwrap()
    }

    fn standard() -> Config {
        config(concat!(
            "[pop3]\nlisten = \"0.0.0.0:110\"\n",
            "[pop3s]\nlisten = \"0.0.0.0:995\"\n",
            "[submission]\nlisten = \"0.0.0.0:587\"\n",
            "[submissions]\nlisten = \"[::]:465\"\n",
        ))
    }

    fn request(address: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"{REQUEST_SCHEMA}\">\n  <Request>\n    <EMailAddress>{address}</EMailAddress>\n    <AcceptableResponseSchema>{RESPONSE_SCHEMA}</AcceptableResponseSchema>\n  </Request>\n</Autodiscover>\n"
        )
        .into_bytes()
    }

    #[test]
    fn services_prefer_implicit_tls_and_name_only_what_is_on() {
        let ports = |c: &Config| -> Vec<(&str, u16)> {
            services(c)
                .iter()
                .map(|s| (s.srv_label(), s.port))
                .collect()
        };
        assert_eq!(
            ports(&standard()),
            [
                ("_pop3s", 995),
                ("_pop3", 110),
                ("_submissions", 465),
                ("_submission", 587)
            ]
        );
        let some_off = config("[pop3s]\nlisten = \"off\"\n[submissions]\nlisten = \"off\"\n");
        assert_eq!(ports(&some_off), [("_pop3", 2110), ("_submission", 2587)]);
    }

    #[test]
    fn thunderbird_names_the_asked_domain_and_every_listener() {
        let xml = thunderbird(&standard(), Some("Ann@Family.Example"));
        assert!(xml.contains("<emailProvider id=\"family.example\">"));
        let family = xml.find("<domain>family.example</domain>").unwrap();
        let club = xml.find("<domain>club.example</domain>").unwrap();
        assert!(family < club, "the asked domain first");
        let pop3s = xml.find("<port>995</port>").unwrap();
        let pop3 = xml.find("<port>110</port>").unwrap();
        let submissions = xml.find("<port>465</port>").unwrap();
        let submission = xml.find("<port>587</port>").unwrap();
        assert!(pop3s < pop3 && pop3 < submissions && submissions < submission);
        assert_eq!(xml.matches("<socketType>SSL</socketType>").count(), 2);
        assert_eq!(xml.matches("<socketType>STARTTLS</socketType>").count(), 2);
        assert_eq!(
            xml.matches("<username>%EMAILADDRESS%</username>").count(),
            4
        );
        assert_eq!(
            xml.matches("<hostname>mail.club.example</hostname>")
                .count(),
            4
        );
        // An absent or foreign address: the first served domain.
        for address in [None, Some("x@elsewhere.example"), Some("no at sign")] {
            let xml = thunderbird(&standard(), address);
            assert!(
                xml.contains("<emailProvider id=\"club.example\">"),
                "{address:?}"
            );
        }
    }

    #[test]
    fn thunderbird_leaves_out_listeners_that_are_off() {
        let c = config("[pop3s]\nlisten = \"off\"\n[submission]\nlisten = \"off\"\n");
        let xml = thunderbird(&c, None);
        assert_eq!(xml.matches("<incomingServer").count(), 1);
        assert_eq!(xml.matches("<outgoingServer").count(), 1);
        assert!(xml.contains("<port>2110</port>") && xml.contains("<port>2465</port>"));
        assert!(!xml.contains("2995") && !xml.contains("2587"));
    }

    #[test]
    fn autodiscover_answers_with_the_address_as_login() {
        let xml = autodiscover(&standard(), &request("ann@club.example")).unwrap();
        assert!(xml.contains(&format!("<Response xmlns=\"{RESPONSE_SCHEMA}\">")));
        assert_eq!(
            xml.matches("<LoginName>ann@club.example</LoginName>")
                .count(),
            4
        );
        assert_eq!(xml.matches("<Type>POP3</Type>").count(), 2);
        assert_eq!(xml.matches("<Type>SMTP</Type>").count(), 2);
        assert_eq!(xml.matches("<Encryption>SSL</Encryption>").count(), 2);
        assert_eq!(xml.matches("<Encryption>TLS</Encryption>").count(), 2);
        assert!(xml.find("<Port>995</Port>").unwrap() < xml.find("<Port>110</Port>").unwrap());
        // The domain is folded; the local part kept.
        let xml = autodiscover(&standard(), &request("Ann@CLUB.example")).unwrap();
        assert!(xml.contains("<LoginName>Ann@club.example</LoginName>"));
    }

    #[test]
    fn autodiscover_refuses_what_it_cannot_answer() {
        let c = standard();
        assert!(autodiscover(&c, &request("ann@elsewhere.example"))
            .unwrap_err()
            .contains("not served"));
        assert!(autodiscover(&c, &request("")).is_err());
        assert!(autodiscover(&c, &request("a<b@club.example")).is_err());
        let mobile = String::from_utf8(request("ann@club.example"))
            .unwrap()
            .replace(
                RESPONSE_SCHEMA,
                "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006",
            );
        assert!(autodiscover(&c, mobile.as_bytes()).is_err());
        let other_namespace = String::from_utf8(request("ann@club.example"))
            .unwrap()
            .replace(REQUEST_SCHEMA, "urn:other");
        assert!(autodiscover(&c, other_namespace.as_bytes()).is_err());
        let big = format!(
            "<Autodiscover xmlns=\"{REQUEST_SCHEMA}\"><!--{}--></Autodiscover>",
            " ".repeat(AUTODISCOVER_MAX_REQUEST)
        );
        assert!(autodiscover(&c, big.as_bytes())
            .unwrap_err()
            .contains("bytes"));
        let entities = format!(
            "<!DOCTYPE a [<!ENTITY x \"ann@club.example\">]><Autodiscover xmlns=\"{REQUEST_SCHEMA}\"><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>"
        );
        assert!(autodiscover(&c, entities.as_bytes())
            .unwrap_err()
            .contains("DOCTYPE"));
        let deep = format!(
            "<Autodiscover xmlns=\"{REQUEST_SCHEMA}\">{}{}</Autodiscover>",
            "<a>".repeat(20),
            "</a>".repeat(20)
        );
        assert!(autodiscover(&c, deep.as_bytes())
            .unwrap_err()
            .contains("deep"));
        for broken in [
            &b""[..],
            b"<Autodiscover",
            b"\xff\xfe",
            b"text",
            b"<a></b>",
            b"</a>",
        ] {
            assert!(autodiscover(&c, broken).is_err(), "{broken:?}");
        }
        let unclosed = format!("<Autodiscover xmlns=\"{REQUEST_SCHEMA}\"><Request>");
        assert!(autodiscover(&c, unclosed.as_bytes()).is_err());
    }

    #[test]
    fn autodiscover_reads_prefixes_references_and_cdata() {
        let c = standard();
        let prefixed = format!(
            "<?xml version='1.0'?><!-- Outlook --><a:Autodiscover xmlns:a='{REQUEST_SCHEMA}'><a:Request><a:EMailAddress> ann&#64;club.example </a:EMailAddress></a:Request></a:Autodiscover>"
        );
        let xml = autodiscover(&c, prefixed.as_bytes()).unwrap();
        assert!(xml.contains("<LoginName>ann@club.example</LoginName>"));
        let cdata = format!(
            "\u{feff}<Autodiscover xmlns=\"{REQUEST_SCHEMA}\"><Request><EMailAddress><![CDATA[ann@club.example]]></EMailAddress><Other/></Request></Autodiscover>"
        );
        assert!(autodiscover(&c, cdata.as_bytes()).is_ok());
        // A prefix bound to another namespace is not the request schema.
        let wrong_prefix = format!(
            "<a:Autodiscover xmlns='{REQUEST_SCHEMA}' xmlns:a='urn:x'><a:Request><a:EMailAddress>ann@club.example</a:EMailAddress></a:Request></a:Autodiscover>"
        );
        assert!(autodiscover(&c, wrong_prefix.as_bytes()).is_err());
        assert!(unescape("&bogus;").is_err() && unescape("&amp").is_err());
        assert_eq!(unescape("&lt;&#x41;&quot;").unwrap(), "<A\"");
    }

    #[test]
    fn damaged_requests_are_refused_without_panics() {
        let c = standard();
        let good = request("ann@club.example");
        for end in 0..good.len() {
            let _ = autodiscover(&c, &good[..end]);
        }
        for at in 0..good.len() {
            let mut damaged = good.clone();
            damaged.remove(at);
            let _ = autodiscover(&c, &damaged);
            for byte in [b'<', b'>', b'&', b'"', b'/', 0xff] {
                let mut damaged = good.clone();
                damaged[at] = byte;
                if let Ok(answer) = autodiscover(&c, &damaged) {
                    assert_eq!(answer.matches('<').count(), answer.matches('>').count());
                }
            }
        }
    }

    #[test]
    fn mobileconfig_names_one_reader_and_one_sender() {
        let profile = mobileconfig(&standard(), "ann@club.example", "Ann <Example>");
        let text = String::from_utf8(profile.clone()).unwrap();
        assert!(text.contains("<string>Ann &lt;Example&gt;</string>"));
        assert!(
            text.contains("<key>IncomingMailServerPortNumber</key>\n\t\t\t<integer>995</integer>")
        );
        assert!(
            text.contains("<key>OutgoingMailServerPortNumber</key>\n\t\t\t<integer>465</integer>")
        );
        assert!(text.contains("<string>example.club.mail.mail."));
        // The same again for the same host and address; another for another.
        assert_eq!(
            profile,
            mobileconfig(&standard(), "ann@club.example", "Ann <Example>")
        );
        let other =
            String::from_utf8(mobileconfig(&standard(), "bob@club.example", "Bob")).unwrap();
        let uuids = |t: &str| -> Vec<String> {
            t.match_indices("<key>PayloadUUID</key>")
                .map(|(at, _)| t[at..].lines().nth(1).unwrap().trim().to_string())
                .collect()
        };
        assert_eq!(uuids(&text).len(), 2);
        assert!(uuids(&text).iter().all(|u| !uuids(&other).contains(u)));
        assert_ne!(uuids(&text)[0], uuids(&text)[1]);
        // With the TLS ports off, the STARTTLS ones.
        let c = config("[pop3s]\nlisten = \"off\"\n[submissions]\nlisten = \"off\"\n");
        let text = String::from_utf8(mobileconfig(&c, "ann@club.example", "Ann")).unwrap();
        assert!(
            text.contains("<integer>2110</integer>") && text.contains("<integer>2587</integer>")
        );
    }

    #[test]
    fn uuids_have_the_version_8_layout() {
        let uuid = profile_uuid("mail.club.example", "ann@club.example", "profile");
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "8");
        assert!("89AB".contains(&uuid[19..20]));
        assert_eq!(
            uuid,
            profile_uuid("MAIL.club.example", "Ann@club.example", "profile")
        );
        assert_eq!(reverse_dns("Mail.Club.Example."), "example.club.mail");
    }
}
