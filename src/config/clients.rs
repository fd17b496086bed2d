//! The listeners members' mail programs use, as the config turns them on:
//! what the set-up files (autoconfig, Autodiscover, the Apple profile)
//! and the DNS records (RFC 6186 SRV) name.

use super::Config;

/// What a mail program does on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Reading mail (POP3).
    Pop3,
    /// Sending mail (SMTP submission, login required).
    Submission,
}

/// How a listener is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (995, 465).
    Implicit,
    /// Plain text upgraded with STLS or STARTTLS before a login (110, 587).
    StartTls,
}

/// A listener members' mail programs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub protocol: Protocol,
    pub security: Security,
    pub port: u16,
}

impl Service {
    /// The RFC 6186 SRV service label (`_pop3s`, `_submission`...).
    pub fn srv_label(&self) -> &'static str {
        match (self.protocol, self.security) {
            (Protocol::Pop3, Security::Implicit) => "_pop3s",
            (Protocol::Pop3, Security::StartTls) => "_pop3",
            (Protocol::Submission, Security::Implicit) => "_submissions",
            (Protocol::Submission, Security::StartTls) => "_submission",
        }
    }
}

/// The listeners that are on, reading before sending, each in order of
/// preference: implicit TLS first (RFC 8314 §3). POP3 on its plain port
/// is always on and always offers STLS.
pub fn services(config: &Config) -> Vec<Service> {
    let service = |protocol, security, listen: Option<std::net::SocketAddr>| {
        listen.map(|addr| Service {
            protocol,
            security,
            port: addr.port(),
        })
    };
    [
        service(Protocol::Pop3, Security::Implicit, config.pop3s),
        service(Protocol::Pop3, Security::StartTls, Some(config.pop3.listen)),
        service(Protocol::Submission, Security::Implicit, config.submissions),
        service(Protocol::Submission, Security::StartTls, config.submission),
    ]
    .into_iter()
    .flatten()
    .collect()
}
