//! The pages: each a handler for [`super::router::ROUTES`]. Pages are
//! rendered on the server, whole, with no script and nothing from
//! elsewhere (the Content-Security-Policy allows nothing else anyway).

use super::http::{Request, Response, TEXT, XML};
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

/// A whole page around `body` (already HTML), titled `title` (text).
pub fn page(title: &str, body: &str) -> String {
    let title = escape_html(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
}

/// `GET /`: which server this is.
pub fn home(site: &Site, _: &Request) -> Response {
    let host = escape_html(&site.config.hostname);
    let body = format!("<h1>Postbox at {host}</h1>\n<p>This is the mail server {host}.</p>\n");
    Response::html(page(&format!("Postbox at {}", site.config.hostname), &body))
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
