//! What the admin pages show: the facts each section reads (gathered off
//! the executor thread, since they come from files) and the HTML made of
//! them. Rendering is pure: data in, page body out, every text escaped.
//!
//! Every form carries the session's CSRF field (`csrf`, given already as
//! HTML) and has a stable `id`; its fields have stable names.

use crate::config::Config;
use crate::ops::stats::{Day, Stats};
use crate::route::Forward;
use crate::store::{disk, maildir, quota, users};
use crate::tls::der::CertInfo;
use crate::web::pages::escape_html;

/// The sections, as the menu lists them: path and name.
pub const SECTIONS: &[(&str, &str)] = &[
    ("/admin", "Status"),
    ("/admin/users", "Users"),
    ("/admin/aliases", "Aliases and lists"),
    ("/admin/queue", "Queue"),
    ("/admin/log", "Log"),
    ("/admin/stats", "Statistics"),
    ("/admin/tls", "Certificate"),
    ("/admin/dns", "DNS records"),
];

/// Days the chart shows.
pub const CHART_DAYS: usize = 30;
/// Log lines the log section shows.
pub const LOG_LINES: usize = 100;

/// Where the chart is served (same origin: `default-src 'self'` allows it).
pub const CHART_PATH: &str = "/admin/chart.svg";

/// The outcome of an action, shown above a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    Failed(String),
}

/// The menu and the outcome, then the section's own `body`.
pub fn section(current: &str, outcome: Option<&Outcome>, body: &str) -> String {
    let mut html = String::from("<nav class=\"admin\">\n");
    for (path, name) in SECTIONS {
        let here = if *path == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        html.push_str(&format!("<a href=\"{path}\"{here}>{name}</a>\n"));
    }
    html.push_str("</nav>\n");
    match outcome {
        Some(Outcome::Done(text)) => html.push_str(&format!(
            "<p class=\"message ok\" id=\"outcome\" role=\"status\">{}</p>\n",
            escape_html(text)
        )),
        Some(Outcome::Failed(text)) => html.push_str(&format!(
            "<p class=\"message error\" id=\"outcome\" role=\"alert\">{}</p>\n",
            escape_html(text)
        )),
        None => {}
    }
    html.push_str(body);
    html
}

/// Text as it is, in a `<pre>`.
fn pre(id: &str, text: &str) -> String {
    format!("<pre id=\"{id}\">{}</pre>\n", escape_html(text))
}

/// A form posting to `action`, with the CSRF field and `fields` (HTML).
fn form(id: &str, action: &str, csrf: &str, fields: &str, button: &str) -> String {
    format!(
        "<form class=\"card\" id=\"{id}\" method=\"post\" action=\"{action}\">\n{csrf}\n{fields}<button type=\"submit\" id=\"{id}-submit\">{button}</button>\n</form>\n"
    )
}

/// A small form of one button (and hidden fields), for a table row.
pub(in crate::web) fn button_form(
    id: &str,
    action: &str,
    csrf: &str,
    hidden: &[(&str, &str)],
    button: &str,
) -> String {
    let mut fields = String::new();
    for (name, value) in hidden {
        fields.push_str(&format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape_html(value)
        ));
    }
    format!(
        "<form class=\"inline\" id=\"{}\" method=\"post\" action=\"{action}\">{csrf}{fields}<button type=\"submit\" class=\"quiet\">{button}</button></form>",
        escape_html(id)
    )
}

/// A labelled input: `<label for=ID>` and `<input id=ID name=NAME>`.
fn input(form: &str, name: &str, label: &str, kind: &str, extra: &str) -> String {
    format!(
        "<label for=\"{form}-{name}\">{label}</label>\n<input id=\"{form}-{name}\" name=\"{name}\" type=\"{kind}\"{extra}>\n"
    )
}

/// `1.5 MiB`, `300 KiB`, `12 B`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match value < 10.0 {
        true => format!("{value:.1} {}", UNITS[unit]),
        false => format!("{value:.0} {}", UNITS[unit]),
    }
}

// ---- Status ----

/// `GET /admin`: `status` as the console shows it, a fact a line.
pub fn status(text: &str) -> String {
    let mut rows = String::new();
    for line in text.lines() {
        let (key, value) = line.split_once(": ").unwrap_or((line, ""));
        rows.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>\n",
            escape_html(key),
            escape_html(value)
        ));
    }
    format!("<h1>Status</h1>\n<section>\n<table id=\"status\">\n{rows}</table>\n</section>\n")
}

// ---- Users ----

/// One user as the users table shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub address: String,
    pub admin: bool,
    /// Bytes in the mailbox.
    pub used: u64,
    /// The mailbox limit in bytes (0: unlimited).
    pub limit: u64,
    /// The limit is the user's own, not the config's default.
    pub own_limit: bool,
    pub forward: Option<Forward>,
}

/// Every user with their quota, use and forward, from the files.
pub fn user_rows(config: &Config) -> Result<Vec<UserRow>, String> {
    let mail_dir = config.mail_dir();
    let list = users::load_or_report(mail_dir)?;
    let quotas = quota::load(mail_dir).map_err(|e| format!("cannot read quotas: {e}"))?;
    let forwards =
        crate::route::forward::load(mail_dir).map_err(|e| format!("cannot read forwards: {e}"))?;
    let usage = maildir::usage_by_mailbox(disk::system(), mail_dir);
    Ok(list
        .users
        .iter()
        .map(|u| {
            let address = u.address();
            let own = quotas.get(&address).copied();
            let mailbox = maildir::mailbox_dir(mail_dir, &u.local, &u.domain);
            UserRow {
                admin: u.admin,
                used: usage.get(&mailbox).copied().unwrap_or(0),
                limit: own.unwrap_or(config.quota.default),
                own_limit: own.is_some(),
                forward: forwards.get(&address).cloned(),
                address,
            }
        })
        .collect())
}

/// `GET /admin/users`: the table, and the forms that change users.
pub fn users(rows: &[UserRow], csrf: &str) -> String {
    let mut html = users_table(rows);
    html.push_str(&user_forms(csrf));
    html
}

/// The users with their mailbox use, limit and forward, each with a link
/// to delete it; their addresses offered to the forms' address fields.
fn users_table(rows: &[UserRow]) -> String {
    let mut html = String::from("<h1>Users</h1>\n<section>\n");
    if rows.is_empty() {
        html.push_str("<p id=\"no-users\">No users yet.</p>\n");
    } else {
        html.push_str("<table id=\"users\">\n<tr><th>Address</th><th>Mailbox</th><th>Quota</th><th>Forwards to</th><th></th></tr>\n");
        for row in rows {
            let address = escape_html(&row.address);
            let admin = if row.admin { " (admin)" } else { "" };
            let quota = match (row.limit, row.own_limit) {
                (0, own) => format!("unlimited{}", if own { "" } else { " (default)" }),
                (limit, own) => format!("{}{}", size(limit), if own { "" } else { " (default)" }),
            };
            let forward = match &row.forward {
                None => String::new(),
                Some(f) => format!(
                    "{}{}",
                    escape_html(&f.to.join(", ")),
                    if f.keep { " (and keeps a copy)" } else { "" }
                ),
            };
            let delete = format!(
                "<a href=\"/admin/users/delete?address={}\" id=\"delete-{address}\">Delete</a>",
                escape_html(&query_value(&row.address))
            );
            html.push_str(&format!(
                "<tr><td>{address}{admin}</td><td>{}</td><td>{quota}</td><td>{forward}</td><td>{delete}</td></tr>\n",
                size(row.used)
            ));
        }
        html.push_str("</table>\n");
    }
    html.push_str("<datalist id=\"user-addresses\">");
    for row in rows {
        html.push_str(&format!("<option value=\"{}\">", escape_html(&row.address)));
    }
    html.push_str("</datalist>\n</section>\n");
    html
}

/// The forms that add a user and set a password, a limit or a forward.
fn user_forms(csrf: &str) -> String {
    let mut html = String::new();
    let address = |form: &str| {
        input(
            form,
            "address",
            "Address",
            "text",
            " list=\"user-addresses\" autocomplete=\"off\" required",
        )
    };
    let add = format!(
        "{}{}",
        input(
            "user-add",
            "address",
            "Address (name, or name@domain)",
            "text",
            " autocomplete=\"off\" required"
        ),
        input(
            "user-add",
            "password",
            "Password",
            "password",
            " autocomplete=\"new-password\" required"
        )
    );
    html.push_str("<h2>Add a user</h2>\n");
    html.push_str(&form(
        "user-add",
        "/admin/users/add",
        csrf,
        &add,
        "Add user",
    ));
    let passwd = format!(
        "{}{}",
        address("user-passwd"),
        input(
            "user-passwd",
            "password",
            "New password",
            "password",
            " autocomplete=\"new-password\" required"
        )
    );
    html.push_str("<h2>Set a password</h2>\n");
    html.push_str(&form(
        "user-passwd",
        "/admin/users/passwd",
        csrf,
        &passwd,
        "Set password",
    ));
    let quota = format!(
        "{}{}<p class=\"hint\">500M, 2G, unlimited, or default (the configured limit).</p>\n",
        address("user-quota"),
        input("user-quota", "size", "Mailbox limit", "text", " required")
    );
    html.push_str("<h2>Mailbox limit</h2>\n");
    html.push_str(&form(
        "user-quota",
        "/admin/users/quota",
        csrf,
        &quota,
        "Set limit",
    ));
    let forward = format!(
        "{}{}<label class=\"check\"><input id=\"user-forward-keep\" name=\"keep\" type=\"checkbox\" value=\"yes\"> Keep a copy here too</label>\n<p class=\"hint\">Addresses separated by commas, or off to stop forwarding.</p>\n",
        address("user-forward"),
        input("user-forward", "to", "Forward to", "text", " required")
    );
    html.push_str("<h2>Forwarding</h2>\n");
    html.push_str(&form(
        "user-forward",
        "/admin/users/forward",
        csrf,
        &forward,
        "Set forwarding",
    ));
    html
}

/// `GET /admin/users/delete?address=`: what deleting means, and the
/// address typed again to confirm.
pub fn confirm_delete(address: &str, csrf: &str) -> String {
    let shown = escape_html(address);
    let fields = format!(
        "<input type=\"hidden\" name=\"address\" value=\"{shown}\">\n<p>Deleting <strong>{shown}</strong> removes the user and <strong>all their mail</strong>. This cannot be undone.</p>\n{}",
        input(
            "user-delete",
            "confirm",
            "Type the address to confirm",
            "text",
            " autocomplete=\"off\" required"
        )
    );
    format!(
        "<h1>Delete a user</h1>\n{}<p><a href=\"/admin/users\">Keep the user</a></p>\n",
        form(
            "user-delete",
            "/admin/users/delete",
            csrf,
            &fields,
            "Delete user and mail"
        )
    )
}

/// A value for a URL query: percent-encoded but for unreserved characters
/// and `@`.
pub fn query_value(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

// ---- Aliases ----

/// Every alias and its targets, from the aliases file.
pub fn alias_rows(config: &Config) -> Result<Vec<(String, Vec<String>)>, String> {
    let aliases = crate::route::Aliases::load(&config.aliases)?;
    Ok(aliases
        .names()
        .map(|n| {
            (
                n.to_string(),
                aliases.targets(n).unwrap_or_default().to_vec(),
            )
        })
        .collect())
}

/// `GET /admin/aliases`: each alias or list with its targets, and forms
/// to add one and to remove each.
pub fn aliases(rows: &[(String, Vec<String>)], csrf: &str) -> String {
    let mut html = String::from("<h1>Aliases and lists</h1>\n<section>\n");
    if rows.is_empty() {
        html.push_str("<p id=\"no-aliases\">No aliases yet.</p>\n");
    } else {
        html.push_str("<table id=\"aliases\">\n<tr><th>Name</th><th>Goes to</th><th></th></tr>\n");
        for (name, targets) in rows {
            let delete = button_form(
                &format!("alias-delete-{name}"),
                "/admin/aliases/delete",
                csrf,
                &[("name", name)],
                "Remove",
            );
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{delete}</td></tr>\n",
                escape_html(name),
                escape_html(&targets.join(", "))
            ));
        }
        html.push_str("</table>\n");
    }
    html.push_str("</section>\n<h2>Add an alias or list</h2>\n");
    let fields = format!(
        "{}{}<p class=\"hint\">Addresses or local names, separated by commas. Adding to an existing name adds targets.</p>\n",
        input("alias-add", "name", "Name", "text", " autocomplete=\"off\" required"),
        input("alias-add", "targets", "Goes to", "text", " required")
    );
    html.push_str(&form(
        "alias-add",
        "/admin/aliases/add",
        csrf,
        &fields,
        "Add",
    ));
    html
}

// ---- Queue ----

/// One message waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    pub id: String,
    /// Seconds since it arrived.
    pub age: u64,
    pub sender: String,
    pub recipients: Vec<String>,
    pub attempts: u32,
    /// Seconds to the next try (0: now).
    pub next_in: u64,
    pub last_error: Option<String>,
}

/// The messages waiting, and a line about damaged ones (if any).
pub fn queue_rows(config: &Config, now: u64) -> Result<(Vec<QueueRow>, Option<String>), String> {
    let entries = crate::queue::store::scan(disk::system(), &config.node_dir(), false)
        .map_err(|e| format!("cannot read the queue: {e}"))?;
    let damaged = crate::queue::store::damaged_report(disk::system(), &config.node_dir());
    let rows = entries
        .iter()
        .map(|e| QueueRow {
            id: e.id.clone(),
            age: now.saturating_sub(e.arrived),
            sender: e.sender.clone(),
            recipients: e.pending().map(|r| r.address.clone()).collect(),
            attempts: e.attempts,
            next_in: e.next_try.saturating_sub(now),
            last_error: e.last_error().map(str::to_string),
        })
        .collect();
    Ok((rows, damaged))
}

/// `GET /admin/queue`: the messages waiting, a button to try them all
/// now, and one to drop each.
pub fn queue(rows: &[QueueRow], damaged: Option<&str>, csrf: &str) -> String {
    use crate::queue::human;
    let mut html = String::from("<h1>Queue</h1>\n<section>\n");
    if rows.is_empty() {
        html.push_str("<p id=\"queue-empty\">The queue is empty.</p>\n");
    } else {
        html.push_str(&format!(
            "<p>{} waiting to leave.</p>\n<table id=\"queue\">\n<tr><th>Id</th><th>Age</th><th>From</th><th>To</th><th>Tries</th><th>Next try</th><th>Last error</th><th></th></tr>\n",
            match rows.len() {
                1 => "1 message".to_string(),
                n => format!("{n} messages"),
            }
        ));
        for row in rows {
            let next = match row.next_in {
                0 => "now".to_string(),
                secs => format!("in {}", human(secs)),
            };
            let delete = button_form(
                &format!("queue-delete-{}", row.id),
                "/admin/queue/delete",
                csrf,
                &[("id", &row.id)],
                "Delete",
            );
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>&lt;{}&gt;</td><td>{}</td><td>{}</td><td>{next}</td><td>{}</td><td>{delete}</td></tr>\n",
                escape_html(&row.id),
                human(row.age),
                escape_html(&row.sender),
                escape_html(&row.recipients.join(", ")),
                row.attempts,
                escape_html(row.last_error.as_deref().unwrap_or(""))
            ));
        }
        html.push_str(
            "</table>\n<p class=\"hint\">Deleting a message sends no report to its sender.</p>\n",
        );
    }
    if let Some(line) = damaged {
        html.push_str(&format!(
            "<p class=\"message error\">{}</p>\n",
            escape_html(line)
        ));
    }
    html.push_str("</section>\n");
    html.push_str(&form(
        "queue-flush",
        "/admin/queue/flush",
        csrf,
        "<p>The running server tries every waiting message now.</p>\n",
        "Try all now",
    ));
    html
}

// ---- Log ----

/// `GET /admin/log`: the last lines of the server's log, newest last;
/// `None` when the server logs only to stderr.
pub fn log(lines: Option<&[String]>) -> String {
    match lines {
        None => "<h1>Log</h1>\n<section>\n<p id=\"no-log\">This server logs to its standard error only (it was started without <code>--log-ring</code>), so there are no lines to show here.</p>\n</section>\n".to_string(),
        Some(lines) => format!(
            "<h1>Log</h1>\n<section>\n<p>The last {} lines, newest last.</p>\n{}</section>\n",
            lines.len(),
            pre("log", &lines.join("\n"))
        ),
    }
}

// ---- Statistics ----

/// `GET /admin/stats`: the chart of `days` (oldest first), the same
/// figures as a table, and the counters' report.
pub fn stats(stats: &Stats, days: &[Day]) -> String {
    let mut rows = String::new();
    for day in days.iter().rev() {
        let (year, month, dom) = crate::ops::clock::civil_from_days(day.day as i64);
        rows.push_str(&format!(
            "<tr><td>{year:04}-{month:02}-{dom:02}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            day.received, day.delivered, day.sent
        ));
    }
    format!(
        "<h1>Statistics</h1>\n<section>\n<h2>Messages received per day, last {} days (UTC)</h2>\n<img id=\"chart\" src=\"{CHART_PATH}\" width=\"640\" height=\"240\" alt=\"Bar chart of messages received per day; the table below has the figures\">\n<details>\n<summary>The figures</summary>\n<table id=\"days\">\n<tr><th>Day</th><th>Received</th><th>Delivered here</th><th>Sent on</th></tr>\n{rows}</table>\n</details>\n</section>\n<section>\n<h2>Counters</h2>\n{}</section>\n",
        days.len(),
        pre("stats", &stats.report())
    )
}

// ---- Certificate ----

/// `GET /admin/tls`: the certificate in service; `acme` (text) says how
/// an automatic certificate is doing, when one is set up.
pub fn certificate(info: &CertInfo, acme: Option<&str>) -> String {
    let row = |key: &str, value: &str| {
        format!(
            "<tr><th scope=\"row\">{key}</th><td>{}</td></tr>\n",
            escape_html(value)
        )
    };
    let mut html = format!(
        "<h1>Certificate</h1>\n<section>\n<table id=\"certificate\">\n{}{}{}{}</table>\n<p class=\"hint\">Mail programs that ask to accept the certificate show this fingerprint.</p>\n</section>\n",
        row("Subject", &info.subject),
        row("Valid from", &info.not_before),
        row("Valid until", &info.not_after),
        row("SHA-256", &info.fingerprint),
    );
    html.push_str("<section id=\"acme\">\n<h2>Automatic certificate</h2>\n");
    match acme {
        Some(text) => html.push_str(&pre("acme-status", text)),
        None => html.push_str("<p>Not set up: the certificate comes from <code>[tls] cert</code> and <code>key</code>, or is self-signed.</p>\n"),
    }
    html.push_str("</section>\n");
    html
}

// ---- DNS ----

/// `GET /admin/dns`: the records to publish, and (after the button) what
/// the resolver says of each.
pub fn dns(records: &Result<String, String>, check: Option<&str>, csrf: &str) -> String {
    let mut html = String::from(
        "<h1>DNS records</h1>\n<section>\n<p>Publish these records at your DNS provider.</p>\n",
    );
    match records {
        Ok(text) => html.push_str(&pre("dns-records", text)),
        Err(e) => html.push_str(&format!(
            "<p class=\"message error\">{}</p>\n",
            escape_html(e)
        )),
    }
    html.push_str("</section>\n");
    if let Some(result) = check {
        html.push_str(&format!(
            "<section>\n<h2>What the resolver says</h2>\n{}</section>\n",
            pre("dns-check-result", result)
        ));
    }
    html.push_str(&form(
        "dns-check",
        "/admin/dns/check",
        csrf,
        "<p>Asks the configured resolver for each record and says what is missing or different.</p>\n",
        "Check the records",
    ));
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSRF: &str = "<input type=\"hidden\" name=\"csrf\" value=\"T0K\">";

    /// Every `<form` in `html` posts, carries the CSRF field and an id.
    fn forms_are_guarded(html: &str) -> usize {
        let forms: Vec<&str> = html.split("<form").skip(1).collect();
        for f in &forms {
            let f = &f[..f.find("</form>").unwrap()];
            assert!(f.contains("method=\"post\""), "{f}");
            assert!(f.contains(CSRF), "{f}");
            assert!(f.contains(" id=\""), "{f}");
        }
        forms.len()
    }

    fn row(address: &str) -> UserRow {
        UserRow {
            address: address.into(),
            admin: false,
            used: 0,
            limit: 0,
            own_limit: false,
            forward: None,
        }
    }

    #[test]
    fn users_table_and_forms() {
        let rows = vec![
            UserRow {
                admin: true,
                used: 1536,
                limit: 500 << 20,
                own_limit: true,
                ..row("alice@example.org")
            },
            UserRow {
                forward: Some(Forward {
                    to: vec!["b<o>b@elsewhere.test".into()],
                    keep: true,
                }),
                ..row("bob@example.org")
            },
        ];
        let html = users(&rows, CSRF);
        assert!(html.contains("<td>alice@example.org (admin)</td><td>1.5 KiB</td><td>500 MiB</td>"));
        assert!(html.contains(
            "<td>unlimited (default)</td><td>b&lt;o&gt;b@elsewhere.test (and keeps a copy)</td>"
        ));
        assert!(html.contains("href=\"/admin/users/delete?address=bob@example.org\""));
        for (id, fields) in [
            ("user-add", &["address", "password"][..]),
            ("user-passwd", &["address", "password"]),
            ("user-quota", &["address", "size"]),
            ("user-forward", &["address", "to", "keep"]),
        ] {
            assert!(
                html.contains(&format!("<form class=\"card\" id=\"{id}\"")),
                "{id}"
            );
            for field in fields {
                assert!(
                    html.contains(&format!("id=\"{id}-{field}\" name=\"{field}\"")),
                    "{id} {field}"
                );
            }
        }
        assert_eq!(forms_are_guarded(&html), 4);
        assert!(users(&[], CSRF).contains("No users yet"));
    }

    #[test]
    fn delete_asks_for_the_address_again() {
        let html = confirm_delete("o'neil@example.org", CSRF);
        assert!(html.contains("name=\"address\" value=\"o&#39;neil@example.org\""));
        assert!(html.contains("id=\"user-delete-confirm\" name=\"confirm\""));
        assert!(html.contains("all their mail"));
        assert_eq!(forms_are_guarded(&html), 1);
        assert_eq!(query_value("a b&c@x.org"), "a%20b%26c@x.org");
    }

    #[test]
    fn aliases_queue_and_dns_forms_are_guarded() {
        let html = aliases(
            &[("club".into(), vec!["alice".into(), "<bob>".into()])],
            CSRF,
        );
        assert!(html.contains("<td>club</td><td>alice, &lt;bob&gt;</td>"));
        assert!(html.contains("id=\"alias-delete-club\""));
        assert!(html.contains("id=\"alias-add-targets\" name=\"targets\""));
        assert_eq!(forms_are_guarded(&html), 2);

        let waiting = QueueRow {
            id: "1700000000.42".into(),
            age: 3700,
            sender: "alice@example.org".into(),
            recipients: vec!["x@far.test".into()],
            attempts: 2,
            next_in: 0,
            last_error: Some("451 <busy>".into()),
        };
        let html = queue(&[waiting], Some("1 damaged envelope set aside"), CSRF);
        assert!(html.contains("<td>1700000000.42</td><td>61m</td><td>&lt;alice@example.org&gt;</td><td>x@far.test</td><td>2</td><td>now</td><td>451 &lt;busy&gt;</td>"));
        assert!(html.contains("id=\"queue-delete-1700000000.42\""));
        assert!(html.contains("name=\"id\" value=\"1700000000.42\""));
        assert!(html.contains("damaged envelope"));
        assert_eq!(forms_are_guarded(&html), 2);
        assert!(queue(&[], None, CSRF).contains("queue-empty"));

        let html = dns(
            &Ok("example.org. MX 10 mx\n".into()),
            Some("ok <all>"),
            CSRF,
        );
        assert!(html.contains("ok &lt;all&gt;"));
        assert_eq!(forms_are_guarded(&html), 1);
    }

    #[test]
    fn read_only_sections_escape_what_they_show() {
        let html = status("server: running (pid 1)\nusers: 2\ntls: CN=<x>\n");
        assert!(html.contains("<th scope=\"row\">tls</th><td>CN=&lt;x&gt;</td>"));
        let html = log(Some(&["a <b> & c".to_string(), "d".to_string()]));
        assert!(html.contains("<pre id=\"log\">a &lt;b&gt; &amp; c\nd</pre>"));
        assert!(log(None).contains("--log-ring"));
        let days = [
            Day {
                day: 20_424,
                received: 3,
                delivered: 2,
                sent: 1,
            },
            Day {
                day: 20_425,
                ..Day::default()
            },
        ];
        let html = stats(&Stats::default(), &days);
        assert!(html.contains(&format!("<img id=\"chart\" src=\"{CHART_PATH}\"")));
        // Newest first in the table.
        assert!(html.contains("<tr><td>2025-12-03</td><td>0</td><td>0</td><td>0</td></tr>\n<tr><td>2025-12-02</td><td>3</td><td>2</td><td>1</td></tr>"));
        assert!(html.contains("received: 0 messages"));
        let info = CertInfo {
            subject: "CN=mx.example.org".into(),
            issuer: "CN=mx.example.org".into(),
            names: vec!["mx.example.org".into()],
            serial: "01".into(),
            not_before: "a".into(),
            not_after: "b".into(),
            valid_from: 0,
            valid_until: 1,
            fingerprint: "AB:CD".into(),
        };
        let html = certificate(&info, None);
        assert!(html.contains("<td>AB:CD</td>") && html.contains("id=\"acme\""));
        assert!(certificate(&info, Some("renews <soon>")).contains("renews &lt;soon&gt;"));
        let nav = section("/admin/queue", Some(&Outcome::Failed("no <x>".into())), "");
        assert!(nav.contains("<a href=\"/admin/queue\" aria-current=\"page\">Queue</a>"));
        assert!(nav.contains("class=\"message error\" id=\"outcome\" role=\"alert\">no &lt;x&gt;"));
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(
            [0, 1023, 1024, 1536, 10 << 20, 3 << 30].map(size),
            ["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "10 MiB", "3.0 GiB"]
        );
    }
}
