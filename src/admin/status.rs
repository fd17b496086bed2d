//! `status`: what an admin looks at first, from the files and the system.

use crate::appliance::system;
use crate::config::Config;
use crate::ops::status::running_status;
use crate::store::{disk, maildir, users};
use std::time::{SystemTime, UNIX_EPOCH};

fn say(out: &mut String, text: &str) {
    out.push_str(text);
}

/// `status`: the server, its listeners and certificate, users, damaged
/// files, stored mail, the disk and the machine, one fact a line.
pub fn status(config: &Config) -> String {
    let mut text = String::new();
    let out = &mut text;
    match running_status(&config.data_dir) {
        Some(s) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let up = now.saturating_sub(s.started_unix);
            let listeners: Vec<String> = s
                .listeners
                .iter()
                .map(|(service, addr)| format!("{service} {addr}"))
                .collect();
            say(
                out,
                &format!(
                    "server: running (pid {}), up {}d {:02}h {:02}m {:02}s\nlisteners: {}\n",
                    s.pid,
                    up / 86400,
                    up % 86400 / 3600,
                    up % 3600 / 60,
                    up % 60,
                    listeners.join(", "),
                ),
            );
        }
        None => say(out, "server: not running\n"),
    }
    // From the files: what the server presents at its next handshake.
    say(out, &super::tls::status_lines(config));
    say(out, &format!("domains: {}\n", config.domains.join(", ")));
    match users::load(&config.data_dir) {
        Ok(list) => say(out, &format!("users: {}\n", list.users.len())),
        Err(e) => say(
            out,
            &format!("users: {}\n", users::damage_report(&config.data_dir, &e)),
        ),
    }
    if let Err(e) = crate::route::aliases::Aliases::load(&config.aliases) {
        let last_good = crate::route::aliases::last_good_path(&config.aliases);
        let kept = match last_good.exists() {
            true => format!(
                "the server keeps the last good copy in service ({})",
                last_good.display()
            ),
            false => "there is no last good copy: no aliases until it is repaired".into(),
        };
        say(
            out,
            &format!("aliases: {e}: the aliases file is damaged; {kept}\n"),
        );
    }
    if let Some(line) = crate::queue::store::damaged_report(disk::system(), &config.data_dir) {
        say(out, &format!("{line}\n"));
    }
    let (messages, bytes) = maildir::usage(disk::system(), &config.data_dir);
    say(
        out,
        &format!("stored: {messages} messages, {bytes} bytes\n"),
    );
    if let Some((used, total)) = system::disk_use(&config.data_dir) {
        say(
            out,
            &format!(
                "disk: {} of {} MiB used ({}%)\n",
                used >> 20,
                total >> 20,
                used * 100 / total.max(1)
            ),
        );
    }
    let addresses = system::addresses();
    if !addresses.is_empty() {
        say(out, &format!("addresses: {}\n", addresses.join(", ")));
    }
    if let Some(up) = system::uptime() {
        say(
            out,
            &format!(
                "machine up {}d {:02}h {:02}m\n",
                up / 86400,
                up % 86400 / 3600,
                up % 3600 / 60
            ),
        );
    }
    text
}
