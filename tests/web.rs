//! The web listeners against the real binary: HTTPS with the server's own
//! certificate (curl trusting it), plain HTTP sending browsers there, the
//! fields every response carries, the bounds on a request and on a slow
//! client, and listeners turned off.

mod common;

use common::web::field;
use common::{signal, wait_timeout, Server, BIN};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn curl() -> Command {
    match Command::new("curl").arg("--version").output() {
        Ok(_) => Command::new("curl"),
        Err(e) => panic!(
            "curl is needed by this test but cannot run ({e}); install it with scripts/install-test-deps"
        ),
    }
}

/// `curl -i` for `path` on the server's HTTPS listener, trusting its
/// self-signed certificate, with the name on it (mx.test).
fn https(server: &Server, path: &str, extra: &[&str]) -> Output {
    let web = server.web.expect("the web listener is on");
    let cert = server.data.join("tls/cert.pem");
    curl()
        .args(["-sS", "-i", "--max-time", "20", "--cacert"])
        .arg(&cert)
        .args(["--resolve", &format!("mx.test:{}:127.0.0.1", web.port())])
        .args(extra)
        .arg(format!("https://mx.test:{}{path}", web.port()))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_security_fields(response: &str) {
    for (name, value) in [
        ("Content-Security-Policy", "default-src 'self'"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
    ] {
        assert_eq!(field(response, name), Some(value), "{name} in:\n{response}");
    }
}

/// Sends `request` over plain TCP and reads until the server closes.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    text(&response)
}

#[test]
fn https_serves_the_home_page_with_the_mail_certificate() {
    let server = Server::start();
    let out = https(&server, "/", &[]);
    let response = text(&out.stdout);
    assert!(out.status.success(), "{}\n{response}", text(&out.stderr));
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("Postbox at mx.test"), "{response}");
    assert!(!response.contains("<script"), "{response}");
    assert_eq!(
        field(&response, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_security_fields(&response);
    assert_eq!(
        field(&response, "Strict-Transport-Security"),
        Some("max-age=31536000")
    );
    // Unknown pages and wrong methods.
    let missing = text(&https(&server, "/nowhere", &[]).stdout);
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    assert_security_fields(&missing);
    let wrong = text(&https(&server, "/", &["-X", "DELETE"]).stdout);
    assert!(wrong.starts_with("HTTP/1.1 405 "), "{wrong}");
    assert_eq!(field(&wrong, "Allow"), Some("GET, HEAD"));
}

#[test]
fn mail_programs_find_their_settings_on_either_listener() {
    let server = Server::start();
    let asked = "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40localhost";
    let over_tls = text(&https(&server, asked, &[]).stdout);
    assert!(over_tls.starts_with("HTTP/1.1 200 "), "{over_tls}");
    assert_eq!(
        field(&over_tls, "Content-Type"),
        Some("text/xml; charset=utf-8")
    );
    assert!(over_tls.contains("<clientConfig"), "{over_tls}");
    let plain = exchange(
        server.http.unwrap(),
        b"GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: mx.test\r\nConnection: close\r\n\r\n",
    );
    assert!(plain.starts_with("HTTP/1.1 200 "), "{plain}");
    assert!(plain.contains("<clientConfig"), "{plain}");
    let request = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>alice@localhost</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
    let outlook = text(
        &https(
            &server,
            "/Autodiscover/Autodiscover.xml",
            &["-H", "Content-Type: text/xml", "--data-binary", request],
        )
        .stdout,
    );
    assert!(outlook.starts_with("HTTP/1.1 200 "), "{outlook}");
    assert!(outlook.contains("<Type>POP3</Type>"), "{outlook}");
}

#[test]
fn plain_http_redirects_to_https_but_answers_challenges() {
    let server = Server::start();
    let http = server.http.unwrap();
    let response = exchange(
        http,
        format!(
            "GET /some/page?x=1 HTTP/1.1\r\nHost: mx.test:{}\r\nConnection: close\r\n\r\n",
            http.port()
        )
        .as_bytes(),
    );
    assert!(
        response.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{response}"
    );
    let expected = format!(
        "https://mx.test:{}/some/page?x=1",
        server.web.unwrap().port()
    );
    assert_eq!(field(&response, "Location"), Some(expected.as_str()));
    assert_security_fields(&response);
    assert_eq!(field(&response, "Strict-Transport-Security"), None);
    // curl follows the redirect to the HTTPS page.
    let cert = server.data.join("tls/cert.pem");
    let followed = curl()
        .args(["-sS", "-L", "--max-time", "20", "--cacert"])
        .arg(&cert)
        .args(["--resolve", &format!("mx.test:{}:127.0.0.1", http.port())])
        .args([
            "--resolve",
            &format!("mx.test:{}:127.0.0.1", server.web.unwrap().port()),
        ])
        .arg(format!("http://mx.test:{}/", http.port()))
        .output()
        .unwrap();
    assert!(
        text(&followed.stdout).contains("Postbox at mx.test"),
        "{}",
        text(&followed.stderr)
    );
    let challenge = exchange(
        http,
        b"GET /.well-known/acme-challenge/abc_DEF-123 HTTP/1.1\r\nHost: mx.test\r\nConnection: close\r\n\r\n",
    );
    assert!(challenge.starts_with("HTTP/1.1 404 "), "{challenge}");
}

#[test]
fn an_oversized_header_block_is_refused_and_closed() {
    let server = Server::start();
    let mut request = b"GET / HTTP/1.1\r\nHost: mx.test\r\n".to_vec();
    while request.len() < 20 * 1024 {
        request.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    request.extend_from_slice(b"\r\n");
    // read_to_end returns: the server closed the connection.
    let response = exchange(server.http.unwrap(), &request);
    assert!(
        response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{response}"
    );
    assert_eq!(field(&response, "Connection"), Some("close"));
    assert_security_fields(&response);
    // Over HTTPS alike.
    let big = "x".repeat(20 * 1024);
    let over_tls = text(&https(&server, "/", &["-H", &format!("X-Big: {big}")]).stdout);
    assert!(over_tls.starts_with("HTTP/1.1 431 "), "{over_tls}");
}

#[test]
fn a_client_dripping_bytes_is_cut_off() {
    let server = Server::start();
    let mut stream = TcpStream::connect(server.http.unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(900)))
        .unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: mx.test\r\nX-Slow: ";
    let start = Instant::now();
    let mut response = Vec::new();
    // A byte a second, the request never finished.
    for byte in request.iter().chain(std::iter::repeat(&b'a')) {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        assert!(start.elapsed() < Duration::from_secs(30), "still open");
    }
    let took = start.elapsed();
    let response = text(&response);
    assert!(
        response.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{response:?}"
    );
    assert!(took >= Duration::from_secs(9), "cut off early: {took:?}");
    let log_line = format!("{} closed: timed out", stream.local_addr().unwrap());
    assert!(
        server.logged(&log_line, Duration::from_secs(10)),
        "{}",
        server.log()
    );
}

#[test]
fn keep_alive_serves_several_requests_and_shutdown_closes_the_connection() {
    let mut server = Server::start();
    let mut stream = TcpStream::connect(server.http.unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request = b"GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: mx.test\r\n\r\n";
    // Two requests in one write: both answered, in order, and kept open.
    stream
        .write_all(&[&request[..], &request[..]].concat())
        .unwrap();
    let mut seen = Vec::new();
    while text(&seen).matches("HTTP/1.1 404 ").count() < 2 {
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(text(&seen).contains("Connection: keep-alive"));
    signal(&server.child, "TERM");
    let mut rest = Vec::new();
    // The idle connection is closed at once, well before its deadline.
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
    let status = wait_timeout(&mut server.child, Duration::from_secs(5)).expect("stopped");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn listeners_turned_off_open_no_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(&dir.path().join("data"), &["--web", "off", "--http", "off"]);
    assert_eq!((server.web, server.http), (None, None));
    // The line reaches the log just after its addresses reach the test.
    assert!(server.logged(" serving ", Duration::from_secs(10)));
    let line = server
        .log()
        .lines()
        .find(|l| l.contains(" serving "))
        .unwrap()
        .to_string();
    assert!(
        !line.contains(" web ") && !line.contains(" http "),
        "{line}"
    );
    // Both on: each named in `postbox status` as the other listeners are.
    let on = Server::start();
    let shown = Command::new(BIN)
        .args(["status", "--data", on.data.to_str().unwrap()])
        .output()
        .unwrap();
    let shown = text(&shown.stdout);
    for (name, addr) in [("web", on.web.unwrap()), ("http", on.http.unwrap())] {
        assert!(
            shown.contains(&format!("{name} {addr}")),
            "{name} {addr} not in:\n{shown}"
        );
    }
}
