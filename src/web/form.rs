//! What a browser sends besides the request line: form bodies
//! (`application/x-www-form-urlencoded`) and the `Cookie` field. Pure
//! functions over bytes, bounded in fields; the body is already bounded by
//! the request reader.

use super::http::{percent_decode, Request};
use crate::limits::{MAX_COOKIES, MAX_FORM_FIELDS};

/// A submitted form's fields, decoded, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// `a=1&b=x+y%21`: `None` if a name or value does not decode to UTF-8,
    /// or there are more than [`MAX_FORM_FIELDS`] fields.
    pub fn parse(body: &[u8]) -> Option<Form> {
        let text = std::str::from_utf8(body).ok()?;
        let mut fields = Vec::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            if fields.len() == MAX_FORM_FIELDS {
                return None;
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            fields.push((percent_decode(name)?, percent_decode(value)?));
        }
        Some(Form { fields })
    }

    /// The first field named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// How many fields it has.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The field named `name`, or "" when it is missing (an unticked box,
    /// an empty text).
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}

/// The pairs of a `Cookie` field (`a=1; b=2`, RFC 6265 §5.4), values as
/// sent (ours never need decoding), at most [`MAX_COOKIES`].
pub fn cookies(value: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    let text = std::str::from_utf8(value).unwrap_or("");
    text.split(';')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim(), value))
        })
        .take(MAX_COOKIES)
}

/// The value of cookie `name` in the request's `Cookie` fields, if any.
pub fn cookie<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .flat_map(|(_, v)| cookies(v))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_names_and_values() {
        let form =
            Form::parse(b"address=alice%40example.org&password=a+b%26c%3D&empty=&bare&csrf=x")
                .unwrap();
        assert_eq!(form.get("address"), Some("alice@example.org"));
        assert_eq!(form.get("password"), Some("a b&c="));
        assert_eq!(form.get("empty"), Some(""));
        assert_eq!(form.get("bare"), Some(""));
        assert_eq!(form.get("missing"), None);
        assert_eq!(form.text("missing"), "");
        assert_eq!(Form::parse(b"").unwrap(), Form::default());
        assert_eq!(Form::parse(b"&&a=1&").unwrap().get("a"), Some("1"));
        // Multi-line text arrives with CRLF encoded.
        assert_eq!(Form::parse(b"t=a%0D%0Ab").unwrap().get("t"), Some("a\r\nb"));
    }

    #[test]
    fn bad_forms_are_refused() {
        for bad in [&b"a=%"[..], b"a=%zz", b"a=%ff", b"\xff=1", b"%C3=1"] {
            assert_eq!(Form::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let many = vec!["x=1"; MAX_FORM_FIELDS + 1].join("&");
        assert_eq!(Form::parse(many.as_bytes()), None);
        let enough = vec!["x=1"; MAX_FORM_FIELDS].join("&");
        assert!(Form::parse(enough.as_bytes()).is_some());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let list: Vec<_> = cookies(b"a=1; __Host-b=\"two\";c; d = 4 ;e=").collect();
        assert_eq!(
            list,
            vec![("a", "1"), ("__Host-b", "two"), ("d", "4"), ("e", "")]
        );
        assert_eq!(cookies(b"\xff=1").count(), 0);
        let many = vec!["x=1"; MAX_COOKIES + 5].join("; ");
        assert_eq!(cookies(many.as_bytes()).count(), MAX_COOKIES);
        let mut reader = super::super::http::RequestReader::new(std::time::Instant::now());
        reader.receive(b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2; a=3\r\n\r\n");
        let super::super::http::Parsed::Request(request) = reader.poll() else {
            panic!()
        };
        assert_eq!(cookie(&request, "b"), Some("2"));
        assert_eq!(cookie(&request, "a"), Some("1"));
        assert_eq!(cookie(&request, "c"), None);
    }
}
