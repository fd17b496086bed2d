//! `dkim show` and `dkim rotate`: the DKIM keys of the served domains and
//! the DNS records that publish them.

use super::existing_data_dir;
use crate::config::Config;
use crate::dkim::keys;
use crate::store::disk;
use std::time::SystemTime;

/// The served domains: the config's, and those of a server running on
/// this data directory (started with `--domain`).
pub(super) fn served_domains(config: &Config) -> Vec<String> {
    let mut domains = config.domains.clone();
    if let Some(status) = crate::ops::status::running_status(&config.data_dir) {
        for domain in status.domains {
            let domain = domain.to_ascii_lowercase();
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
    }
    domains
}

/// `name`, when it is a served domain.
pub(super) fn served(config: &Config, name: &str) -> Result<String, String> {
    let domain = name.trim_end_matches('.').to_ascii_lowercase();
    if served_domains(config).contains(&domain) {
        Ok(domain)
    } else {
        Err(format!(
            "{name} is not a served domain (see `domains` in the config)"
        ))
    }
}

/// `dkim show [DOMAIN]`: each key's TXT record, as a zone file takes it,
/// for the domain or every served one; keys missing are made first.
/// Notes are zone file comments, so the whole answer can be pasted.
pub fn show(config: &Config, domain: Option<&str>) -> Result<String, String> {
    existing_data_dir(config)?;
    let domains = match domain {
        Some(name) => vec![served(config, name)?],
        None => served_domains(config),
    };
    let made = keys::ensure(
        disk::system(),
        &config.data_dir,
        &domains,
        config.dkim.selector.as_deref(),
        SystemTime::now(),
    )
    .map_err(|e| format!("cannot make DKIM keys: {e}"))?;
    let mut out = String::new();
    for key in made {
        out.push_str(&format!("; made {key}\n"));
    }
    for domain in &domains {
        let records = keys::records(disk::system(), &config.data_dir, domain)
            .map_err(|e| format!("cannot read the DKIM keys of {domain}: {e}"))?;
        for record in records {
            out.push_str(&record.zone_line());
            if let Some(after) = record.removable_after {
                out.push_str(&format!(
                    " ; replaced, may be removed after {}",
                    keys::date(after)
                ));
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// `dkim rotate DOMAIN`: a new key pair under new selectors, signing
/// with it from now on; says which records to publish and which old ones
/// may go, and when.
pub fn rotate(config: &Config, name: &str) -> Result<String, String> {
    existing_data_dir(config)?;
    let domain = served(config, name)?;
    let rotation = keys::rotate(
        disk::system(),
        &config.data_dir,
        &domain,
        config.dkim.selector.as_deref(),
        SystemTime::now(),
    )
    .map_err(|e| format!("cannot make DKIM keys for {domain}: {e}"))?;
    let mut out = String::new();
    for key in &rotation.made {
        out.push_str(&format!("; made {key}\n"));
    }
    out.push_str("; publish now:\n");
    let records = keys::records(disk::system(), &config.data_dir, &domain)
        .map_err(|e| format!("cannot read the DKIM keys of {domain}: {e}"))?;
    for record in records.iter().filter(|r| r.removable_after.is_none()) {
        out.push_str(&record.zone_line());
        out.push('\n');
    }
    if !rotation.retired.is_empty() {
        out.push_str(&format!(
            "; these old records may be removed after {}:\n",
            keys::date(rotation.removable_after)
        ));
        for record in &rotation.retired {
            out.push_str(&format!(";   {}\n", record.name));
        }
    }
    Ok(out)
}
