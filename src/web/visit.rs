//! The async pages' side of a request: the server's handles, the session
//! its cookie names, the posted form, and the checks made before a page
//! runs. A page for members sees only a member's session; one for the
//! admin only the admin's, and only from `[web] admin_from`; and a form
//! posted to either without its session's CSRF token is refused (403)
//! before the page runs, so it changes nothing.
//!
//! For a page of the admin's, the table line is all it takes:
//! `page("POST", "/admin/x", Access::Admin, x)`; in `x`, every form's
//! hidden field is [`Visit::csrf_field`], the posted fields are in
//! [`Visit::form`], and what it changes is logged with [`Visit::log`]
//! (`web admin: ...`). Blocking work (the admin verbs) goes through
//! `smol::unblock`; password hashing through
//! [`crate::auth::Authenticator::hashing`].

use super::form::{cookie, Form};
use super::http::{Request, Response};
use super::pages;
use super::router::{self, Access, Page, Routed, Site};
use super::session::{same_token, Session, Sessions, Who, SESSION_COOKIE};
use crate::auth::Authenticator;
use crate::ops::stats::Counters;
use crate::queue::Queue;
use crate::route::Router;
use crate::store::Mailstore;
use crate::wire::address::Address;
use std::cell::RefCell;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

/// What an async page returns.
pub type Pending<'a> = Pin<Box<dyn Future<Output = Response> + 'a>>;

/// The server's handles the pages use, and the sessions.
pub struct Handles {
    pub auth: Rc<Authenticator>,
    pub router: Rc<Router>,
    pub store: Rc<Mailstore>,
    pub queue: Rc<Queue>,
    pub counters: Rc<Counters>,
    pub sessions: RefCell<Sessions>,
}

/// One request to an async page.
pub struct Visit<'a> {
    pub site: &'a Site<'a>,
    pub handles: &'a Handles,
    pub request: &'a Request,
    /// The client's address (IPv4 as IPv4, even on an IPv6 socket).
    pub peer: IpAddr,
    pub now: Instant,
    /// The signed-in session, if the cookie names a live one.
    pub session: Option<Session>,
    /// The posted form (empty for GET).
    pub form: Form,
}

impl Visit<'_> {
    /// The signed-in member, on a member's page.
    pub fn member(&self) -> Option<&Address> {
        match &self.session.as_ref()?.who {
            Who::Member(address) => Some(address),
            Who::Admin => None,
        }
    }

    /// The hidden field every form of a signed-in page carries.
    pub fn csrf_field(&self) -> String {
        let token = self.session.as_ref().map_or("", |s| s.csrf.as_str());
        csrf_input(token)
    }

    /// Who is signed in, as the log names them, with the client's address.
    pub fn who(&self) -> String {
        match &self.session {
            Some(session) => format!("{} from {}", session.who.name(), self.peer),
            None => format!("{}", self.peer),
        }
    }

    /// Logs something a signed-in user did: `web alice@example.org from
    /// 192.0.2.7: password changed`.
    pub fn log(&self, what: &str) {
        log::info!("web {}: {what}", self.who());
    }

    /// Whether the client is on a network the admin pages are open to.
    pub fn admin_network(&self) -> bool {
        admin_network(self.site, self.peer)
    }

    /// A whole page with the top bar (who is signed in, and a sign-out
    /// button) around `body`.
    pub fn page(&self, status: u16, title: &str, body: &str) -> Response {
        let bar = match &self.session {
            Some(session) => format!(
                "<form class=\"signout\" id=\"logout\" method=\"post\" action=\"/logout\">{}<span>{}</span> <button type=\"submit\" id=\"sign-out\">Sign out</button></form>\n",
                self.csrf_field(),
                pages::escape_html(session.who.name()),
            ),
            None => String::new(),
        };
        let mut response = Response::html(pages::page_with_bar(
            &self.site.config.hostname,
            title,
            &bar,
            body,
        ));
        response.status = status;
        response
    }
}

/// `<input type="hidden" name="csrf" value="TOKEN">`.
pub fn csrf_input(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{token}\">")
}

fn admin_network(site: &Site, peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    site.config
        .web
        .admin_from
        .iter()
        .any(|net| net.contains(peer))
}

/// The response to `request` from `peer`: plain pages at once, async
/// pages after their checks, with `Cache-Control: no-store`.
pub async fn respond(
    handles: &Handles,
    site: &Site<'_>,
    peer: IpAddr,
    request: &Request,
) -> Response {
    let (access, page) = match router::dispatch(site, request) {
        Routed::Answer(response) => return response,
        Routed::Page(access, page) => (access, page),
    };
    let mut response = visit(handles, site, peer, request, access, page).await;
    response.fields.push(("Cache-Control", "no-store".into()));
    response
}

async fn visit(
    handles: &Handles,
    site: &Site<'_>,
    peer: IpAddr,
    request: &Request,
    access: Access,
    page: Page,
) -> Response {
    let now = Instant::now();
    let peer = peer.to_canonical();
    let mut session = cookie(request, SESSION_COOKIE)
        .and_then(|token| handles.sessions.borrow_mut().find(token, now));
    if let Some(Session {
        who: Who::Member(member),
        stamp,
        token,
        ..
    }) = &session
    {
        // A member removed, or whose password changed elsewhere (the
        // command line, the console, the admin's pages), is signed out.
        handles.router.refresh().await;
        if handles.auth.password_stamp(member) != Some(*stamp) {
            log::info!("web {member} from {peer}: signed out (password changed or user removed)");
            handles.sessions.borrow_mut().end(token);
            session = None;
        }
    }
    if let Some(Session {
        who: Who::Admin,
        stamp,
        token,
        ..
    }) = &session
    {
        // The admin password changed on the console (or in the config
        // with a restart): whoever signed in with the old one is out.
        let stored = super::login::admin_hash(site.config).await;
        if stored.as_deref().map(crate::auth::hash_stamp) != Some(*stamp) {
            log::info!("web admin from {peer}: signed out (admin password changed)");
            handles.sessions.borrow_mut().end(token);
            session = None;
        }
    }
    let form = match request.method.as_str() {
        "POST" => match Form::parse(&request.body) {
            Some(form) => form,
            None => return Response::error(400),
        },
        _ => Form::default(),
    };
    let posted = request.method == "POST";
    if let Err(refusal) = admit(
        access,
        session.as_ref(),
        posted,
        &form,
        admin_network(site, peer),
    ) {
        return refusal;
    }
    let visit = Visit {
        site,
        handles,
        request,
        peer,
        now,
        session,
        form,
    };
    page(&visit).await
}

/// Whether a request may reach a page of `access`: the session must be
/// of the right kind (else a GET is sent to sign in, a POST refused), an
/// admin's must come from `admin_from`, and a form posted to a signed-in
/// page must carry the session's token.
pub fn admit(
    access: Access,
    session: Option<&Session>,
    posted: bool,
    form: &Form,
    admin_network: bool,
) -> Result<(), Response> {
    let fits = match (access, session.map(|s| &s.who)) {
        (Access::Anyone, _) => return Ok(()),
        (Access::Admin, _) if !admin_network => return Err(pages::admin_elsewhere()),
        (Access::Member, Some(Who::Member(_))) => true,
        (Access::Admin, Some(Who::Admin)) => true,
        (Access::Signed, Some(_)) => true,
        _ => false,
    };
    if !fits {
        return Err(match (posted, access) {
            (true, _) => pages::signed_out(),
            (false, Access::Admin) => Response::see_other("/admin/login"),
            (false, _) => Response::see_other("/login"),
        });
    }
    let token_ok = match (posted, session) {
        (false, _) => true,
        (true, Some(session)) => same_token(form.text("csrf"), &session.csrf),
        (true, None) => false,
    };
    match token_ok {
        true => Ok(()),
        false => Err(pages::form_expired()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Session {
        let mut sessions = Sessions::default();
        let alice = Address::new("alice", "example.org").unwrap();
        sessions.start(Who::Member(alice), 0, Instant::now())
    }

    fn admin() -> Session {
        Sessions::default().start(Who::Admin, 0, Instant::now())
    }

    fn form_with(token: &str) -> Form {
        Form::parse(format!("csrf={token}&x=1").as_bytes()).unwrap()
    }

    fn status(result: Result<(), Response>) -> u16 {
        match result {
            Ok(()) => 200,
            Err(response) => response.status,
        }
    }

    fn location(result: Result<(), Response>) -> String {
        let response = result.unwrap_err();
        assert_eq!(response.status, 303);
        response
            .fields
            .iter()
            .find(|(n, _)| *n == "Location")
            .unwrap()
            .1
            .clone()
    }

    #[test]
    fn pages_see_only_their_kind_of_session() {
        let none = Form::default();
        let (m, a) = (member(), admin());
        assert_eq!(status(admit(Access::Anyone, None, true, &none, false)), 200);
        assert_eq!(
            status(admit(Access::Member, Some(&m), false, &none, false)),
            200
        );
        assert_eq!(
            location(admit(Access::Member, None, false, &none, true)),
            "/login"
        );
        assert_eq!(
            location(admit(Access::Member, Some(&a), false, &none, true)),
            "/login"
        );
        assert_eq!(
            status(admit(Access::Admin, Some(&a), false, &none, true)),
            200
        );
        assert_eq!(
            location(admit(Access::Admin, Some(&m), false, &none, true)),
            "/admin/login"
        );
        assert_eq!(
            status(admit(Access::Signed, Some(&m), false, &none, false)),
            200
        );
        assert_eq!(
            status(admit(Access::Signed, Some(&a), false, &none, false)),
            200
        );
        // Posted without a session: refused, not sent elsewhere.
        assert_eq!(
            status(admit(Access::Member, None, true, &form_with(&m.csrf), true)),
            403
        );
    }

    #[test]
    fn admin_pages_only_from_admin_networks() {
        let a = admin();
        let result = admit(Access::Admin, Some(&a), false, &Form::default(), false);
        let response = result.unwrap_err();
        assert_eq!(response.status, 403);
        assert!(String::from_utf8_lossy(&response.body).contains("admin_from"));
        assert_eq!(
            status(admit(Access::Admin, None, false, &Form::default(), false)),
            403
        );
    }

    #[test]
    fn posted_forms_need_their_sessions_token() {
        let (m, a) = (member(), admin());
        assert_eq!(
            status(admit(
                Access::Member,
                Some(&m),
                true,
                &form_with(&m.csrf),
                false
            )),
            200
        );
        assert_eq!(
            status(admit(
                Access::Admin,
                Some(&a),
                true,
                &form_with(&a.csrf),
                true
            )),
            200
        );
        assert_eq!(
            status(admit(
                Access::Member,
                Some(&m),
                true,
                &Form::default(),
                false
            )),
            403
        );
        assert_eq!(
            status(admit(Access::Member, Some(&m), true, &form_with(""), false)),
            403
        );
        // Another session's token is no good.
        assert_eq!(
            status(admit(
                Access::Member,
                Some(&m),
                true,
                &form_with(&a.csrf),
                false
            )),
            403
        );
        assert_eq!(
            status(admit(
                Access::Signed,
                Some(&m),
                true,
                &form_with(&m.token),
                false
            )),
            403
        );
        let cut = &m.csrf[..m.csrf.len() - 1];
        assert_eq!(
            status(admit(
                Access::Member,
                Some(&m),
                true,
                &form_with(cut),
                false
            )),
            403
        );
    }

    #[test]
    fn admin_networks_match_mapped_addresses() {
        let config = crate::config::Config::from_toml(
            "hostname = \"mx.test\"\n[web]\nadmin_from = [\"192.0.2.0/24\"]\n",
        )
        .unwrap();
        let answers = crate::acme::Answers::default();
        let site = Site {
            config: &config,
            https: true,
            https_port: None,
            acme: &answers,
        };
        assert!(admin_network(&site, "192.0.2.9".parse().unwrap()));
        assert!(admin_network(&site, "::ffff:192.0.2.9".parse().unwrap()));
        assert!(!admin_network(&site, "198.51.100.1".parse().unwrap()));
    }
}
