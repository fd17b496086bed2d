//! Certificates by ACME against Let's Encrypt's test server, pebble
//! (Debian's package; scripts/install-test-deps): one pebble per test on
//! ports of its own, validating challenges at the server's listeners
//! through the tests' DNS responder. What the listeners then present is
//! checked by openssl s_client and curl trusting only pebble's root.

mod common;

use common::dns_responder::{self, Zone};
use common::*;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A port free right now (pebble's and the web listeners' must be known
/// before either starts).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Pebble {
    child: Child,
    dir: tempfile::TempDir,
    /// The directory URL.
    directory: String,
    management: u16,
    log: Arc<Mutex<String>>,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pebble {
    /// Pebble on 127.0.0.1, validating HTTP-01 at `http_port` and
    /// TLS-ALPN-01 at `tls_port` of the addresses `dns` gives. Its own
    /// HTTPS certificate is for acme.test, from a CA made here (ca.pem).
    fn start(dns: SocketAddr, http_port: u16, tls_port: u16) -> Pebble {
        assert!(
            Command::new("pebble").arg("-h").output().is_ok(),
            "pebble is missing: scripts/install-test-deps installs it"
        );
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "test CA for pebble");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(vec!["acme.test".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "acme.test");
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(path("cert.pem"), cert.pem()).unwrap();
        std::fs::write(path("key.pem"), key.serialize_pem()).unwrap();
        let (acme, management) = (free_port(), free_port());
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": path("cert.pem"),
            "privateKey": path("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(path("pebble.json"), config.to_string()).unwrap();
        let mut child = Command::new("pebble")
            .arg("-config")
            .arg(path("pebble.json"))
            .arg("-dnsserver")
            .arg(dns.to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let pebble = Pebble {
            child,
            dir,
            directory: format!("https://acme.test:{acme}/dir"),
            management,
            log,
        };
        let ready = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
        common::wait_until("pebble to listen", Duration::from_secs(20), || {
            ready(acme) && ready(management)
        });
        pebble
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The root pebble issues under, from its management interface.
    fn root(&self) -> PathBuf {
        let path = self.dir.path().join("root.pem");
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(self.ca())
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .arg("-o")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// A server with alice, an [acme] section for pebble, and a zone naming
/// mx.test and mail.test at `address`.
struct World {
    pebble: Pebble,
    server: Server,
    /// The server's flags beyond the common ones.
    flags: Vec<String>,
    _zone: Arc<Mutex<Zone>>,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

fn world(http: bool, address: Ipv4Addr) -> World {
    let (dns, zone) = dns_responder::start();
    {
        let mut zone = zone.lock().unwrap();
        zone.add_a("acme.test", Ipv4Addr::LOCALHOST);
        zone.add_a("mx.test", address);
        zone.add_a("mail.test", address);
    }
    let (https_port, http_port) = (free_port(), free_port());
    let pebble = Pebble::start(dns, http_port, https_port);
    let toml = format!(
        "[acme]\nenabled = true\ndirectory = \"{}\"\ncontact = \"postmaster@mx.test\"\nca = {:?}\nnames = [\"mail.test\"]\n",
        pebble.directory,
        pebble.ca().to_str().unwrap()
    );
    let (dir, data, config) = prepare("localhost", &["alice"], &toml);
    let web = format!("127.0.0.1:{https_port}");
    let plain = match http {
        true => format!("127.0.0.1:{http_port}"),
        false => "off".to_string(),
    };
    let resolver = dns.to_string();
    let flags = vec![
        "--web".to_string(),
        web,
        "--http".to_string(),
        plain,
        "--dns-resolver".to_string(),
        resolver,
    ];
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = start(&data, &config, "mx.test", &args);
    World {
        pebble,
        server,
        flags,
        _zone: zone,
        config,
        _dir: dir,
    }
}

impl World {
    /// Stops the server and starts it again on the same data.
    fn restart(&mut self) {
        self.server.terminate();
        let args: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.server = start(&self.server.data.clone(), &self.config, "mx.test", &args);
    }

    fn cli(&self, args: &[&str]) -> (bool, String) {
        let mut all = args.to_vec();
        let data = self.server.data.to_str().unwrap();
        all.extend(["--config", self.config.to_str().unwrap(), "--data", data]);
        let out = postbox(&all, "");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn tls_show(&self) -> String {
        let (ok, text) = self.cli(&["tls", "show"]);
        assert!(ok, "{text}");
        text
    }

    /// Waits for `tls show` to say `needle`; what it said.
    fn wait_show(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let shown = self.tls_show();
            if shown.contains(needle) {
                return shown;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "tls show never said {needle:?}:\n{shown}\nserver log:\n{}\npebble log:\n{}",
                self.server.log(),
                self.pebble.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn field<'a>(shown: &'a str, name: &str) -> &'a str {
    shown
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in\n{shown}"))
        .trim()
}

/// What openssl s_client, trusting only `ca`, makes of the certificate at
/// `addr` for `name` (after `starttls` when given): verified, and the
/// SHA-256 of the certificate presented as `tls show` writes it.
fn presented(addr: SocketAddr, starttls: Option<&str>, name: &str, ca: &Path) -> (bool, String) {
    let s_client = |verify: bool| {
        let mut command = Command::new("openssl");
        command.args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            name,
        ]);
        if verify {
            command
                .args(["-verify_hostname", name, "-verify_return_error", "-CAfile"])
                .arg(ca);
        }
        if let Some(protocol) = starttls {
            command.args(["-starttls", protocol]);
        }
        let out = command.stdin(Stdio::null()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success(), text)
    };
    let (verify_ok, mut text) = s_client(true);
    let verified = verify_ok && text.contains("Verify return code: 0 (ok)");
    if !verified {
        // The handshake stopped at the failure: see what is presented.
        text = s_client(false).1;
    }
    let begin = text.find("-----BEGIN CERTIFICATE-----");
    let end = text.find("-----END CERTIFICATE-----");
    let fingerprint = match (begin, end) {
        (Some(start), Some(end)) => {
            use base64::Engine;
            let b64: String = text[start + 27..end].split_whitespace().collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let digest = ring::digest::digest(&ring::digest::SHA256, &der);
            let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
            hex.join(":")
        }
        _ => String::new(),
    };
    (verified, fingerprint)
}

/// Every TLS listener presents `fingerprint` and it verifies for `name`
/// against `root` alone (HTTPS by curl too).
fn every_listener_presents(server: &Server, fingerprint: &str, name: &str, root: &Path) {
    let listeners = [
        (server.smtp, Some("smtp")),
        (server.submission.unwrap(), Some("smtp")),
        (server.submissions.unwrap(), None),
        (server.pop3, Some("pop3")),
        (server.pop3s.unwrap(), None),
        (server.web.unwrap(), None),
    ];
    for (addr, starttls) in listeners {
        let (verified, presented) = presented(addr, starttls, name, root);
        assert!(verified, "{addr} ({starttls:?}) does not verify for {name}");
        assert_eq!(presented, fingerprint, "{addr} ({starttls:?})");
    }
    let web = server.web.unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--fail", "-o", "/dev/null", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{name}:{}:127.0.0.1", web.port())])
        .arg(format!("https://{name}:{}/", web.port()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn issues_by_http01_and_every_listener_uses_it() {
    let w = world(true, Ipv4Addr::LOCALHOST);
    // The record is written last, after the listeners have it.
    let shown = w.wait_show("acme:        renewed");
    assert!(shown.starts_with("certificate: ACME"), "{shown}");
    assert_eq!(field(&shown, "names:"), "mx.test, mail.test");
    assert!(
        field(&shown, "issuer:").starts_with("CN=Pebble Intermediate CA"),
        "{shown}"
    );
    assert!(field(&shown, "acme:").starts_with("renewed "), "{shown}");
    assert!(!shown.contains("last error:"), "{shown}");
    let root = w.pebble.root();
    let fingerprint = field(&shown, "SHA-256:").to_string();
    every_listener_presents(&w.server, &fingerprint, "mx.test", &root);
    every_listener_presents(&w.server, &fingerprint, "mail.test", &root);
    assert!(w.server.log().contains("answering http-01"));
    assert!(w.pebble.log().contains("Attempting to validate w/ HTTP"));
    let (ok, status) = w.cli(&["status"]);
    assert!(ok, "{status}");
    assert!(
        status.contains("tls: ACME certificate for mx.test, mail.test, from CN=Pebble"),
        "{status}"
    );
    assert!(status.contains(&fingerprint), "{status}");
    // Kept on flash: a restart serves it at once, with no new order.
    let dir = w.server.data.join("tls");
    for file in [
        "acme-cert.pem",
        "acme-key.pem",
        "acme-account.key",
        "acme-status",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let mut w = w;
    w.restart();
    let logged = w
        .server
        .logged("ACME: next certificate attempt in", Duration::from_secs(20));
    assert!(logged, "{}", w.server.log());
    assert!(
        !w.server.log().contains("ACME: asking"),
        "{}",
        w.server.log()
    );
    let (verified, again) = presented(w.server.pop3s.unwrap(), None, "mx.test", &root);
    assert!(verified);
    assert_eq!(again, fingerprint);
}

#[test]
fn issues_by_tls_alpn01_with_plain_http_off() {
    let w = world(false, Ipv4Addr::LOCALHOST);
    let shown = w.wait_show("acme:        renewed");
    assert_eq!(field(&shown, "names:"), "mx.test, mail.test");
    assert!(w.server.log().contains("answering tls-alpn-01 for mx.test"));
    assert!(!w.server.log().contains("http-01"));
    let root = w.pebble.root();
    let (verified, presented) = presented(w.server.web.unwrap(), None, "mx.test", &root);
    assert!(verified);
    assert_eq!(presented, field(&shown, "SHA-256:"));
    // The challenge certificates are gone with the order: a client asking
    // for acme-tls/1 now gets no certificate at all.
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &w.server.web.unwrap().to_string()])
        .args(["-servername", "mx.test", "-alpn", "acme-tls/1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success()
            || String::from_utf8_lossy(&out.stdout).contains("no peer certificate")
    );
}

#[test]
fn renews_on_request_and_serves_the_new_one_at_once() {
    let mut w = world(true, Ipv4Addr::LOCALHOST);
    let first = w.wait_show("acme:        renewed");
    let (serial, fingerprint) = (field(&first, "serial:"), field(&first, "SHA-256:"));
    let root = w.pebble.root();
    let web = w.server.web.unwrap();
    assert_eq!(presented(web, None, "mx.test", &root).1, fingerprint);
    let (ok, said) = w.cli(&["tls", "renew"]);
    assert!(ok, "{said}");
    // The running server presents a new certificate, without a restart.
    common::wait_until("new certificate", Duration::from_secs(60), || {
        presented(web, None, "mx.test", &root).1 != fingerprint
    });
    let renewed = w.tls_show();
    assert_ne!(field(&renewed, "serial:"), serial);
    let new_fingerprint = field(&renewed, "SHA-256:");
    assert_ne!(new_fingerprint, fingerprint);
    assert!(w.server.log().contains("ACME: renewal requested"));
    every_listener_presents(&w.server, new_fingerprint, "mx.test", &root);
    // Without a running server there is nobody to ask.
    w.server.terminate();
    let (ok, said) = w.cli(&["tls", "renew"]);
    assert!(!ok && said.contains("no server is running"), "{said}");
}

#[test]
fn a_failed_order_keeps_the_self_signed_certificate_and_mail_flowing() {
    // The names lead pebble to an address where nothing listens.
    let w = world(true, Ipv4Addr::new(127, 0, 0, 9));
    let shown = w.wait_show("last error:");
    assert!(shown.starts_with("certificate: self-signed"), "{shown}");
    let error = field(&shown, "last error:");
    assert!(
        error.contains(".test is invalid: http-01 connection"),
        "{error}"
    );
    assert!(error.contains("127.0.0.9"), "{error}");
    assert!(
        field(&shown, "acme:").contains("no certificate obtained yet, next attempt"),
        "{shown}"
    );
    // The console has the same verb.
    let console = postbox(
        &[
            "console",
            "--data",
            w.server.data.to_str().unwrap(),
            "--config",
            w.config.to_str().unwrap(),
        ],
        "tls show\nquit\n",
    );
    let console = String::from_utf8_lossy(&console.stdout);
    assert!(console.contains("last error:"), "{console}");
    let (ok, status) = w.cli(&["status"]);
    assert!(ok, "{status}");
    assert!(
        status.contains("tls: self-signed certificate for mx.test"),
        "{status}"
    );
    assert!(status.contains("tls acme last error: "), "{status}");
    assert!(w.server.log().contains("ACME: no certificate: "));
    // The self-signed certificate is what the listeners present.
    let self_signed = field(&shown, "SHA-256:");
    let root = w.pebble.root();
    let (verified, presented) = presented(w.server.web.unwrap(), None, "mx.test", &root);
    assert!(!verified);
    assert_eq!(presented, self_signed);
    // Mail flows as ever.
    let reply = send_mail(
        w.server.smtp,
        "someone@example.test",
        &["alice@localhost"],
        "Subject: hi\r\n\r\nstill here\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    wait_for_mail(&w.server.data, "alice", 1, Duration::from_secs(10), &|| {
        w.server.log()
    });
}
