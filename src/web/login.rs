//! Signing in and out, for members (mail address and password, checked
//! as mail logins are: the same throttle counts failures from both) and
//! for the admin (the console's password, from `[web] admin_from` only).
//!
//! A sign-in form carries a token that must match the [`LOGIN_COOKIE`]
//! its page set: a page elsewhere cannot read or set that cookie (a
//! `__Host-`, SameSite=Strict cookie), so it cannot sign a browser in to
//! an account of its choosing (login CSRF). The Origin field cannot serve
//! here: with `Referrer-Policy: no-referrer` browsers send `Origin: null`
//! on every form post, ours included.

use super::form::cookie;
use super::http::Response;
use super::pages::escape_html;
use super::session::{
    delete_cookie, is_token, new_token, same_token, set_cookie, Who, LOGIN_COOKIE, SESSION_COOKIE,
};
use super::visit::{csrf_input, Pending, Visit};
use crate::auth::{AdminLogin, Login};

/// The sign-in form's token: the browser's login cookie if it has one
/// (several tabs share it), else a new one (set with the page).
fn login_token(visit: &Visit) -> (String, bool) {
    match cookie(visit.request, LOGIN_COOKIE).filter(|t| is_token(t)) {
        Some(token) => (token.to_string(), false),
        None => (new_token(), true),
    }
}

/// Whether a posted sign-in form carries its page's token.
fn login_token_ok(visit: &Visit) -> bool {
    let posted = visit.form.text("csrf");
    cookie(visit.request, LOGIN_COOKIE)
        .is_some_and(|expected| is_token(expected) && same_token(posted, expected))
}

/// A sign-in page: `fields` (HTML) in form `id` posted to `action`, with
/// `message` (text) above it.
fn sign_in_page(
    visit: &Visit,
    status: u16,
    id: &str,
    title: &str,
    message: Option<&str>,
    fields: &str,
) -> Response {
    let (token, new) = login_token(visit);
    let message = message
        .map(|m| {
            format!(
                "<p class=\"message error\" id=\"message\">{}</p>\n",
                escape_html(m)
            )
        })
        .unwrap_or_default();
    let action = match id {
        "admin-login" => "/admin/login",
        _ => "/login",
    };
    let body = format!(
        "<h1>{title}</h1>\n{message}<form class=\"card\" id=\"{id}\" method=\"post\" action=\"{action}\">\n{}\n{fields}<button type=\"submit\" id=\"sign-in\">Sign in</button>\n</form>\n",
        csrf_input(&token),
    );
    let mut response = visit.page(status, title, &body);
    if new {
        response
            .fields
            .push(("Set-Cookie", set_cookie(LOGIN_COOKIE, &token)));
    }
    response
}

fn member_page(visit: &Visit, status: u16, message: Option<&str>, address: &str) -> Response {
    let fields = format!(
        "<label for=\"address\">Mail address</label>\n<input id=\"address\" name=\"address\" type=\"email\" autocomplete=\"username\" required value=\"{}\">\n<label for=\"password\">Password</label>\n<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n<p class=\"hint\">The address and password your mail program uses.</p>\n",
        escape_html(address)
    );
    sign_in_page(visit, status, "login", "Sign in", message, &fields)
}

/// `GET /login`.
pub fn member_form<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        if visit.member().is_some() {
            return Response::see_other("/account");
        }
        member_page(visit, 200, None, "")
    })
}

/// `POST /login`: `address`, `password`, `csrf`.
pub fn member_login<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let address = visit.form.text("address").trim();
        if !login_token_ok(visit) {
            let again = "The sign-in form had expired. Please sign in again.";
            return member_page(visit, 403, Some(again), address);
        }
        let password = visit.form.text("password");
        let handles = visit.handles;
        match handles.auth.login(address, password, visit.peer).await {
            Login::Ok(member) => {
                log::info!("web {member} from {}: signed in", visit.peer);
                let stamp = handles.auth.password_stamp(&member).unwrap_or(0);
                start_session(visit, Who::Member(member), stamp, "/account")
            }
            Login::Failed => {
                log::info!("web {}: failed sign-in as {address:?}", visit.peer);
                let wrong = "Wrong mail address or password.";
                member_page(visit, 403, Some(wrong), address)
            }
            Login::Refused => member_page(visit, 429, Some(TOO_MANY), address),
        }
    })
}

const TOO_MANY: &str =
    "Too many failed sign-ins lately, from here or at this account. Please wait a while and try again.";

/// Signs `who` in (with password `stamp`): ends the session the browser
/// had, starts one, and sends the browser on to `next`.
fn start_session(visit: &Visit, who: Who, stamp: u64, next: &str) -> Response {
    let mut sessions = visit.handles.sessions.borrow_mut();
    if let Some(old) = &visit.session {
        sessions.end(&old.token);
    }
    let session = sessions.start(who, stamp, visit.now);
    let mut response = Response::see_other(next);
    response
        .fields
        .push(("Set-Cookie", set_cookie(SESSION_COOKIE, &session.token)));
    response
}

fn admin_page(visit: &Visit, status: u16, message: Option<&str>) -> Response {
    let fields = "<label for=\"password\">Admin password</label>\n<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n<p class=\"hint\">The admin console's password.</p>\n";
    sign_in_page(
        visit,
        status,
        "admin-login",
        "Admin sign-in",
        message,
        fields,
    )
}

/// `GET /admin/login` (from `admin_from` only).
pub fn admin_form<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        if !visit.admin_network() {
            return super::pages::admin_elsewhere();
        }
        if matches!(visit.session.as_ref().map(|s| &s.who), Some(Who::Admin)) {
            return Response::see_other("/admin");
        }
        admin_page(visit, 200, None)
    })
}

/// The admin password's hash (the config's, else the console's file),
/// read off the executor thread.
pub async fn admin_hash(config: &crate::config::Config) -> Option<String> {
    let (from_config, data_dir) = (config.admin_password_hash.clone(), config.data_dir.clone());
    smol::unblock(move || crate::console::stored_admin_hash(from_config, &data_dir)).await
}

/// `POST /admin/login`: `password`, `csrf`.
pub fn admin_login<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        if !visit.admin_network() {
            log::info!(
                "web {}: admin sign-in refused (not in admin_from)",
                visit.peer
            );
            return super::pages::admin_elsewhere();
        }
        if !login_token_ok(visit) {
            let again = "The sign-in form had expired. Please sign in again.";
            return admin_page(visit, 403, Some(again));
        }
        let stored = admin_hash(visit.site.config).await;
        if stored.is_none() {
            let unset = "No admin password is set yet: choose one on the admin console first (postbox console --admin).";
            return admin_page(visit, 403, Some(unset));
        }
        let password = visit.form.text("password");
        let stamp = stored.as_deref().map_or(0, crate::auth::hash_stamp);
        match visit
            .handles
            .auth
            .login_admin(password, stored, visit.peer)
            .await
        {
            AdminLogin::Ok => {
                log::info!("web admin from {}: signed in", visit.peer);
                start_session(visit, Who::Admin, stamp, "/admin")
            }
            AdminLogin::Failed => {
                log::info!("web {}: failed admin sign-in", visit.peer);
                admin_page(visit, 403, Some("Wrong password."))
            }
            AdminLogin::Refused => admin_page(visit, 429, Some(TOO_MANY)),
        }
    })
}

/// `POST /logout`: ends the session, deletes the cookie.
pub fn logout<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let Some(session) = &visit.session else {
            return Response::see_other("/login");
        };
        visit.handles.sessions.borrow_mut().end(&session.token);
        visit.log("signed out");
        let next = match session.who {
            Who::Admin => "/admin/login",
            Who::Member(_) => "/login",
        };
        let mut response = Response::see_other(next);
        response
            .fields
            .push(("Set-Cookie", delete_cookie(SESSION_COOKIE)));
        response
    })
}
