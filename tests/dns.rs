//! The DNS client against a responder of the test's own on 127.0.0.1 that
//! answers every UDP query truncated (TC) and the full answer over TCP on
//! the same port, as a resolver does with answers too large for UDP.

mod common;
use common::*;
use postbox::dns::message::{TYPE_A, TYPE_PTR, TYPE_TXT};
use postbox::dns::{host_addresses, mail_hosts, LookupError, MailHosts, Resolver};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a query came in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Asked {
    name: String,
    tcp: bool,
    /// The UDP payload size of its EDNS0 OPT record, if it had one.
    edns_payload: Option<u16>,
}

/// Backup MX hosts of big.test: with mx.big.test, far more than fits in
/// 1232 bytes.
const BACKUPS: usize = 40;

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Records of (name, type) as (type, data); `None` is NXDOMAIN.
fn records(name: &str, kind: u16) -> Option<Vec<(u16, Vec<u8>)>> {
    let mx = |pref: u16, host: &str| {
        let mut data = pref.to_be_bytes().to_vec();
        data.extend(encode_name(host));
        (15, data)
    };
    match (name, kind) {
        ("big.test", 15) => {
            let mut all = vec![mx(10, "mx.big.test")];
            // Listed before the preferred one: the client sorts.
            for i in 0..BACKUPS {
                let host = format!("backup-mail-exchanger-number-{i:02}.big.test");
                all.insert(0, mx(20 + i as u16, &host));
            }
            Some(all)
        }
        ("mx.big.test", 1) => Some(vec![(1, vec![127, 0, 0, 1])]),
        ("text.test", 16) => Some(vec![(16, b"\x07v=spf1 \x04-all".to_vec())]),
        ("1.0.0.127.in-addr.arpa", 12) => Some(vec![(12, encode_name("mx.big.test"))]),
        ("1.0.0.127.listed.test", 1) => Some(vec![(1, vec![127, 0, 0, 2])]),
        (n, _) if n.ends_with(".listed.test") => None,
        _ => Some(Vec::new()),
    }
}

/// Reads the question of `query`: (name, type, EDNS0 payload size).
fn read_query(query: &[u8]) -> (String, u16, Option<u16>) {
    let mut labels = Vec::new();
    let mut pos = 12;
    while query[pos] != 0 {
        let len = query[pos] as usize;
        labels.push(String::from_utf8_lossy(&query[pos + 1..pos + 1 + len]).to_ascii_lowercase());
        pos += 1 + len;
    }
    let kind = u16::from_be_bytes([query[pos + 1], query[pos + 2]]);
    let additional = u16::from_be_bytes([query[10], query[11]]);
    let opt = &query[pos + 5..];
    let edns = (additional == 1 && opt.len() >= 11 && opt[0] == 0 && opt[1..3] == [0, 41])
        .then(|| u16::from_be_bytes([opt[3], opt[4]]));
    (labels.join("."), kind, edns)
}

/// How the responder answers over UDP.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Udp {
    /// Only the header and question, with TC set.
    Truncated,
    /// FORMERR to queries with EDNS0 (as a server that does not know it),
    /// the full answer to those without.
    NoEdns,
    /// Nothing to the first query (as if it were lost), the full answer to
    /// the others.
    LoseFirst,
}

/// The answer to `query`: complete, or only the header and question with
/// TC set.
fn reply(query: &[u8], truncated: bool) -> Vec<u8> {
    let (name, kind, _) = read_query(query);
    let question_end = 12 + encode_name(&name).len() + 4;
    let mut out = query[..question_end].to_vec();
    out[2] = 0x81 | if truncated { 0x02 } else { 0 };
    out[3] = 0x80;
    out[10..12].copy_from_slice(&[0, 0]);
    let found = records(&name, kind);
    let Some(found) = found else {
        out[3] = 0x83;
        return out;
    };
    if truncated {
        return out;
    }
    out[6..8].copy_from_slice(&(found.len() as u16).to_be_bytes());
    for (kind, data) in found {
        out.extend_from_slice(&[0xc0, 12]);
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// Starts the responder; returns its address and the queries it got.
fn responder() -> (SocketAddr, Arc<Mutex<Vec<Asked>>>) {
    responder_with(Udp::Truncated)
}

fn responder_with(udp_mode: Udp) -> (SocketAddr, Arc<Mutex<Vec<Asked>>>) {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let udp = UdpSocket::bind(addr).unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let (name, _, edns_payload) = read_query(&buf[..n]);
            log.lock().unwrap().push(Asked {
                name,
                tcp: false,
                edns_payload,
            });
            let answer = match udp_mode {
                Udp::Truncated => reply(&buf[..n], true),
                Udp::NoEdns if edns_payload.is_some() => {
                    let mut refused = reply(&buf[..n], true);
                    refused[2] &= !0x02;
                    refused[3] = 0x81; // FORMERR
                    refused
                }
                Udp::NoEdns => reply(&buf[..n], false),
                Udp::LoseFirst if log.lock().unwrap().len() == 1 => continue,
                Udp::LoseFirst => reply(&buf[..n], false),
            };
            let _ = udp.send_to(&answer, from);
        }
    });
    let log = asked.clone();
    std::thread::spawn(move || {
        for mut conn in tcp.incoming().flatten() {
            let mut len = [0u8; 2];
            if conn.read_exact(&mut len).is_err() {
                continue;
            }
            let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
            if conn.read_exact(&mut query).is_err() {
                continue;
            }
            let (name, _, edns_payload) = read_query(&query);
            log.lock().unwrap().push(Asked {
                name,
                tcp: true,
                edns_payload,
            });
            let answer = reply(&query, false);
            let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&answer);
            let _ = conn.write_all(&framed);
        }
    });
    (addr, asked)
}

#[test]
fn large_mx_answers_come_over_tcp_after_truncation() {
    let (resolver, asked) = responder();
    let hosts = smol::block_on(mail_hosts(resolver, "big.test")).unwrap();
    let MailHosts::Hosts(hosts) = hosts else {
        panic!("{hosts:?}")
    };
    assert_eq!(hosts.len(), 1 + BACKUPS);
    assert_eq!(hosts[0], "mx.big.test");
    assert_eq!(hosts[1], "backup-mail-exchanger-number-00.big.test");
    let addresses = smol::block_on(host_addresses(resolver, "mx.big.test")).unwrap();
    assert_eq!(addresses, vec![std::net::IpAddr::from([127, 0, 0, 1])]);
    let asked = asked.lock().unwrap();
    let first_udp = Asked {
        name: "big.test".into(),
        tcp: false,
        edns_payload: Some(1232),
    };
    assert_eq!(asked.first(), Some(&first_udp), "{asked:?}");
    assert!(
        asked.iter().any(|a| a.name == "big.test" && a.tcp),
        "{asked:?}"
    );
}

#[test]
fn a_truncated_blocklist_answer_is_asked_again_over_tcp() {
    let (resolver, asked) = responder();
    let (_dir, server) = Server::with_config(&format!(
        "dns_resolver = \"{resolver}\"\n[dnsbl]\nzones = [\"listed.test\"]\n"
    ));
    let mut c = server.smtp();
    let reply = c.reply();
    assert!(reply.starts_with("554 5.7.1"), "{reply}");
    let asked = asked.lock().unwrap();
    assert!(
        asked
            .iter()
            .any(|a| a.name == "1.0.0.127.listed.test" && a.tcp),
        "{asked:?}"
    );
}

#[test]
fn a_server_without_edns_is_asked_again_without_it() {
    // RFC 6891 §7: FORMERR to a query with OPT means "ask without".
    let (resolver, asked) = responder_with(Udp::NoEdns);
    let addresses = smol::block_on(host_addresses(resolver, "mx.big.test")).unwrap();
    assert_eq!(addresses, vec![std::net::IpAddr::from([127, 0, 0, 1])]);
    let asked = asked.lock().unwrap();
    let plain = |a: &&Asked| a.name == "mx.big.test" && !a.tcp && a.edns_payload.is_none();
    assert!(asked.iter().any(|a| plain(&a)), "{asked:?}");
}

#[test]
fn the_resolver_remembers_answers_and_joins_txt_strings() {
    let (server, asked) = responder();
    let resolver = Resolver::new(Some(server));
    smol::block_on(async {
        let txt = resolver.lookup("text.test", TYPE_TXT).await.unwrap();
        assert_eq!(txt.txt(), vec![&b"v=spf1 -all"[..]]);
        assert_eq!(txt.ttl(), Some(60));
        let ptr = resolver.lookup("1.0.0.127.in-addr.arpa", TYPE_PTR).await;
        assert_eq!(ptr.unwrap().ptr(), vec!["mx.big.test"]);
        let before = asked.lock().unwrap().len();
        let again = resolver.lookup("TEXT.test.", TYPE_TXT).await.unwrap();
        assert_eq!(again, txt);
        assert_eq!(
            asked.lock().unwrap().len(),
            before,
            "answered from the cache"
        );
        assert_eq!(resolver.cached(), 2);
        let nodata = resolver.lookup("text.test", TYPE_A).await.unwrap();
        assert!(nodata.is_empty(), "{nodata:?}");
        let nx = resolver.lookup("9.9.listed.test", TYPE_A).await.unwrap();
        assert!(matches!(
            nx,
            postbox::dns::message::Answer::NoSuchName { .. }
        ));
        let long = format!("{}.test", "x".repeat(64));
        assert_eq!(
            resolver.lookup(&long, TYPE_TXT).await,
            Err(LookupError::InvalidName)
        );
    });
}

#[test]
fn a_resolver_that_does_not_answer_gives_an_error_in_time() {
    // Bound but never read: the questions go unanswered.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let limit = Duration::from_millis(300);
    let resolver = Resolver::new(Some(silent.local_addr().unwrap())).with_timeout(limit);
    let started = Instant::now();
    let outcome = smol::block_on(resolver.lookup("text.test", TYPE_TXT));
    assert_eq!(outcome, Err(LookupError::TimedOut));
    assert!(started.elapsed() >= limit && started.elapsed() < limit * 10);
    assert_eq!(resolver.cached(), 0, "failures are not remembered");
}

#[test]
fn a_lost_question_is_sent_again() {
    let (server, asked) = responder_with(Udp::LoseFirst);
    let resolver = Resolver::new(Some(server));
    let started = Instant::now();
    let txt = smol::block_on(resolver.lookup("text.test", TYPE_TXT)).unwrap();
    assert_eq!(txt.txt(), vec![&b"v=spf1 -all"[..]]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(asked.lock().unwrap().len(), 2);
}
