//! Aliases files of any content: an error message, or aliases whose every
//! name expands within the limits and without duplicates, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::route::aliases::{expand, Aliases, Directory, Target, MAX_TARGETS};
use postbox::route::Forward;
use std::collections::HashSet;

const DOMAINS: [&str; 2] = ["club.example", "home.example"];

/// Three users in both domains; bob forwards to a list and keeps a copy,
/// carol forwards to alice, so forwards meet aliases and loops.
struct Dir;

impl Directory for Dir {
    fn serves(&self, domain: &str) -> bool {
        DOMAINS.contains(&domain)
    }

    fn account(&self, local: &str, domain: &str) -> Option<String> {
        let local = local.to_ascii_lowercase();
        let known = ["alice", "bob", "carol"].contains(&local.as_str());
        (known && self.serves(domain)).then(|| format!("{local}@{domain}"))
    }

    fn forward(&self, account: &str) -> Option<Forward> {
        let (to, keep) = match account {
            "bob@club.example" => (vec!["members@club.example", "bob@far.example"], true),
            "carol@home.example" => (vec!["alice@home.example"], false),
            _ => return None,
        };
        Some(Forward {
            to: to.into_iter().map(String::from).collect(),
            keep,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(aliases) = Aliases::parse(text) else {
        return;
    };
    for name in aliases.names() {
        let (local, domains) = match name.rsplit_once('@') {
            Some((local, domain)) => (local, vec![domain]),
            None => (name, DOMAINS.to_vec()),
        };
        for domain in domains {
            if let Ok(targets) = expand(&aliases, &Dir, local, domain) {
                assert!(!targets.is_empty() && targets.len() <= MAX_TARGETS);
                let mut seen = HashSet::new();
                for target in &targets {
                    let (Target::Mailbox(a) | Target::External(a)) = target;
                    assert!(seen.insert(a.to_lowercase()), "{a} twice");
                }
            }
        }
    }
    let _ = aliases.missing_required(&Dir, "club.example");
});
