//! The pages: each a handler for [`super::router::ROUTES`]. Pages are
//! rendered on the server, whole, with no script and nothing from
//! elsewhere (the Content-Security-Policy allows nothing else anyway).

use super::http::{Request, Response, CSS, TEXT, XML};
use super::router::Site;
use super::{acme, autoconfig};

/// `&`, `<`, `>`, `"` and `'` as character references, for text and
/// attribute values alike.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where the one stylesheet is served (the Content-Security-Policy
/// allows only our own files, so no style is inline).
pub const STYLESHEET: &str = "/style.css";

/// A whole page around `body` (already HTML), titled `title` (text).
pub fn page(title: &str, body: &str) -> String {
    let title = escape_html(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n<link rel=\"stylesheet\" href=\"{STYLESHEET}\">\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
}

/// A page with the top bar: the server's name, and `bar` (already HTML:
/// who is signed in).
pub fn page_with_bar(hostname: &str, title: &str, bar: &str, body: &str) -> String {
    let host = escape_html(hostname);
    let body = format!(
        "<header>\n<a class=\"brand\" href=\"/\">Postbox</a> <span class=\"host\">{host}</span>\n{bar}</header>\n<main>\n{body}</main>\n"
    );
    page(title, &body)
}

/// `GET /`: which server this is, and where to sign in.
pub fn home(site: &Site, _: &Request) -> Response {
    let host = escape_html(&site.config.hostname);
    let body = format!(
        "<h1>Postbox at {host}</h1>\n<p>This is the mail server {host}.</p>\n<p><a class=\"button\" id=\"members\" href=\"/login\">Members: sign in</a></p>\n"
    );
    let title = format!("Postbox at {}", site.config.hostname);
    Response::html(page_with_bar(&site.config.hostname, &title, "", &body))
}

/// `GET /style.css`.
pub fn stylesheet(_: &Site, _: &Request) -> Response {
    Response::new(200, CSS, include_str!("style.css"))
}

/// A small page with a status, a heading and a sentence (text).
pub fn notice(status: u16, heading: &str, text: &str, link: (&str, &str)) -> Response {
    let body = format!(
        "<main>\n<h1>{}</h1>\n<p>{}</p>\n<p><a href=\"{}\">{}</a></p>\n</main>\n",
        escape_html(heading),
        escape_html(text),
        link.0,
        escape_html(link.1)
    );
    let mut response = Response::html(page(heading, &body));
    response.status = status;
    response
}

/// 403: the admin pages asked for from elsewhere than `admin_from`.
pub fn admin_elsewhere() -> Response {
    notice(
        403,
        "Not from here",
        "The admin pages are open only from the networks in [web] admin_from of the server's configuration.",
        ("/", "Home"),
    )
}

/// 403: a form posted without a session (signed out meanwhile).
pub fn signed_out() -> Response {
    notice(
        403,
        "Signed out",
        "You are not signed in (any more): nothing was changed. Sign in and try again.",
        ("/login", "Sign in"),
    )
}

/// 403: a form posted without its session's token.
pub fn form_expired() -> Response {
    notice(
        403,
        "Form expired",
        "This form does not belong to your session: nothing was changed. Open the page again and resubmit.",
        ("/", "Home"),
    )
}

/// `GET /.well-known/acme-challenge/TOKEN` (RFC 8555 §8.3): the key
/// authorization of a challenge in progress, else 404.
pub fn acme_challenge(site: &Site, request: &Request) -> Response {
    let token = request.path.rsplit('/').next().unwrap_or_default();
    match acme::http01_key_authorization(site, token) {
        Some(answer) => Response::new(200, TEXT, answer),
        None => Response::error(404),
    }
}

/// Thunderbird's autoconfig file, for `?emailaddress=`.
pub fn thunderbird(site: &Site, request: &Request) -> Response {
    let address = request.query_param("emailaddress");
    let file = autoconfig::thunderbird(site.config, address.as_deref());
    Response::new(200, XML, file)
}

/// Outlook's Autodiscover: the POSTed request answered, or 400 saying why
/// not.
pub fn autodiscover(site: &Site, request: &Request) -> Response {
    match autoconfig::autodiscover(site.config, &request.body) {
        Ok(answer) => Response::new(200, XML, answer),
        Err(why) => Response::new(400, TEXT, format!("{why}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let p = page("a<b", "<p>x</p>\n");
        assert!(p.contains("<title>a&lt;b</title>"));
        assert!(!p.contains("<script"));
    }
}
