//! Administration: users, aliases, forwards, quotas, the queue, status
//! and counters. `verbs` declares each verb once; the command line and the
//! admin console both run them from there, so both do exactly the same.

pub mod book;
pub mod dkim;
pub mod dns;
mod status;
pub mod tls;
pub mod verbs;

pub use status::status;
pub use verbs::{lookup, Lookup, Output, Request, Verb, VERBS};

use crate::auth::password;
use crate::config::Config;
use crate::store::disk;
use crate::store::{maildir, users};

/// Commands that read or change what is in the data directory need it to
/// exist: a mistyped --data must not look like "no users" (nor be made).
fn existing_data_dir(config: &Config) -> Result<(), String> {
    if config.data_dir.is_dir() {
        return Ok(());
    }
    Err(format!(
        "no data directory {} (check --data or data_dir; 'postbox user add' or 'postbox serve' makes one)",
        config.data_dir.display()
    ))
}

/// Adds a user of a served domain and creates their mailbox. The first
/// user becomes admin (and so receives `postmaster@` mail). Returns the
/// full address.
pub fn add_user(config: &Config, name: &str, new_password: &str) -> Result<String, String> {
    let (local, domain) = users::split_name(name, config.default_domain())?;
    // A server started with `--domain` serves more than the config says.
    let running_serves = || {
        crate::ops::status::running_status(&config.data_dir)
            .is_some_and(|s| s.domains.iter().any(|d| d.eq_ignore_ascii_case(&domain)))
    };
    if !config.serves(&domain) && !running_serves() {
        // Such a user could never receive mail: say so instead of storing it.
        return Err(format!(
            "{domain} is not a served domain; add it to `domains` in the config, \
             or give --domain {domain} here and to serve"
        ));
    }
    password::check_new(new_password)?;
    let hash = password::hash(new_password);
    let address = format!("{local}@{domain}");
    users::modify(config.mail_dir(), |list| {
        if list.find(&local, &domain).is_some() {
            return Err(format!("user {address} already exists"));
        }
        let admin = list.users.is_empty();
        list.users.push(users::User {
            local: local.clone(),
            domain: domain.clone(),
            password: hash,
            admin,
        });
        Ok(())
    })?;
    let dir = maildir::mailbox_dir(config.mail_dir(), &local, &domain);
    maildir::create_mailbox(disk::system(), &dir).map_err(|e| {
        format!(
            "user added, but cannot create mailbox {}: {e}",
            dir.display()
        )
    })?;
    Ok(address)
}

pub fn set_password(config: &Config, name: &str, new_password: &str) -> Result<String, String> {
    existing_data_dir(config)?;
    let (local, domain) = users::split_name(name, config.default_domain())?;
    password::check_new(new_password)?;
    let hash = password::hash(new_password);
    let address = format!("{local}@{domain}");
    users::modify(config.mail_dir(), |list| {
        let user = list
            .users
            .iter_mut()
            .find(|u| u.local == local && u.domain == domain)
            .ok_or_else(|| format!("no such user {address}"))?;
        user.password = hash;
        Ok(())
    })?;
    Ok(address)
}

/// Removes a user and their mailbox with all its mail.
pub fn delete_user(config: &Config, name: &str) -> Result<String, String> {
    existing_data_dir(config)?;
    let (local, domain) = users::split_name(name, config.default_domain())?;
    let address = format!("{local}@{domain}");
    users::modify(config.mail_dir(), |list| {
        let before = list.users.len();
        list.users
            .retain(|u| !(u.local == local && u.domain == domain));
        if list.users.len() == before {
            return Err(format!("no such user {address}"));
        }
        // Someone must stay admin so postmaster@ keeps working.
        if !list.users.iter().any(|u| u.admin) {
            if let Some(first) = list.users.first_mut() {
                first.admin = true;
            }
        }
        Ok(())
    })?;
    let dir = maildir::mailbox_dir(config.mail_dir(), &local, &domain);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "user removed, but cannot remove mailbox {}: {e}",
                dir.display()
            ))
        }
    }
    Ok(address)
}

/// One line per user: address, and `(admin)` where it applies.
pub fn list_users(config: &Config) -> Result<Vec<String>, String> {
    existing_data_dir(config)?;
    let list = users::load_or_report(config.mail_dir())?;
    Ok(list
        .users
        .iter()
        .map(|u| {
            if u.admin {
                format!("{} (admin)", u.address())
            } else {
                u.address()
            }
        })
        .collect())
}

/// Sets a user's own mailbox limit (`500M`, `unlimited`), or `default`
/// to follow the config again.
pub fn set_quota(config: &Config, name: &str, size: &str) -> Result<String, String> {
    existing_data_dir(config)?;
    let (local, domain) = users::split_name(name, config.default_domain())?;
    let address = format!("{local}@{domain}");
    let list = users::load_or_report(config.mail_dir())?;
    if list.find(&local, &domain).is_none() {
        return Err(format!("no such user {address}"));
    }
    let limit = match size {
        "default" => None,
        text => Some(crate::config::parse_size(text)?),
    };
    crate::store::quota::set(config.mail_dir(), &address, limit)?;
    Ok(match limit {
        None => format!("quota of {address} follows the default"),
        Some(0) => format!("quota of {address} set to unlimited"),
        Some(bytes) => format!("quota of {address} set to {bytes} bytes"),
    })
}

/// Addresses given as words, each possibly a comma-separated list.
fn address_list(words: &[&str]) -> Vec<String> {
    words
        .iter()
        .flat_map(|t| t.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// `alias add NAME TARGET...`: targets may also be given comma-separated.
pub fn alias_add(config: &Config, name: &str, targets: &[&str]) -> Result<String, String> {
    let targets = address_list(targets);
    if targets.is_empty() {
        return Err(format!("alias {name} needs at least one target"));
    }
    crate::route::aliases::add(&config.aliases, name, &targets)?;
    Ok(format!("{name}: {}", targets.join(", ")))
}

pub fn alias_del(config: &Config, name: &str) -> Result<String, String> {
    existing_data_dir(config)?;
    match crate::route::aliases::remove(&config.aliases, name)? {
        true => Ok(format!("alias {name} removed")),
        false => Err(format!("no alias {name}")),
    }
}

/// `alias list`: one `name: targets` line per alias.
pub fn alias_list(config: &Config) -> Result<Vec<String>, String> {
    existing_data_dir(config)?;
    let aliases = crate::route::Aliases::load(&config.aliases)?;
    Ok(aliases
        .names()
        .map(|n| format!("{n}: {}", aliases.targets(n).unwrap_or_default().join(", ")))
        .collect())
}

/// `user forward NAME ADDRESS... [--keep]`, or `off` to stop forwarding.
pub fn set_forward(
    config: &Config,
    name: &str,
    targets: &[&str],
    keep: bool,
) -> Result<String, String> {
    existing_data_dir(config)?;
    let (local, domain) = users::split_name(name, config.default_domain())?;
    let account = format!("{local}@{domain}");
    let list = users::load_or_report(config.mail_dir())?;
    if list.find(&local, &domain).is_none() {
        return Err(format!("no user {account}"));
    }
    if targets == ["off"] {
        return match crate::route::forward::set(config.mail_dir(), &account, None)? {
            Some(_) => Ok(format!("{account} no longer forwards")),
            None => Err(format!("{account} has no forward")),
        };
    }
    let forward = crate::route::Forward {
        to: address_list(targets),
        keep,
    };
    crate::route::forward::set(config.mail_dir(), &account, Some(forward.clone()))?;
    Ok(format!(
        "{account} forwards to {}{}",
        forward.to.join(", "),
        if keep { " and keeps a copy" } else { "" }
    ))
}

/// `user away NAME` shows the away message; `off` turns it off (its
/// text kept); `UNTIL [SUBJECT...]` turns it on with `text` until the
/// start of UNTIL (UTC), or with `-` until it is turned off.
/// A user's full address and maildir, or why NAME names no user.
pub fn member_mailbox(config: &Config, name: &str) -> Result<(String, std::path::PathBuf), String> {
    existing_data_dir(config)?;
    let (local, domain) = users::split_name(name, config.default_domain())?;
    let account = format!("{local}@{domain}");
    let list = users::load_or_report(config.mail_dir())?;
    if list.find(&local, &domain).is_none() {
        return Err(format!("no user {account}"));
    }
    let mailbox = maildir::mailbox_dir(config.mail_dir(), &local, &domain);
    Ok((account, mailbox))
}

pub fn set_away(config: &Config, name: &str, args: &[&str], text: &str) -> Result<String, String> {
    let (account, mailbox) = member_mailbox(config, name)?;
    let now = crate::queue::unix_now();
    let Some((until, subject)) = args.split_first() else {
        let away = crate::away::load(disk::system(), &mailbox);
        return Ok(crate::away::describe(away.as_ref(), now));
    };
    // The users lock serialises every admin change to the data directory.
    let _lock = users::lock_users(config.mail_dir())?;
    if *until == "off" && subject.is_empty() {
        return match crate::away::turn_off(&mailbox)? {
            Some(_) => Ok(format!("{account} has no away message on now")),
            None => Err(format!("{account} has no away message on")),
        };
    }
    let until = match *until {
        "-" => None,
        date => {
            let at = crate::away::parse_date(date)?;
            if at <= now {
                return Err(format!("{date} is not in the future"));
            }
            Some(at)
        }
    };
    let away = crate::away::set(&mailbox, &subject.join(" "), text, until, now)?;
    Ok(format!(
        "{account} is away{}",
        away.until
            .map(|u| format!(" until {}", crate::away::format_date(u)))
            .unwrap_or_default()
    ))
}

/// `queue list`: each waiting message with its age, sender, recipients,
/// last error and next try.
pub fn queue_list(config: &Config) -> Result<String, String> {
    existing_data_dir(config)?;
    crate::queue::list(&config.node_dir())
}

/// `queue flush`: the running server tries every waiting message now.
pub fn queue_flush(config: &Config) -> Result<String, String> {
    existing_data_dir(config)?;
    match crate::ops::status::nudge_queue(&config.data_dir)? {
        true => Ok("the server is trying every queued message now".into()),
        false => Err("no server is running on this data directory".into()),
    }
}

/// `queue adopt NODE`: moves a dead cluster node's queue to this node,
/// whose running server sends it. Exactly once: see [`crate::queue::store::adopt`].
pub fn queue_adopt(config: &Config, node: &str) -> Result<String, String> {
    existing_data_dir(config)?;
    let Some(cluster) = &config.cluster else {
        return Err(
            "queue adopt: this node is not in a cluster ([cluster] node and shared)".into(),
        );
    };
    if node == cluster.node {
        return Err(format!("queue adopt: {node} is this node"));
    }
    let from = cluster.shared.join(crate::config::NODES_DIR).join(node);
    if node.is_empty() || node.contains(['/', '\\']) || node.starts_with('.') || !from.is_dir() {
        return Err(format!(
            "queue adopt: no node {node:?} in {}",
            cluster.shared.display()
        ));
    }
    let moved = crate::queue::store::adopt(&from, &config.node_dir(), &cluster.node).map_err(
        |e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("queue adopt: {node}'s queue is gone (adopted already?)")
            }
            _ => format!("queue adopt: {e}"),
        },
    )?;
    let _ = crate::ops::status::nudge_queue(&config.data_dir);
    Ok(format!("adopted {moved} messages from {node}"))
}

/// `queue delete ID`: drops a message from the queue without a report.
pub fn queue_delete(config: &Config, id: &str) -> Result<String, String> {
    existing_data_dir(config)?;
    if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
        return Err(format!("invalid queue id {id:?}"));
    }
    let removed = crate::queue::store::remove(disk::system(), &config.node_dir(), id)
        .map_err(|e| format!("cannot delete {id}: {e}"))?;
    if !removed {
        return Err(format!("no message {id} in the queue"));
    }
    // A running server forgets it now rather than at its next attempt.
    let _ = crate::ops::status::nudge_queue(&config.data_dir);
    Ok(format!("deleted {id} from the queue"))
}

/// The traffic counters as `postbox stats` and the console show them.
pub fn stats_report(config: &Config) -> Result<String, String> {
    existing_data_dir(config)?;
    let live = fresh_stats(&config.data_dir);
    let stats = crate::ops::stats::load(&config.data_dir)?;
    let mut report = stats.report();
    match live {
        Some(true) => report.push_str("(live figures from the running server)\n"),
        Some(false) => {
            report.push_str("(server running: figures as of its last save, at most a minute old)\n")
        }
        None => {}
    }
    Ok(report)
}

/// Has the running server, if any, write its counters now and waits for
/// the new file. `Some(fresh)` when a server runs; `fresh` is false when
/// it could not be asked or did not answer in time.
fn fresh_stats(data_dir: &std::path::Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    // Each save is a new file renamed over the old: a new inode.
    let stamp = || {
        std::fs::metadata(crate::ops::stats::path(data_dir))
            .ok()
            .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()))
    };
    let before = stamp();
    match crate::ops::status::request_stats(data_dir) {
        Ok(true) => {}
        Ok(false) => return None,
        Err(_) => return Some(false),
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if stamp() != before {
            return Some(true);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn config(dir: &std::path::Path) -> Config {
        Config::load(&Overrides {
            data_dir: Some(dir.to_path_buf()),
            domains: vec!["club.example".into()],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn add_list_passwd_delete() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        assert_eq!(add_user(&c, "alice", "pw1").unwrap(), "alice@localhost");
        assert_eq!(
            add_user(&c, "bob@Club.Example", "pw2").unwrap(),
            "bob@club.example"
        );
        assert!(add_user(&c, "eve@notours.test", "pw")
            .unwrap_err()
            .contains("not a served domain"));
        assert!(add_user(&c, "Alice", "x")
            .unwrap_err()
            .contains("already exists"));
        assert!(add_user(&c, "carol", "").is_err());
        assert!(add_user(&c, "../x", "pw").is_err());
        assert_eq!(
            list_users(&c).unwrap(),
            vec!["alice@localhost (admin)", "bob@club.example"]
        );
        assert!(dir.path().join("mail/localhost/alice/new").is_dir());

        let old = users::load(&c.data_dir).unwrap().users[0].password.clone();
        set_password(&c, "alice", "pw3").unwrap();
        let new = users::load(&c.data_dir).unwrap().users[0].password.clone();
        assert_ne!(old, new);
        assert!(password::verify("pw3", &new));
        assert!(set_password(&c, "nobody", "pw").is_err());

        delete_user(&c, "alice").unwrap();
        assert!(!dir.path().join("mail/localhost/alice").exists());
        assert_eq!(list_users(&c).unwrap(), vec!["bob@club.example (admin)"]);
        assert!(delete_user(&c, "alice")
            .unwrap_err()
            .contains("no such user"));
    }
}
