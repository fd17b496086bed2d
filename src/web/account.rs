//! The members' own page: how full the mailbox is, the password, a
//! forward, the away message, the address book, and setting up mail
//! programs. Each change
//! goes through the admin verb that does it from the command line, so
//! the web and `postbox user ...` do exactly the same.
//!
//! Form ids and field names (stable, for tests and browsers):
//! `password-form` (`old`, `new`, `again`), `forward` (`to`, `keep`,
//! button `action` = `set` | `stop`), `away` (`until`, `subject`, `text`,
//! button `action` = `set` | `stop`); the address book's are in
//! [`super::book`].

use super::form::Form;
use super::http::Response;
use super::pages::escape_html;
use super::session::Who;
use super::visit::{Pending, Visit};
use crate::admin;
use crate::auth::{password, Login};
use crate::away::Away;
use crate::route::Forward;
use crate::store::disk;
use crate::wire::address::Address;
use std::fmt::Write;

/// Where the Apple profile of the signed-in member is downloaded.
pub const PROFILE_PATH: &str = "/account/postbox.mobileconfig";

/// What the page says after a change that worked (`?saved=`).
const SAVED: &[(&str, &str)] = &[
    (
        "password",
        "Your password is changed. Mail programs need the new one now.",
    ),
    ("forward", "Your forward is set."),
    ("forward-off", "Your mail is no longer forwarded."),
    ("away", "Your away message is on."),
    ("away-off", "Your away message is off."),
    ("book", "The address is in your address book."),
    ("book-off", "The address is no longer in your address book."),
];

/// What the page shows of the member's settings.
struct Settings {
    used: u64,
    /// 0: unlimited.
    limit: u64,
    forward: Option<Forward>,
    away: Option<Away>,
    book: Vec<crate::spam::book::Entry>,
}

async fn settings(visit: &Visit<'_>, member: &Address) -> Settings {
    let handles = visit.handles;
    handles.router.refresh().await;
    let mailbox = handles.store.mailbox_dir(member);
    let used = handles.store.mailbox_usage(&mailbox);
    let limit = handles.router.quota_of(member);
    let data_dir = visit.site.config.mail_dir().to_path_buf();
    let account = member.as_str().to_string();
    let (forward, away, book) = smol::unblock(move || {
        let forward = crate::route::forward::load(&data_dir)
            .ok()
            .and_then(|all| all.get(&account).cloned());
        let book = crate::spam::book::read(&mailbox).unwrap_or_else(|e| {
            log::error!("cannot read the address book of {account}: {e}");
            Vec::new()
        });
        (forward, crate::away::load(disk::system(), &mailbox), book)
    })
    .await;
    Settings {
        used,
        limit,
        forward,
        away,
        book,
    }
}

/// What a form that failed leaves on the page: which form, why, and what
/// was typed (shown again).
struct Problem<'a> {
    form: &'a str,
    message: String,
    typed: &'a Form,
}

/// `GET /account`.
pub fn overview<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let Some(member) = visit.member() else {
            return Response::see_other("/login");
        };
        let saved = visit
            .request
            .query_param("saved")
            .and_then(|key| SAVED.iter().find(|(k, _)| *k == key))
            .map(|(_, text)| *text);
        render(visit, member, 200, saved, None).await
    })
}

async fn render(
    visit: &Visit<'_>,
    member: &Address,
    status: u16,
    saved: Option<&str>,
    problem: Option<Problem<'_>>,
) -> Response {
    let settings = settings(visit, member).await;
    let mut body = String::from("<h1>Your account</h1>\n");
    if let Some(text) = saved {
        let _ = writeln!(
            body,
            "<p class=\"message ok\" id=\"message\">{}</p>",
            escape_html(text)
        );
    }
    if let Some(p) = &problem {
        let _ = writeln!(
            body,
            "<p class=\"message error\" id=\"message\">{}</p>",
            escape_html(&p.message)
        );
    }
    let typed = |form: &str| problem.as_ref().filter(|p| p.form == form).map(|p| p.typed);
    body.push_str(&mailbox_section(member, &settings));
    body.push_str(&password_section(visit));
    body.push_str(&forward_section(visit, &settings, typed("forward")));
    body.push_str(&away_section(visit, &settings, typed("away")));
    body.push_str(&super::book::section(visit, &settings.book, typed("book")));
    body.push_str(&programs_section(visit, member));
    visit.page(status, "Your account", &body)
}

/// `1.4 MB`, `512 kB`: sizes as people read them.
fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "kB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            let tenths = bytes * 10 / unit;
            return match tenths % 10 {
                0 => format!("{} {name}", tenths / 10),
                d => format!("{}.{d} {name}", tenths / 10),
            };
        }
    }
    format!("{bytes} bytes")
}

fn mailbox_section(member: &Address, settings: &Settings) -> String {
    let address = escape_html(member.as_str());
    let usage = match settings.limit {
        0 => format!(
            "<p id=\"usage\">{} used; your mailbox has no limit.</p>\n",
            size(settings.used)
        ),
        limit => {
            let percent = (settings.used.saturating_mul(100) / limit).min(100);
            format!(
                "<p id=\"usage\">{} of {} used ({percent}%).</p>\n<meter min=\"0\" max=\"{limit}\" high=\"{}\" value=\"{}\">{percent}%</meter>\n<p class=\"hint\">Mail that would take it over the limit is refused; delete mail (your mail program does so when it fetches) to make room.</p>\n",
                size(settings.used),
                size(limit),
                limit / 10 * 9,
                settings.used.min(limit),
            )
        }
    };
    format!("<section id=\"mailbox\">\n<h2>Mailbox</h2>\n<p>Signed in as <strong>{address}</strong>.</p>\n{usage}</section>\n")
}

fn password_section(visit: &Visit) -> String {
    format!(
        "<form class=\"card\" id=\"password-form\" method=\"post\" action=\"/account/password\">\n<h2>Password</h2>\n{}\n<label for=\"old\">Current password</label>\n<input id=\"old\" name=\"old\" type=\"password\" autocomplete=\"current-password\" required>\n<label for=\"new\">New password</label>\n<input id=\"new\" name=\"new\" type=\"password\" autocomplete=\"new-password\" required>\n<label for=\"again\">New password again</label>\n<input id=\"again\" name=\"again\" type=\"password\" autocomplete=\"new-password\" required>\n<button type=\"submit\" id=\"change-password\">Change password</button>\n</form>\n",
        visit.csrf_field()
    )
}

fn forward_section(visit: &Visit, settings: &Settings, typed: Option<&Form>) -> String {
    let state = match &settings.forward {
        None => "Your mail stays here.".to_string(),
        Some(f) => format!(
            "Your mail goes on to {}{}.",
            escape_html(&f.to.join(", ")),
            if f.keep {
                ", and a copy stays here"
            } else {
                ""
            }
        ),
    };
    let (to, keep) = match typed {
        Some(form) => (form.text("to").to_string(), form.get("keep").is_some()),
        None => match &settings.forward {
            Some(f) => (f.to.join(", "), f.keep),
            None => (String::new(), true),
        },
    };
    let stop = match settings.forward {
        Some(_) => "<button type=\"submit\" class=\"quiet\" id=\"forward-stop\" name=\"action\" value=\"stop\" formnovalidate>Stop forwarding</button>\n",
        None => "",
    };
    format!(
        "<form class=\"card\" id=\"forward\" method=\"post\" action=\"/account/forward\">\n<h2>Forward</h2>\n<p class=\"state\" id=\"forward-state\">{state}</p>\n{}\n<label for=\"to\">Forward to</label>\n<input id=\"to\" name=\"to\" type=\"text\" inputmode=\"email\" value=\"{}\" placeholder=\"name@example.com\">\n<p class=\"hint\">One address, or several separated by commas.</p>\n<label class=\"check\"><input id=\"keep\" name=\"keep\" type=\"checkbox\" value=\"1\"{}> Keep a copy here too</label>\n<button type=\"submit\" id=\"forward-set\" name=\"action\" value=\"set\">Forward</button>\n{stop}</form>\n",
        visit.csrf_field(),
        escape_html(&to),
        if keep { " checked" } else { "" },
    )
}

fn away_section(visit: &Visit, settings: &Settings, typed: Option<&Form>) -> String {
    let now = crate::queue::unix_now();
    let away = settings.away.as_ref();
    let state = match away {
        Some(a) if a.on && a.until.is_none_or(|u| now < u) => match a.until {
            Some(until) => format!(
                "On: answering mail until {} (UTC).",
                crate::away::format_date(until)
            ),
            None => "On: answering mail until you turn it off.".into(),
        },
        _ => "Off.".into(),
    };
    let (until, subject, text) = match typed {
        Some(form) => (
            form.text("until").to_string(),
            form.text("subject").to_string(),
            form.text("text").to_string(),
        ),
        None => match away {
            Some(a) => (
                a.until
                    .filter(|u| *u > now)
                    .map(crate::away::format_date)
                    .unwrap_or_default(),
                a.subject.clone(),
                a.text.clone(),
            ),
            None => Default::default(),
        },
    };
    let on = away.is_some_and(|a| a.on);
    let stop = match on {
        true => "<button type=\"submit\" class=\"quiet\" id=\"away-stop\" name=\"action\" value=\"stop\" formnovalidate>Turn off</button>\n",
        false => "",
    };
    format!(
        "<form class=\"card\" id=\"away\" method=\"post\" action=\"/account/away\">\n<h2>Away message</h2>\n<p class=\"state\" id=\"away-state\">{state}</p>\n{}\n<label for=\"until\">Back on (optional)</label>\n<input id=\"until\" name=\"until\" type=\"date\" value=\"{}\">\n<p class=\"hint\">Answers stop at the start of that day (UTC). Empty: until you turn it off.</p>\n<label for=\"subject\">Subject (optional)</label>\n<input id=\"subject\" name=\"subject\" type=\"text\" maxlength=\"{}\" value=\"{}\" placeholder=\"Auto: and the original subject\">\n<label for=\"text\">Text</label>\n<textarea id=\"text\" name=\"text\" required>{}</textarea>\n<p class=\"hint\">Each sender gets one answer a week; lists, bulk mail and other automatic mail get none.</p>\n<button type=\"submit\" id=\"away-set\" name=\"action\" value=\"set\">Turn on</button>\n{stop}</form>\n",
        visit.csrf_field(),
        escape_html(&until),
        crate::limits::AWAY_MAX_SUBJECT,
        escape_html(&subject),
        escape_html(&text),
    )
}

fn programs_section(visit: &Visit, member: &Address) -> String {
    let config = visit.site.config;
    let host = escape_html(config.hostname.trim_end_matches('.'));
    let mut rows = String::new();
    for service in super::autoconfig::services(config) {
        use super::autoconfig::{Protocol, Security};
        let what = match service.protocol {
            Protocol::Pop3 => "Incoming (POP3)",
            Protocol::Submission => "Outgoing (SMTP)",
        };
        let security = match service.security {
            Security::Implicit => "SSL/TLS",
            Security::StartTls => "STARTTLS",
        };
        let _ = writeln!(
            rows,
            "<tr><td>{what}</td><td>{host}</td><td>{}</td><td>{security}</td></tr>",
            service.port
        );
    }
    format!(
        "<section id=\"programs\">\n<h2>Mail programs</h2>\n<p><strong>iPhone, iPad and Mac:</strong> open this page there and install the profile; it asks for your password.</p>\n<p><a class=\"button\" id=\"apple-profile\" href=\"{PROFILE_PATH}\">Download the Apple profile</a></p>\n<p><strong>Thunderbird:</strong> add a mail account with your name, <code>{}</code> and your password; it finds the settings by itself. Other programs: the settings below, with your full address as the user name.</p>\n<table id=\"settings\">\n<tr><th>Server</th><th>Host</th><th>Port</th><th>Security</th></tr>\n{rows}</table>\n</section>\n",
        escape_html(member.as_str())
    )
}

/// Runs blocking `work` (an admin verb) on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    smol::unblock(work).await
}

/// A form that failed: the page again, saying why, with what was typed.
pub(super) async fn failed(
    visit: &Visit<'_>,
    member: &Address,
    status: u16,
    form: &str,
    message: String,
) -> Response {
    let problem = Problem {
        form,
        message,
        typed: &visit.form,
    };
    render(visit, member, status, None, Some(problem)).await
}

/// The answer to a setting of `form` changed (or turned off, when
/// `stop`): logged and back to the account page saying so, or the page
/// again with why not.
pub(super) async fn settled(
    visit: &Visit<'_>,
    member: &Address,
    form: &str,
    stop: bool,
    result: Result<String, String>,
) -> Response {
    match result {
        Ok(done) => {
            visit.log(&done);
            let off = if stop { "-off" } else { "" };
            Response::see_other(&format!("/account?saved={form}{off}"))
        }
        Err(why) => failed(visit, member, 400, form, why).await,
    }
}

/// `POST /account/password`: `old`, `new`, `again`.
pub fn password<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let Some(member) = visit.member() else {
            return Response::see_other("/login");
        };
        let form = &visit.form;
        let (old, new) = (form.text("old"), form.text("new"));
        if new != form.text("again") {
            let message = "The two new passwords differ; nothing was changed.".into();
            return failed(visit, member, 400, "password", message).await;
        }
        if let Err(why) = password::check_new(new) {
            let message = format!("The new password is not accepted: {why}.");
            return failed(visit, member, 400, "password", message).await;
        }
        let handles = visit.handles;
        match handles.auth.login(member.as_str(), old, visit.peer).await {
            Login::Ok(_) => {}
            Login::Failed => {
                visit.log("password change refused: wrong current password");
                let message = "The current password is wrong; nothing was changed.".into();
                return failed(visit, member, 403, "password", message).await;
            }
            Login::Refused => {
                let message = "Too many wrong passwords lately; please wait a while.".into();
                return failed(visit, member, 429, "password", message).await;
            }
        }
        let config = visit.site.config.clone();
        let (account, secret) = (member.as_str().to_string(), new.to_string());
        let changed = handles
            .auth
            .hashing(move || admin::set_password(&config, &account, &secret))
            .await;
        if let Err(why) = changed {
            log::error!("web {}: cannot change password: {why}", visit.who());
            let message = format!("The password could not be changed: {why}");
            return failed(visit, member, 500, "password", message).await;
        }
        // The old password is taken out of service at once: the login
        // cache only knows it for the hash now replaced.
        handles.router.refresh().await;
        let who = Who::Member(member.clone());
        let keep = visit.session.as_ref().map(|s| s.token.as_str());
        let mut sessions = handles.sessions.borrow_mut();
        sessions.end_all_of(&who, keep);
        if let (Some(token), Some(stamp)) = (keep, handles.auth.password_stamp(member)) {
            sessions.restamp(token, stamp);
        }
        drop(sessions);
        visit.log("password changed");
        Response::see_other("/account?saved=password")
    })
}

/// `POST /account/forward`: `to`, `keep`, `action` (`set` or `stop`).
pub fn forward<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let Some(member) = visit.member() else {
            return Response::see_other("/login");
        };
        let form = &visit.form;
        let stop = form.text("action") == "stop";
        let to: Vec<String> = form
            .text("to")
            .split([',', ' ', '\n', '\r', '\t', ';'])
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if !stop && (to.is_empty() || to.iter().any(|t| t.eq_ignore_ascii_case("off"))) {
            let message = "Give the address to forward to.".into();
            return failed(visit, member, 400, "forward", message).await;
        }
        let keep = form.get("keep").is_some();
        let config = visit.site.config.clone();
        let account = member.as_str().to_string();
        let result = blocking(move || {
            let targets: Vec<&str> = match stop {
                true => vec!["off"],
                false => to.iter().map(String::as_str).collect(),
            };
            admin::set_forward(&config, &account, &targets, keep)
        })
        .await;
        settled(visit, member, "forward", stop, result).await
    })
}

/// `POST /account/away`: `until` (YYYY-MM-DD or empty), `subject`,
/// `text`, `action` (`set` or `stop`).
pub fn away<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let Some(member) = visit.member() else {
            return Response::see_other("/login");
        };
        let form = &visit.form;
        let stop = form.text("action") == "stop";
        let until = form.text("until").trim().to_string();
        if !stop && !until.is_empty() {
            if let Err(why) = crate::away::parse_date(&until) {
                return failed(visit, member, 400, "away", why).await;
            }
        }
        let subject = form.text("subject").trim().to_string();
        // Browsers send a textarea's lines with CRLF; the text is kept
        // with LF, as the console and command line give it.
        let text = form.text("text").replace("\r\n", "\n");
        let config = visit.site.config.clone();
        let account = member.as_str().to_string();
        let result = blocking(move || {
            let mut args = vec![if stop {
                "off"
            } else if until.is_empty() {
                "-"
            } else {
                until.as_str()
            }];
            if !stop && !subject.is_empty() {
                args.push(&subject);
            }
            admin::set_away(&config, &account, &args, &text)
        })
        .await;
        settled(visit, member, "away", stop, result).await
    })
}

/// `GET /account/postbox.mobileconfig`: the Apple profile for the
/// signed-in member.
pub fn apple_profile<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let Some(member) = visit.member() else {
            return Response::see_other("/login");
        };
        let profile =
            super::autoconfig::mobileconfig(visit.site.config, member.as_str(), member.as_str());
        let mut response = Response::new(200, "application/x-apple-aspen-config", profile);
        response.fields.push((
            "Content-Disposition",
            "attachment; filename=\"postbox.mobileconfig\"".into(),
        ));
        response
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(1023), "1023 bytes");
        assert_eq!(size(1024), "1 kB");
        assert_eq!(size(1536), "1.5 kB");
        assert_eq!(size(100 << 20), "100 MB");
        assert_eq!(size((5 << 30) + (1 << 29)), "5.5 GB");
    }
}
