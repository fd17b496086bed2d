//! Which hosts to try for a destination, in order: the smarthost, or the
//! destination's MX hosts (RFC 5321 §5.1), each with its addresses.

use super::Failure;
use std::net::{IpAddr, SocketAddr};

/// Where mail for other domains goes.
pub struct Route<'a> {
    /// The smarthost and its port, or `None` for the MX hosts.
    pub smarthost: Option<(&'a str, u16)>,
    /// The port of MX hosts.
    pub smtp_port: u16,
    /// The resolver set in the config; else the system's.
    pub resolver: Option<SocketAddr>,
}

impl Route<'_> {
    fn resolver(&self) -> Result<SocketAddr, Failure> {
        self.resolver
            .or_else(crate::dns::system_resolver)
            .ok_or_else(|| Failure::temporary("no DNS resolver configured"))
    }

    /// The hosts for `destination` (a domain): (host name, address) pairs
    /// in order.
    pub async fn targets(&self, destination: &str) -> Result<Vec<(String, SocketAddr)>, Failure> {
        let (hosts, port) = match self.smarthost {
            Some((host, port)) => (vec![host.to_string()], port),
            None => {
                let resolver = self.resolver()?;
                match crate::dns::mail_hosts(resolver, destination).await {
                    Ok(crate::dns::MailHosts::Hosts(h)) => (h, self.smtp_port),
                    Ok(crate::dns::MailHosts::NoMail(why)) => {
                        return Err(Failure {
                            permanent: true,
                            text: why,
                        })
                    }
                    Err(e) => {
                        return Err(Failure::temporary(format!(
                            "looking up MX of {destination}: {e}"
                        )))
                    }
                }
            }
        };
        let mut found = Vec::new();
        let mut last_error = None;
        for host in hosts {
            match self.addresses(&host).await {
                Ok(list) => found.extend(
                    list.into_iter()
                        .map(|ip| (host.clone(), SocketAddr::new(ip, port))),
                ),
                Err(e) => last_error = Some(e),
            }
        }
        if found.is_empty() {
            return Err(Failure::temporary(
                last_error.unwrap_or_else(|| "no host to try".into()),
            ));
        }
        Ok(found)
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        if host.eq_ignore_ascii_case("localhost") {
            Ok(vec![IpAddr::from([127, 0, 0, 1])])
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            Ok(vec![ip])
        } else {
            match self.resolver() {
                Ok(r) => crate::dns::host_addresses(r, host).await,
                Err(f) => Err(f.text),
            }
        }
    }
}
