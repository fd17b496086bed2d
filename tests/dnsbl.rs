//! DNS blocklists with a responder of our own on 127.0.0.1: a listed
//! client is refused before the greeting, an unlisted one is served, and
//! no question goes anywhere but the configured resolver.

mod common;
use common::*;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};

/// Answers A queries: names under `listed.test` resolve to 127.0.0.2, all
/// else is NXDOMAIN. Returns its address and the names it was asked.
fn responder() -> (String, Arc<Mutex<Vec<String>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let query = &buf[..n];
            let mut labels = Vec::new();
            let mut pos = 12;
            while pos < n && query[pos] != 0 {
                let len = query[pos] as usize;
                labels.push(String::from_utf8_lossy(&query[pos + 1..pos + 1 + len]).to_string());
                pos += 1 + len;
            }
            let name = labels.join(".");
            log.lock().unwrap().push(name.clone());
            let question_end = pos + 5;
            let mut reply = query[..question_end].to_vec();
            reply[2] = 0x81;
            if name.ends_with("listed.test") {
                reply[3] = 0x80;
                reply[6..8].copy_from_slice(&1u16.to_be_bytes());
                reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2]);
            } else {
                reply[3] = 0x83; // NXDOMAIN
            }
            let _ = socket.send_to(&reply, from);
        }
    });
    (addr, asked)
}

fn server(resolver: &str, zone: &str) -> (tempfile::TempDir, Server) {
    Server::with_config(&format!(
        "dns_resolver = \"{resolver}\"\n[dnsbl]\nzones = [\"{zone}\"]\n"
    ))
}

#[test]
fn listed_clients_are_refused_and_others_served() {
    let (resolver, asked) = responder();
    let (_dir, blocked) = server(&resolver, "listed.test");
    let mut c = blocked.smtp();
    let reply = c.reply();
    assert!(reply.starts_with("554 5.7.1"), "{reply}");
    assert!(reply.contains("listed.test"), "{reply}");
    // Submission is for members: no blocklist there.
    let mut c = Client::connect(blocked.submission.unwrap());
    assert!(c.reply().starts_with("220"));

    let (_dir, open) = server(&resolver, "clean.test");
    let reply = send_mail(
        open.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: hi\r\n\r\nhi",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let asked = asked.lock().unwrap();
    assert!(
        asked.contains(&"1.0.0.127.listed.test".to_string()),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"1.0.0.127.clean.test".to_string()),
        "{asked:?}"
    );
}

#[test]
fn a_silent_resolver_does_not_stop_mail() {
    // Bound but never answering: the lookup times out and mail flows.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let (_dir, server) = server(&addr, "listed.test");
    let mut c = server.smtp();
    assert!(c.reply().starts_with("220"));
    drop(silent);
}
