//! `book NAME list|add|del|export`: a member's address book, from the
//! command line, the console and the member's page alike. Edits are
//! written under the admin lock; the running server reads the book again
//! when its file changes, so they count at once.

use super::verbs::Output;
use crate::config::Config;
use crate::spam::book::{self, Entry};
use std::path::PathBuf;

/// What `book` takes after NAME, for help and errors.
pub const USAGE: &str =
    "usage: book NAME list | add ADDRESS [DISPLAY NAME] | del ADDRESS | export [PATH|-]";

/// Runs `book NAME ACTION ...`.
pub fn run(config: &Config, args: &[&str]) -> Result<Output, String> {
    let (name, action, rest) = match args {
        [name, action, rest @ ..] => (*name, *action, rest),
        _ => return Err(USAGE.into()),
    };
    let (account, mailbox) = super::member_mailbox(config, name)?;
    match (action, rest) {
        ("list", []) => {
            let entries = read(&mailbox)?;
            let lines = book::listed(&entries).into_iter().map(line).collect();
            Ok(Output::List(lines, "no entries"))
        }
        ("add", [address, display @ ..]) => {
            let display = unquoted(&display.join(" "));
            let added = book::edit(&config.data_dir, &mailbox, |entries| {
                book::add(entries, address, &display)
            })?;
            Ok(Output::Text(format!(
                "{added} is in {account}'s address book"
            )))
        }
        ("del", [address]) => {
            let gone = book::edit(&config.data_dir, &mailbox, |entries| {
                book::remove(entries, address)
            })?;
            let shown = match gone.address.is_empty() {
                true => address.to_string(),
                false => gone.address,
            };
            Ok(Output::Text(format!(
                "{shown} is no longer in {account}'s address book"
            )))
        }
        ("export", []) | ("export", ["-"]) => Ok(Output::Text(vcards(&mailbox)?)),
        ("export", [path]) => {
            let cards = vcards(&mailbox)?;
            write_file(path, cards.as_bytes()).map_err(|e| format!("cannot write {path}: {e}"))?;
            let count = cards.matches("BEGIN:VCARD").count();
            Ok(Output::Text(format!("{count} cards written to {path}")))
        }
        _ => Err(USAGE.into()),
    }
}

/// The member's book as vCards (RFC 6350).
pub fn vcards(mailbox: &std::path::Path) -> Result<String, String> {
    let entries = read(mailbox)?;
    Ok(crate::spam::vcard::cards(book::listed(&entries)))
}

fn read(mailbox: &std::path::Path) -> Result<Vec<Entry>, String> {
    book::read(mailbox).map_err(|e| format!("cannot read {}: {e}", book::path(mailbox).display()))
}

/// `bob@example.org  Bob Smith`.
fn line(entry: &Entry) -> String {
    match entry.name.as_str() {
        "" => entry.address.clone(),
        name => format!("{}  {name}", entry.address),
    }
}

/// A display name given as one quoted word on the console (which splits
/// at spaces) loses its quotes, as a shell would take them off.
fn unquoted(display: &str) -> String {
    let inner = display.strip_prefix('"').and_then(|d| d.strip_suffix('"'));
    inner.unwrap_or(display).to_string()
}

/// Writes `bytes` to `path` beside it first, fsynced, then renamed: a
/// reader never sees half an export.
fn write_file(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = PathBuf::from(path);
    crate::store::durable::replace_file(crate::store::disk::system(), &path, bytes)
}
