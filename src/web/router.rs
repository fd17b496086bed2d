//! Which handler answers a request: a table of method and path, each
//! route saying whether plain HTTP may have it too (everything else there
//! is sent to HTTPS). A path without a route is 404; a route asked with
//! another method, 405 with `Allow`. HEAD is answered as GET, without
//! the body.
//!
//! A page is one function and one line in [`ROUTES`]: a plain page is
//! `fn(&Site, &Request) -> Response`; a page that uses the server's
//! handles or a session is async, `fn(&Visit) -> Pending`, and its line
//! says who may see it ([`Access`]); [`super::visit`] checks that, and the
//! CSRF token of every form posted to a signed-in page, before it runs.

use super::admin::pages as admin;
use super::http::{Request, Response};
use super::visit::{Pending, Visit};
use super::{account, book, login, pages};
use crate::config::Config;

/// What a handler knows of where it runs.
pub struct Site<'a> {
    pub config: &'a Config,
    /// The request came over HTTPS.
    pub https: bool,
    /// The HTTPS listener's port, for redirects (`None`: off, so the
    /// default port is named).
    pub https_port: Option<u16>,
    /// The answers to ACME HTTP-01 challenges in progress.
    pub acme: &'a crate::acme::Answers,
}

/// An async page: runs with what [`Visit`] holds.
pub type Page = for<'a> fn(&'a Visit<'a>) -> Pending<'a>;

/// Who may see a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everyone (sign-in forms check their own token).
    Anyone,
    /// A signed-in member.
    Member,
    /// The signed-in admin, from a network in `[web] admin_from`.
    Admin,
    /// Anyone signed in (signing out).
    Signed,
}

#[derive(Clone, Copy)]
pub enum Handler {
    /// Needs only the config: answered at once.
    Plain(fn(&Site, &Request) -> Response),
    /// Needs the handles or a session.
    Page(Access, Page),
}

/// Which paths a route answers.
#[derive(Debug, Clone, Copy)]
pub enum Path {
    Exact(&'static str),
    /// Every path below this one (which ends in `/`), not itself.
    Below(&'static str),
}

impl Path {
    fn matches(self, path: &str) -> bool {
        match self {
            Path::Exact(p) => p == path,
            Path::Below(prefix) => path.len() > prefix.len() && path.starts_with(prefix),
        }
    }
}

pub struct Route {
    pub method: &'static str,
    pub path: Path,
    /// Answered on plain HTTP too, not redirected.
    pub plain_http: bool,
    pub handler: Handler,
}

const fn route(
    method: &'static str,
    path: Path,
    plain_http: bool,
    handler: fn(&Site, &Request) -> Response,
) -> Route {
    Route {
        method,
        path,
        plain_http,
        handler: Handler::Plain(handler),
    }
}

/// An async page, on HTTPS only.
const fn page(method: &'static str, path: &'static str, access: Access, page: Page) -> Route {
    Route {
        method,
        path: Path::Exact(path),
        plain_http: false,
        handler: Handler::Page(access, page),
    }
}

/// An admin page (`Access::Admin`).
const fn admin_page(method: &'static str, path: &'static str, handler: Page) -> Route {
    page(method, path, Access::Admin, handler)
}

/// A member's page (`Access::Member`).
const fn member_page(method: &'static str, path: &'static str, handler: Page) -> Route {
    page(method, path, Access::Member, handler)
}

/// Every page.
pub const ROUTES: &[Route] = &[
    route("GET", Path::Exact("/"), false, pages::home),
    route(
        "GET",
        Path::Exact(pages::STYLESHEET),
        false,
        pages::stylesheet,
    ),
    page("GET", "/login", Access::Anyone, login::member_form),
    page("POST", "/login", Access::Anyone, login::member_login),
    page("GET", "/admin/login", Access::Anyone, login::admin_form),
    page("POST", "/admin/login", Access::Anyone, login::admin_login),
    page("POST", "/logout", Access::Signed, login::logout),
    admin_page("GET", "/admin", admin::status),
    admin_page("GET", "/admin/users", admin::users),
    admin_page("POST", "/admin/users/add", admin::user_add),
    admin_page("POST", "/admin/users/passwd", admin::user_passwd),
    admin_page("POST", "/admin/users/quota", admin::user_quota),
    admin_page("POST", "/admin/users/forward", admin::user_forward),
    admin_page("GET", "/admin/users/delete", admin::user_delete_form),
    admin_page("POST", "/admin/users/delete", admin::user_delete),
    admin_page("GET", "/admin/aliases", admin::aliases),
    admin_page("POST", "/admin/aliases/add", admin::alias_add),
    admin_page("POST", "/admin/aliases/delete", admin::alias_delete),
    admin_page("GET", "/admin/queue", admin::queue),
    admin_page("POST", "/admin/queue/flush", admin::queue_flush),
    admin_page("POST", "/admin/queue/delete", admin::queue_delete),
    admin_page("GET", "/admin/log", admin::log),
    admin_page("GET", "/admin/stats", admin::stats),
    admin_page("GET", super::admin::CHART_PATH, admin::chart),
    admin_page("GET", "/admin/tls", admin::certificate),
    admin_page("GET", "/admin/dns", admin::dns),
    admin_page("POST", "/admin/dns/check", admin::dns_check),
    member_page("GET", "/account", account::overview),
    member_page("POST", "/account/password", account::password),
    member_page("POST", "/account/forward", account::forward),
    member_page("POST", "/account/away", account::away),
    member_page("GET", account::PROFILE_PATH, account::apple_profile),
    member_page("POST", "/account/book", book::change),
    member_page("GET", book::EXPORT_PATH, book::export),
    route(
        "GET",
        Path::Below("/.well-known/acme-challenge/"),
        true,
        pages::acme_challenge,
    ),
    route(
        "GET",
        Path::Exact("/.well-known/autoconfig/mail/config-v1.1.xml"),
        true,
        pages::thunderbird,
    ),
    route(
        "GET",
        Path::Exact("/mail/config-v1.1.xml"),
        true,
        pages::thunderbird,
    ),
    route(
        "POST",
        Path::Exact("/autodiscover/autodiscover.xml"),
        true,
        pages::autodiscover,
    ),
    route(
        "POST",
        Path::Exact("/Autodiscover/Autodiscover.xml"),
        true,
        pages::autodiscover,
    ),
];

/// What [`ROUTES`] make of a request, before anything async.
pub enum Routed {
    /// The answer (a plain page, a redirect to HTTPS, 404, 405).
    Answer(Response),
    /// An async page, for [`super::visit::respond`].
    Page(Access, Page),
}

/// Which route answers `request`, by [`ROUTES`]; plain pages answered.
pub fn dispatch(site: &Site, request: &Request) -> Routed {
    route_by(ROUTES, site, request)
}

fn route_by(routes: &[Route], site: &Site, request: &Request) -> Routed {
    let matching = || routes.iter().filter(|r| r.path.matches(&request.path));
    if !site.https && !matching().any(|r| r.plain_http) {
        return Routed::Answer(Response::moved_permanently(https_location(site, request)));
    }
    let method = match request.method.as_str() {
        "HEAD" => "GET",
        other => other,
    };
    if let Some(route) = matching().find(|r| r.method == method) {
        return match route.handler {
            Handler::Plain(handler) => Routed::Answer(handler(site, request)),
            Handler::Page(access, page) => Routed::Page(access, page),
        };
    }
    let mut allowed: Vec<&str> = matching().map(|r| r.method).collect();
    if allowed.is_empty() {
        return Routed::Answer(Response::error(404));
    }
    if allowed.contains(&"GET") {
        allowed.push("HEAD");
    }
    allowed.sort_unstable();
    allowed.dedup();
    let mut response = Response::error(405);
    response.fields.push(("Allow", allowed.join(", ")));
    Routed::Answer(response)
}

/// `https://HOST[:PORT]/path?query` for the same request: the host the
/// client named (else ours), the port when not 443.
fn https_location(site: &Site, request: &Request) -> String {
    let host = request.host.as_deref().unwrap_or(&site.config.hostname);
    let port = match site.https_port {
        Some(443) | None => String::new(),
        Some(port) => format!(":{port}"),
    };
    let query = match &request.query {
        Some(q) => format!("?{q}"),
        None => String::new(),
    };
    format!("https://{host}{port}{}{query}", request.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::http::{Parsed, RequestReader};
    use std::time::Instant;

    fn ask(https: bool, wire: &str) -> Response {
        let config = Config::from_toml("hostname = \"mx.example.org\"\n").unwrap();
        let answers = crate::acme::Answers::default();
        answers.publish("tok-en_2", "tok-en_2.thumbprint");
        let site = Site {
            config: &config,
            https,
            https_port: Some(2443),
            acme: &answers,
        };
        let mut reader = RequestReader::new(Instant::now());
        reader.receive(wire.as_bytes());
        let Parsed::Request(request) = reader.poll() else {
            panic!("{wire}")
        };
        match dispatch(&site, &request) {
            Routed::Answer(response) => response,
            Routed::Page(..) => Response::new(299, "test/page", request.path.clone()),
        }
    }

    fn field<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response
            .fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn pages_by_method_and_path() {
        let home = ask(true, "GET / HTTP/1.1\r\nHost: mx.example.org\r\n\r\n");
        assert_eq!(home.status, 200);
        assert!(String::from_utf8_lossy(&home.body).contains("mx.example.org"));
        assert_eq!(ask(true, "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").status, 200);
        assert_eq!(
            ask(true, "GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n").status,
            404
        );
        let wrong = ask(true, "DELETE / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(wrong.status, 405);
        assert_eq!(field(&wrong, "Allow"), Some("GET, HEAD"));
        let post_only = ask(
            true,
            "GET /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(field(&post_only, "Allow"), Some("POST"));
        // The challenge directory itself is no challenge.
        let dir = ask(
            true,
            "GET /.well-known/acme-challenge/ HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(dir.status, 404);
    }

    #[test]
    fn async_pages_are_on_https_only() {
        for route in ROUTES {
            if let Handler::Page(access, _) = route.handler {
                assert!(!route.plain_http, "{:?}", route.path);
                let Path::Exact(path) = route.path else {
                    panic!("{:?}", route.path)
                };
                let wire = format!("{} {path} HTTP/1.1\r\nHost: h\r\n\r\n", route.method);
                assert_eq!(ask(false, &wire).status, 301, "{path}");
                assert_eq!(ask(true, &wire).status, 299, "{path}");
                // Only the sign-in forms are open to anyone.
                if access == Access::Anyone {
                    assert!(path.ends_with("/login"), "{path}");
                }
            }
        }
    }

    #[test]
    fn plain_http_redirects_except_challenges_and_mail_settings() {
        let moved = ask(
            false,
            "GET /some/page?x=1 HTTP/1.1\r\nHost: mx.example.org:2080\r\n\r\n",
        );
        assert_eq!(moved.status, 301);
        assert_eq!(
            field(&moved, "Location"),
            Some("https://mx.example.org:2443/some/page?x=1")
        );
        let no_host = ask(false, "POST / HTTP/1.0\r\n\r\n");
        assert_eq!(
            field(&no_host, "Location"),
            Some("https://mx.example.org:2443/")
        );
        let challenge = ask(
            false,
            "GET /.well-known/acme-challenge/tok-en_1 HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(challenge.status, 404);
        let pending = ask(
            false,
            "GET /.well-known/acme-challenge/tok-en_2 HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(pending.status, 200);
        assert_eq!(pending.body, b"tok-en_2.thumbprint");
        for path in [
            "/mail/config-v1.1.xml",
            "/.well-known/autoconfig/mail/config-v1.1.xml",
        ] {
            let wire = format!("GET {path}?emailaddress=a%40localhost HTTP/1.1\r\nHost: h\r\n\r\n");
            let config = ask(false, &wire);
            assert_eq!(config.status, 200, "{path}");
            assert_eq!(config.content_type, crate::web::http::XML);
            assert!(String::from_utf8_lossy(&config.body).contains("<clientConfig"));
        }
    }

    #[test]
    fn autodiscover_answers_outlook_on_either_spelling() {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>alice@localhost</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
        for path in [
            "/autodiscover/autodiscover.xml",
            "/Autodiscover/Autodiscover.xml",
        ] {
            let wire = format!(
                "POST {path} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let answer = ask(true, &wire);
            assert_eq!(answer.status, 200, "{path}");
            assert!(String::from_utf8_lossy(&answer.body).contains("POP3"));
        }
        let wire = "POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz";
        assert_eq!(ask(true, wire).status, 400);
    }
}
