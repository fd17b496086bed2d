//! Compiles the vendored Public Suffix List into the compact table that
//! `dmarc::psl` searches: only the ICANN section (what DMARC's
//! organizational domain needs), Unicode rules as A-labels, each rule with
//! its labels reversed (`uk.co`, `ck.*`, `ck.!www`), sorted, and stored
//! front-coded (bytes shared with the previous rule, then the rest) with a
//! full rule every `RESTART_EVERY` entries for the binary search. No
//! network: the list is a file in the repository.

use std::fmt::Write as _;
use std::path::PathBuf;

#[path = "src/dmarc/punycode.rs"]
mod punycode;

const LIST: &str = "src/dmarc/public_suffix_list.dat";
const RESTART_EVERY: usize = 32;

fn main() {
    println!("cargo:rerun-if-changed={LIST}");
    println!("cargo:rerun-if-changed=src/dmarc/punycode.rs");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let text =
        std::fs::read_to_string(root.join(LIST)).expect("the public suffix list is vendored");
    let mut rules = icann_rules(&text);
    rules.sort();
    rules.dedup();

    let mut table = Vec::new();
    let mut restarts = Vec::new();
    let mut previous: &[u8] = &[];
    for (i, rule) in rules.iter().enumerate() {
        let rule = rule.as_bytes();
        assert!(rule.len() < 256, "a rule longer than a table entry holds");
        let shared = if i % RESTART_EVERY == 0 {
            restarts.push(table.len() as u32);
            0
        } else {
            previous
                .iter()
                .zip(rule)
                .take_while(|(a, b)| a == b)
                .count()
        };
        table.push(shared as u8);
        table.push((rule.len() - shared) as u8);
        table.extend_from_slice(&rule[shared..]);
        previous = rule;
    }

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("psl_rules.bin"), &table).unwrap();
    let mut code = String::new();
    writeln!(
        code,
        "pub(super) const RESTART_EVERY: usize = {RESTART_EVERY};"
    )
    .unwrap();
    writeln!(
        code,
        "pub(super) static RESTARTS: [u32; {}] = [",
        restarts.len()
    )
    .unwrap();
    for offset in &restarts {
        writeln!(code, "    {offset},").unwrap();
    }
    writeln!(code, "];").unwrap();
    std::fs::write(out.join("psl_restarts.rs"), code).unwrap();
}

/// The rules between the ICANN section markers, normalized and reversed.
fn icann_rules(text: &str) -> Vec<String> {
    let mut rules = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("// ===BEGIN ICANN DOMAINS===") {
            inside = true;
        } else if line.starts_with("// ===END ICANN DOMAINS===") {
            break;
        } else if inside && !line.is_empty() && !line.starts_with("//") {
            // A rule ends at the first white space (the list's format).
            let rule = line.split_whitespace().next().unwrap().to_lowercase();
            let (exception, rule) = match rule.strip_prefix('!') {
                Some(rest) => (true, rest.to_owned()),
                None => (false, rule),
            };
            let mut labels: Vec<String> = rule
                .split('.')
                .map(|label| punycode::to_ascii_label(label).expect("a sane label"))
                .collect();
            if exception {
                labels[0].insert(0, '!');
            }
            labels.reverse();
            rules.push(labels.join("."));
        }
    }
    assert!(rules.len() > 1000, "the ICANN section was not found");
    rules
}
