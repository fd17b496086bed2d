//! A browser for the web pages: curl with its own cookie jar, trusting
//! the server's own certificate, on one server's HTTPS listener.

use super::Server;
use std::path::PathBuf;
use std::process::Command;

/// A field's value in a response head (names case-insensitive); the
/// head may be followed by its body.
pub fn field<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    fields(response, name).into_iter().next()
}

/// Every value of a field in a response head, in order.
pub fn fields<'a>(response: &'a str, name: &str) -> Vec<&'a str> {
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// A response: status, head (lines as sent) and body.
pub struct Page {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Page {
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.head, name)
    }

    pub fn fields(&self, name: &str) -> Vec<&str> {
        fields(&self.head, name)
    }

    /// The value of the first `name="csrf"` field in the page.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in:\n{}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// curl with its own cookie jar, from `source` (a loopback address).
pub struct Browser {
    pub port: u16,
    pub cacert: PathBuf,
    pub jar: PathBuf,
    pub source: &'static str,
    _dir: tempfile::TempDir,
}

impl Browser {
    pub fn new(server: &Server) -> Browser {
        Browser::from(server, "127.0.0.1")
    }

    pub fn from(server: &Server, source: &'static str) -> Browser {
        let dir = tempfile::tempdir().unwrap();
        Browser {
            port: server.web.expect("the web listener is on").port(),
            cacert: server.data.join("tls/cert.pem"),
            jar: dir.path().join("cookies"),
            source,
            _dir: dir,
        }
    }

    fn request(&self, path: &str, extra: &[String]) -> Page {
        let out = Command::new("curl")
            .args(["-sS", "-i", "--max-time", "60", "--interface", self.source])
            .arg("--cacert")
            .arg(&self.cacert)
            .arg("-b")
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(["--resolve", &format!("mx.test:{}:127.0.0.1", self.port)])
            .args(extra)
            .arg(format!("https://mx.test:{}{path}", self.port))
            .output()
            .expect("curl (scripts/install-test-deps installs it)");
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        Page {
            status,
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    pub fn get(&self, path: &str) -> Page {
        self.request(path, &[])
    }

    /// Posts `fields` (URL-encoded by curl) as a form.
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut args = Vec::new();
        for (name, value) in fields {
            args.push("--data-urlencode".to_string());
            args.push(format!("{name}={value}"));
        }
        if fields.is_empty() {
            args.extend(["--data".to_string(), String::new()]);
        }
        self.request(path, &args)
    }

    /// Signs in as a member; the answer (a 303 to the account page when
    /// signed in).
    pub fn sign_in(&self, address: &str, password: &str) -> Page {
        let token = self.get("/login").csrf();
        self.post(
            "/login",
            &[
                ("csrf", &token),
                ("address", address),
                ("password", password),
            ],
        )
    }
}
