//! A DNS responder over UDP on 127.0.0.1 serving a zone the test sets
//! (and changes at any time): records by name and type, NXDOMAIN for
//! names it does not know, NODATA with an SOA for types a name lacks, one
//! level of CNAME followed as a resolver would, and silence where the
//! zone says a question times out, or for every question while the zone
//! is `dead` (a resolver that is down).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

/// What a name holds for one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Record data as sent on the wire.
    Records(Vec<Vec<u8>>),
    /// Questions for it go unanswered.
    Timeout,
}

#[derive(Default, Debug, Clone)]
pub struct Zone {
    /// (lower-case name, type) to data.
    pub records: HashMap<(String, u16), Data>,
    /// Names whose every type without records times out.
    pub silent: Vec<String>,
    /// Every question goes unanswered.
    pub dead: bool,
    /// Every question received, answered or not: (lower-case name, type).
    pub asked: Vec<(String, u16)>,
}

pub const A: u16 = 1;
pub const CNAME: u16 = 5;
pub const MX: u16 = 15;
pub const TXT: u16 = 16;
pub const SRV: u16 = 33;

/// A record to send: owner name, type, data.
type Rr = (String, u16, Vec<u8>);

/// What to answer: records (none is NODATA), `None` for NXDOMAIN, or
/// `Err` to stay silent.
type Found = Result<Option<Vec<Rr>>, ()>;

impl Zone {
    pub fn add(&mut self, name: &str, kind: u16, data: Vec<u8>) {
        let entry = self
            .records
            .entry((name.to_ascii_lowercase(), kind))
            .or_insert(Data::Records(Vec::new()));
        if let Data::Records(all) = entry {
            all.push(data);
        }
    }

    pub fn add_a(&mut self, name: &str, ip: Ipv4Addr) {
        self.add(name, A, ip.octets().to_vec());
    }

    pub fn add_mx(&mut self, name: &str, preference: u16, host: &str) {
        let mut data = preference.to_be_bytes().to_vec();
        data.extend(encode_name(host));
        self.add(name, MX, data);
    }

    /// A TXT record holding `text`, in as many strings as it takes.
    pub fn add_txt(&mut self, name: &str, text: &str) {
        self.add(name, TXT, txt_data(&[text.as_bytes().to_vec()]));
    }

    /// Removes every record of `name` and `kind`.
    pub fn remove(&mut self, name: &str, kind: u16) {
        self.records.remove(&(name.to_ascii_lowercase(), kind));
    }

    fn knows(&self, name: &str) -> bool {
        self.silent.iter().any(|n| n == name) || self.records.keys().any(|(n, _)| n == name)
    }

    fn answer(&self, name: &str, kind: u16) -> Found {
        if self.dead {
            return Err(());
        }
        let own = |n: &str, k: u16| self.records.get(&(n.to_string(), k));
        match own(name, kind) {
            Some(Data::Timeout) => return Err(()),
            Some(Data::Records(r)) => {
                return Ok(Some(
                    r.iter()
                        .map(|d| (name.to_string(), kind, d.clone()))
                        .collect(),
                ))
            }
            None => {}
        }
        if let Some(Data::Records(cname)) = own(name, CNAME) {
            let mut out = vec![(name.to_string(), CNAME, cname[0].clone())];
            let target = decode_name(&cname[0]);
            if let Some(Data::Records(r)) = own(&target, kind) {
                out.extend(r.iter().map(|d| (target.clone(), kind, d.clone())));
            }
            return Ok(Some(out));
        }
        if self.silent.iter().any(|n| n == name) {
            return Err(());
        }
        if !self.knows(name) {
            return Ok(None);
        }
        Ok(Some(Vec::new()))
    }
}

/// A TXT record's data: each text in character-strings of at most 255
/// bytes (the most one holds), an empty text as one empty string.
pub fn txt_data(texts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for text in texts {
        for chunk in text.chunks(255) {
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
        if text.is_empty() {
            out.push(0);
        }
    }
    out
}

pub fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn decode_name(wire: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut pos = 0;
    while wire[pos] != 0 {
        let len = wire[pos] as usize;
        labels.push(String::from_utf8_lossy(&wire[pos + 1..pos + 1 + len]).to_ascii_lowercase());
        pos += 1 + len;
    }
    labels.join(".")
}

/// The question of `query`: (lower-case name, type, end of the question).
fn question(query: &[u8]) -> (String, u16, usize) {
    let mut pos = 12;
    while query[pos] != 0 {
        pos += 1 + query[pos] as usize;
    }
    let name = decode_name(&query[12..=pos]);
    let kind = u16::from_be_bytes([query[pos + 1], query[pos + 2]]);
    (name, kind, pos + 5)
}

/// The answer to `query`, or `None` to stay silent.
fn reply(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let (name, kind, question_end) = question(query);
    let mut out = query[..question_end].to_vec();
    out[2] = 0x81;
    out[3] = 0x80;
    out[10..12].copy_from_slice(&[0, 0]);
    let rr = |out: &mut Vec<u8>, owner: &str, kind: u16, data: &[u8]| {
        out.extend(encode_name(owner));
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]); // IN, TTL 3600
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    };
    match zone.answer(&name, kind).ok()? {
        Some(records) if !records.is_empty() => {
            out[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
            for (owner, kind, data) in records {
                rr(&mut out, &owner, kind, &data);
            }
        }
        found => {
            if found.is_none() {
                out[3] = 0x83;
            }
            // An SOA, so the negative answer has a TTL (RFC 2308).
            out[8..10].copy_from_slice(&[0, 1]);
            let mut soa = [encode_name("ns.test"), encode_name("hostmaster.test")].concat();
            for field in [1u32, 3600, 600, 86400, 300] {
                soa.extend_from_slice(&field.to_be_bytes());
            }
            rr(&mut out, "test", 6, &soa);
        }
    }
    Some(out)
}

/// Starts the responder; the zone it serves can be replaced at any time.
pub fn start() -> (SocketAddr, Arc<Mutex<Zone>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let zone = Arc::new(Mutex::new(Zone::default()));
    let served = zone.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let answer = {
                let mut zone = served.lock().unwrap();
                let (name, kind, _) = question(&buf[..n]);
                zone.asked.push((name, kind));
                reply(&zone, &buf[..n])
            };
            if let Some(answer) = answer {
                let _ = socket.send_to(&answer, from);
            }
        }
    });
    (addr, zone)
}
