//! The admin pages' handlers, one line each in the router's table
//! (`Access::Admin`: the admin's session, from `[web] admin_from`, and
//! every posted form's CSRF token are checked before they run).
//!
//! A change runs its admin verb; when it succeeds it is logged (`web admin
//! from 192.0.2.7: user add bob@example.org`) and the browser is sent back
//! to the section (POST-redirect-GET) with a fixed note saying what was
//! done; when it fails the section is shown again with the verb's error,
//! and nothing else changes.

use super::act::{within, Action};
use super::view::{self, Outcome};
use crate::web::http::{Response, SVG};
use crate::web::visit::{Pending, Visit};
use std::time::Duration;

/// How long the DNS check may take before the page answers without it.
const DNS_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// What a change did, as the section it returns to says it: the `done`
/// key of the redirect, and the note (`{}` is the `name` parameter).
const NOTES: &[(&str, &str)] = &[
    ("user-add", "Added {}."),
    ("user-passwd", "Changed the password of {}."),
    ("user-quota", "Changed the mailbox limit of {}."),
    ("user-forward", "Changed the forwarding of {}."),
    ("user-delete", "Deleted {} and their mail."),
    ("alias-add", "Saved {}."),
    ("alias-delete", "Removed {}."),
    (
        "queue-flush",
        "The server is trying every waiting message now.",
    ),
    ("queue-delete", "Deleted {} from the queue."),
];

/// The note of a redirect's `done` and `name`, if it names one.
fn note(visit: &Visit) -> Option<Outcome> {
    let done = visit.request.query_param("done")?;
    let (_, text) = NOTES.iter().find(|(key, _)| *key == done)?;
    let name = visit.request.query_param("name").unwrap_or_default();
    Some(Outcome::Done(text.replace("{}", &name)))
}

/// A section's page: the menu, `outcome`, then `body`.
fn section(
    visit: &Visit,
    status: u16,
    path: &str,
    outcome: Option<Outcome>,
    body: &str,
) -> Response {
    let title = view::SECTIONS
        .iter()
        .find(|(p, _)| *p == path)
        .map_or("Admin", |(_, name)| name);
    let outcome = outcome.or_else(|| note(visit));
    visit.page(
        status,
        &format!("Admin: {title}"),
        &view::section(path, outcome.as_ref(), body),
    )
}

/// Runs `action`. Done: logged, and back to `path` with the note `done`
/// about `name`. Failed: `again` shows the section with the error (400).
fn change<'a, F, R>(
    visit: &'a Visit<'a>,
    action: Action,
    path: &'static str,
    done: &'static str,
    name: &'a str,
    again: F,
) -> Pending<'a>
where
    F: FnOnce(&'a Visit<'a>, Outcome) -> R + 'a,
    R: std::future::Future<Output = Response> + 'a,
{
    Box::pin(async move {
        let what = action.describe();
        match action.run(visit.site.config).await {
            Ok(_) => {
                visit.log(&what);
                Response::see_other(&format!(
                    "{path}?done={done}&name={}",
                    view::query_value(name)
                ))
            }
            Err(why) => {
                visit.log(&format!("{what}: refused: {why}"));
                again(visit, Outcome::Failed(why)).await
            }
        }
    })
}

/// A section listing what `listed` read (or why it could not): 400 when
/// shown again after a failed change.
fn listing(
    visit: &Visit,
    path: &str,
    outcome: Option<Outcome>,
    listed: Result<String, String>,
) -> Response {
    let status = match outcome {
        Some(Outcome::Failed(_)) => 400,
        _ => 200,
    };
    let body = listed.unwrap_or_else(|e| {
        format!(
            "<p class=\"message error\">{}</p>\n",
            crate::web::pages::escape_html(&e)
        )
    });
    section(visit, status, path, outcome, &body)
}

/// Blocking work on the config, off the executor thread.
async fn read<T: Send + 'static>(
    visit: &Visit<'_>,
    work: impl FnOnce(&crate::config::Config) -> T + Send + 'static,
) -> T {
    let config = visit.site.config.clone();
    smol::unblock(move || work(&config)).await
}

// ---- Status ----

/// `GET /admin`: the status, as the console's `status` shows it.
pub fn status<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let text = read(visit, crate::admin::status).await;
        section(visit, 200, "/admin", None, &view::status(&text))
    })
}

// ---- Users ----

async fn users_page<'a>(visit: &'a Visit<'a>, outcome: Option<Outcome>) -> Response {
    let rows = read(visit, view::user_rows).await;
    let listed = rows.map(|rows| view::users(&rows, &visit.csrf_field()));
    listing(visit, "/admin/users", outcome, listed)
}

async fn users_again<'a>(visit: &'a Visit<'a>, outcome: Outcome) -> Response {
    users_page(visit, Some(outcome)).await
}

/// `GET /admin/users`.
pub fn users<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(users_page(visit, None))
}

/// `POST /admin/users/add`: `address`, `password`.
pub fn user_add<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    let address = visit.form.text("address");
    let action =
        Action::new(&["user", "add"], &[address], &[]).with_password(visit.form.text("password"));
    change(
        visit,
        action,
        "/admin/users",
        "user-add",
        address,
        users_again,
    )
}

/// `POST /admin/users/passwd`: `address`, `password`.
pub fn user_passwd<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    let address = visit.form.text("address");
    let action = Action::new(&["user", "passwd"], &[address], &[])
        .with_password(visit.form.text("password"));
    change(
        visit,
        action,
        "/admin/users",
        "user-passwd",
        address,
        users_again,
    )
}

/// `POST /admin/users/quota`: `address`, `size`.
pub fn user_quota<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    let address = visit.form.text("address");
    let size = visit.form.text("size");
    let action = Action::new(&["user", "quota"], &[address, size], &[]);
    change(
        visit,
        action,
        "/admin/users",
        "user-quota",
        address,
        users_again,
    )
}

/// `POST /admin/users/forward`: `address`, `to` (addresses, or `off`),
/// `keep` (a ticked box).
pub fn user_forward<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    let address = visit.form.text("address");
    let action = Action::new(&["user", "forward"], &[address], &[visit.form.text("to")])
        .keeping(visit.form.get("keep").is_some());
    change(
        visit,
        action,
        "/admin/users",
        "user-forward",
        address,
        users_again,
    )
}

/// `GET /admin/users/delete?address=`: asks to type the address again.
pub fn user_delete_form<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let address = visit.request.query_param("address").unwrap_or_default();
        let body = view::confirm_delete(&address, &visit.csrf_field());
        section(visit, 200, "/admin/users", None, &body)
    })
}

/// `POST /admin/users/delete`: `address`, and `confirm` holding the same
/// address; else nothing is deleted.
pub fn user_delete<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let address = visit.form.text("address").trim();
        let confirm = visit.form.text("confirm").trim();
        if address.is_empty() || !confirm.eq_ignore_ascii_case(address) {
            let why = "The address typed to confirm does not match: nothing was deleted.";
            let body = view::confirm_delete(address, &visit.csrf_field());
            return section(
                visit,
                400,
                "/admin/users",
                Some(Outcome::Failed(why.into())),
                &body,
            );
        }
        let action = Action::new(&["user", "del"], &[address], &[]);
        change(
            visit,
            action,
            "/admin/users",
            "user-delete",
            address,
            users_again,
        )
        .await
    })
}

// ---- Aliases ----

async fn aliases_page<'a>(visit: &'a Visit<'a>, outcome: Option<Outcome>) -> Response {
    let rows = read(visit, view::alias_rows).await;
    let listed = rows.map(|rows| view::aliases(&rows, &visit.csrf_field()));
    listing(visit, "/admin/aliases", outcome, listed)
}

async fn aliases_again<'a>(visit: &'a Visit<'a>, outcome: Outcome) -> Response {
    aliases_page(visit, Some(outcome)).await
}

/// `GET /admin/aliases`.
pub fn aliases<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(aliases_page(visit, None))
}

/// `POST /admin/aliases/add`: `name`, `targets` (separated by commas or
/// spaces).
pub fn alias_add<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    let name = visit.form.text("name");
    let action = Action::new(&["alias", "add"], &[name], &[visit.form.text("targets")]);
    change(
        visit,
        action,
        "/admin/aliases",
        "alias-add",
        name,
        aliases_again,
    )
}

/// `POST /admin/aliases/delete`: `name`.
pub fn alias_delete<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    let name = visit.form.text("name");
    let action = Action::new(&["alias", "del"], &[name], &[]);
    change(
        visit,
        action,
        "/admin/aliases",
        "alias-delete",
        name,
        aliases_again,
    )
}

// ---- Queue ----

async fn queue_page<'a>(visit: &'a Visit<'a>, outcome: Option<Outcome>) -> Response {
    let now = crate::queue::unix_now();
    let rows = read(visit, move |c| view::queue_rows(c, now)).await;
    let listed =
        rows.map(|(rows, damaged)| view::queue(&rows, damaged.as_deref(), &visit.csrf_field()));
    listing(visit, "/admin/queue", outcome, listed)
}

async fn queue_again<'a>(visit: &'a Visit<'a>, outcome: Outcome) -> Response {
    queue_page(visit, Some(outcome)).await
}

/// `GET /admin/queue`.
pub fn queue<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(queue_page(visit, None))
}

/// `POST /admin/queue/flush`.
pub fn queue_flush<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    let action = Action::new(&["queue", "flush"], &[], &[]);
    change(
        visit,
        action,
        "/admin/queue",
        "queue-flush",
        "",
        queue_again,
    )
}

/// `POST /admin/queue/delete`: `id`.
pub fn queue_delete<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    let id = visit.form.text("id");
    let action = Action::new(&["queue", "delete"], &[id], &[]);
    change(
        visit,
        action,
        "/admin/queue",
        "queue-delete",
        id,
        queue_again,
    )
}

// ---- Log, statistics, certificate ----

/// `GET /admin/log`: the last lines of the log ring, if the server has one.
pub fn log<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let lines = match crate::ops::logring::active_ring() {
            None => None,
            Some(ring) => Some(
                smol::unblock(move || crate::ops::logring::tail_with_notes(ring, view::LOG_LINES))
                    .await,
            ),
        };
        section(visit, 200, "/admin/log", None, &view::log(lines.as_deref()))
    })
}

/// `GET /admin/stats`: the live counters and the chart.
pub fn stats<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let stats = visit.handles.counters.snapshot();
        let days = stats.last_days(crate::ops::stats::now(), view::CHART_DAYS);
        section(
            visit,
            200,
            "/admin/stats",
            None,
            &view::stats(&stats, &days),
        )
    })
}

/// `GET /admin/chart.svg`: messages received per day, the last 30 days.
pub fn chart<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let stats = visit.handles.counters.snapshot();
        let days = stats.last_days(crate::ops::stats::now(), view::CHART_DAYS);
        let title = format!(
            "Messages received per day at {}",
            visit.site.config.hostname
        );
        Response::new(200, SVG, crate::web::chart::messages_per_day(&title, &days))
    })
}

/// `GET /admin/tls`: the certificate the server presents.
pub fn certificate<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let info = read(visit, |c| {
            let in_use = crate::tls::CertPaths::in_use(c, crate::tls::unix_now());
            crate::tls::show(&in_use).map(|info| (info, crate::admin::tls::renewal(c)))
        })
        .await;
        let body = match info {
            Ok((info, acme)) => view::certificate(&info, acme.as_deref()),
            Err(e) => format!(
                "<h1>Certificate</h1>\n<p class=\"message error\">{}</p>\n",
                crate::web::pages::escape_html(&e)
            ),
        };
        section(visit, 200, "/admin/tls", None, &body)
    })
}

// ---- DNS ----

async fn dns_page<'a>(visit: &'a Visit<'a>, check: Option<String>) -> Response {
    let records = read(visit, |c| crate::admin::dns::show(c, None)).await;
    let body = view::dns(&records, check.as_deref(), &visit.csrf_field());
    section(visit, 200, "/admin/dns", None, &body)
}

/// `GET /admin/dns`: the records to publish.
pub fn dns<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(dns_page(visit, None))
}

/// `POST /admin/dns/check`: asks the resolver for each record (as `dns
/// check` does), for at most [`DNS_CHECK_TIMEOUT`].
pub fn dns_check<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let check = Action::new(&["dns", "check"], &[], &[]).run(visit.site.config);
        let result = match within(DNS_CHECK_TIMEOUT, check).await {
            Some(Ok(text)) | Some(Err(text)) => text,
            None => format!(
                "The resolver did not answer within {} seconds; try again later.",
                DNS_CHECK_TIMEOUT.as_secs()
            ),
        };
        dns_page(visit, Some(result)).await
    })
}
