//! An `/etc/aliases`-style file (sendmail's syntax) and the expansion of a
//! recipient into the mailboxes and outside addresses that get its mail.
//!
//! ```text
//! # the club's board
//! board: alice, bob@example.org
//! members: board, carol,
//!         dave@elsewhere.example
//! postmaster@club.example: alice
//! alice: \alice, alice@phone.example
//! ```
//!
//! A name is a bare local part (it applies to every served domain) or
//! `local@domain` (that domain only, and it wins over the bare form). Names
//! are case-insensitive. A target is a bare local part (a user or another
//! alias in the domain of the address being expanded) or `local@domain`,
//! optionally in `<...>`; `\name` delivers to that user's mailbox without
//! looking at aliases or forwarding. A name that lists itself
//! (`alice: alice, ...`) means its own user's mailbox, as in sendmail.
//! Lines that start with white space continue the entry above; `#` starts
//! a comment line; a blank line ends an entry. Commands (`|prog`), files
//! (`/path`) and `:include:` are refused: the server never runs programs
//! or writes outside its mail store on behalf of a mail address.

use super::forward::Forward;
use crate::store::disk::{self, Disk, Metadata};
use crate::store::durable;
use crate::wire::address::Address;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How many aliases and forwards may lead from one to the next.
pub const MAX_DEPTH: usize = 10;
/// How many mailboxes and outside addresses one recipient may become.
pub const MAX_TARGETS: usize = 1000;

/// Where one recipient's mail is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A user's own mailbox, by account (`local@domain`).
    Mailbox(String),
    /// An address in a domain this server does not serve.
    External(String),
}

/// What the expansion needs to know about users and domains.
pub trait Directory {
    fn serves(&self, domain: &str) -> bool;
    /// The account (`local@domain`) of the user with this address, if any.
    fn account(&self, local: &str, domain: &str) -> Option<String>;
    fn forward(&self, account: &str) -> Option<Forward>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpandError {
    NoSuchUser,
    /// The expansion yields nothing because every path led back to itself.
    Loop,
    TooDeep,
    TooMany,
}

impl ExpandError {
    /// The SMTP reply code for a refused recipient.
    pub fn code(&self) -> u16 {
        match self {
            ExpandError::NoSuchUser => 550,
            _ => 554,
        }
    }

    /// The enhanced status code (RFC 3463).
    pub fn enhanced(&self) -> &'static str {
        match self {
            ExpandError::NoSuchUser => "5.1.1",
            ExpandError::Loop => "5.4.6",
            ExpandError::TooDeep => "5.3.5",
            ExpandError::TooMany => "5.5.3",
        }
    }
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExpandError::NoSuchUser => "No such user here",
            ExpandError::Loop => "Mail loop in aliases or forwarding",
            ExpandError::TooDeep => "Aliases or forwards nested too deeply",
            ExpandError::TooMany => "Alias expands to too many recipients",
        })
    }
}

impl std::error::Error for ExpandError {}

/// A parsed aliases file: lower-cased name → targets as written (domains
/// lower-cased, `<>` removed, a leading `\` kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aliases {
    entries: BTreeMap<String, Vec<String>>,
}

/// One entry and the lines it occupies (0-based, inclusive), for editing.
struct Entry {
    name: String,
    targets: Vec<String>,
    first_line: usize,
    last_line: usize,
}

impl Aliases {
    /// Parses the whole file; the first problem is reported as
    /// `line N: reason`.
    pub fn parse(text: &str) -> Result<Aliases, String> {
        let entries = parse_entries(text)?
            .into_iter()
            .map(|e| (e.name, e.targets))
            .collect();
        Ok(Aliases { entries })
    }

    /// Reads and parses `path`; a missing file means no aliases.
    pub fn load(path: &Path) -> Result<Aliases, String> {
        read(&**disk::system(), path).map(|(aliases, _)| aliases)
    }

    /// Every name, lower-cased, in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.keys().map(String::as_str)
    }

    /// The targets of `name` (either form, any case) exactly as listed.
    pub fn targets(&self, name: &str) -> Option<&[String]> {
        self.entries.get(&fold(name)).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry that applies to `local@domain`: the domain's own, else the
    /// bare name.
    fn lookup(&self, local: &str, domain: &str) -> Option<&[String]> {
        let local = fold(local);
        self.entries
            .get(&format!("{local}@{}", fold(domain)))
            .or_else(|| self.entries.get(&local))
            .map(Vec::as_slice)
    }

    /// Which of the addresses every mail domain must have (RFC 5321 §4.5.1,
    /// and the sender of bounces) lead nowhere in `domain`: neither an alias
    /// nor an account delivers them. The server warns and falls back for
    /// these.
    pub fn missing_required(&self, dir: &impl Directory, domain: &str) -> Vec<&'static str> {
        ["postmaster", "MAILER-DAEMON"]
            .into_iter()
            .filter(|name| expand(self, dir, name, domain).is_err())
            .collect()
    }
}

/// Case folding for names and duplicate checks.
fn fold(text: &str) -> String {
    text.to_lowercase()
}

fn parse_entries(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    // Whether the last entry may still take continuation lines.
    let mut open = false;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            close(&mut entries, &mut open)?;
            continue;
        }
        // Comments inside an entry do not end it, so members can be
        // commented out of a long list.
        if trimmed.starts_with('#') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            let Some(entry) = entries.last_mut().filter(|_| open) else {
                return Err(format!(
                    "line {number}: continuation line without an entry to continue"
                ));
            };
            parse_targets(trimmed, number, &mut entry.targets)?;
            entry.last_line = index;
            continue;
        }
        close(&mut entries, &mut open)?;
        let Some((name, rest)) = raw.split_once(':') else {
            return Err(format!("line {number}: missing colon after the name"));
        };
        let name = parse_name(name.trim()).map_err(|e| format!("line {number}: {e}"))?;
        if let Some(first) = first_seen.insert(name.clone(), number) {
            return Err(format!(
                "line {number}: duplicate name {name} (first on line {first})"
            ));
        }
        let mut targets = Vec::new();
        parse_targets(rest, number, &mut targets)?;
        entries.push(Entry {
            name,
            targets,
            first_line: index,
            last_line: index,
        });
        open = true;
    }
    close(&mut entries, &mut open)?;
    Ok(entries)
}

/// Ends the open entry, which must have gathered at least one target.
fn close(entries: &mut [Entry], open: &mut bool) -> Result<(), String> {
    if std::mem::take(open) {
        if let Some(entry) = entries.last().filter(|e| e.targets.is_empty()) {
            return Err(format!(
                "line {}: {} has no targets",
                entry.first_line + 1,
                entry.name
            ));
        }
    }
    Ok(())
}

/// A name, lower-cased: `local` or `local@domain`.
fn parse_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("empty name before the colon".into());
    }
    let valid = if name.contains('@') {
        Address::parse_path(name).map(|a| a.to_string())
    } else {
        Address::new(name, "localhost").map(|_| name.to_string())
    };
    valid
        .map(|n| fold(&n))
        .map_err(|e| format!("invalid name {name:?}: {e}"))
}

/// Adds the comma-separated targets on one line to `out`.
fn parse_targets(text: &str, number: usize, out: &mut Vec<String>) -> Result<(), String> {
    for item in split_outside_quotes(text) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let target = parse_target(item).map_err(|e| format!("line {number}: {e}"))?;
        out.push(target);
    }
    Ok(())
}

/// Splits on commas, except inside a quoted local part (`"a,b"@x`).
fn split_outside_quotes(text: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    text.split(move |c| {
        if c == '"' {
            quoted = !quoted;
        }
        c == ',' && !quoted
    })
}

fn parse_target(item: &str) -> Result<String, String> {
    let bare = item.trim_start_matches('"');
    if bare.starts_with('|') {
        return Err(format!("{item}: delivery to a command is not supported"));
    }
    if bare.starts_with('/') {
        return Err(format!("{item}: delivery to a file is not supported"));
    }
    if bare
        .get(..9)
        .is_some_and(|p| p.eq_ignore_ascii_case(":include:"))
    {
        return Err(format!("{item}: :include: files are not supported"));
    }
    let inner = item
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(item)
        .trim();
    let (direct, address) = match inner.strip_prefix('\\') {
        Some(rest) => ("\\", rest),
        None => ("", inner),
    };
    if address.is_empty() {
        return Err(format!("{item}: empty address"));
    }
    let normalised = if address.contains('@') {
        Address::parse_path(address).map(|a| a.to_string())
    } else {
        Address::new(address, "localhost").map(|_| address.to_string())
    };
    normalised
        .map(|a| format!("{direct}{a}"))
        .map_err(|e| format!("invalid target {item:?}: {e}"))
}

/// A target as (mailbox only, local, domain); a bare one is in `domain`.
fn split_target<'a>(target: &'a str, domain: &'a str) -> (bool, &'a str, &'a str) {
    let (direct, address) = match target.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, target),
    };
    match address.rsplit_once('@') {
        Some((local, domain)) => (direct, local, domain),
        None => (direct, address, domain),
    }
}

/// Expands the recipient `local@domain` into the mailboxes and outside
/// addresses that receive its mail, each once (compared without regard to
/// case), in the order first met.
///
/// An alias (`local@domain`, then bare `local`) is looked up first, then a
/// user account; a user's forward is followed, and their own mailbox kept
/// when the forward says so. An address met again while it is still being
/// expanded is a loop and skipped; if nothing is left, the result is
/// [`ExpandError::Loop`]. A member of an alias that is neither an alias nor
/// a user is skipped with a warning, so one stale entry does not stop a
/// whole list.
pub fn expand(
    aliases: &Aliases,
    dir: &impl Directory,
    local: &str,
    domain: &str,
) -> Result<Vec<Target>, ExpandError> {
    let mut walk = Walk {
        aliases,
        dir,
        out: Vec::new(),
        delivered: HashSet::new(),
        visited: HashSet::new(),
        visited_accounts: HashSet::new(),
        active: Vec::new(),
        looped: false,
    };
    walk.address(local, &domain.to_ascii_lowercase(), 0)?;
    if walk.out.is_empty() {
        return Err(if walk.looped {
            ExpandError::Loop
        } else {
            ExpandError::NoSuchUser
        });
    }
    Ok(walk.out)
}

struct Walk<'a, D> {
    aliases: &'a Aliases,
    dir: &'a D,
    out: Vec<Target>,
    /// Folded addresses already in `out`.
    delivered: HashSet<String>,
    /// Folded addresses already expanded: everything they lead to is in
    /// `out` (or on its way, for those still `active`), so a second visit
    /// adds nothing and big overlapping lists stay cheap.
    visited: HashSet<String>,
    visited_accounts: HashSet<String>,
    /// The addresses being expanded, outermost first.
    active: Vec<String>,
    looped: bool,
}

impl<D: Directory> Walk<'_, D> {
    fn address(&mut self, local: &str, domain: &str, depth: usize) -> Result<(), ExpandError> {
        if depth > MAX_DEPTH {
            return Err(ExpandError::TooDeep);
        }
        if !self.dir.serves(domain) {
            return self.emit(Target::External(format!("{local}@{domain}")));
        }
        let key = fold(&format!("{local}@{domain}"));
        if self.active.contains(&key) {
            self.looped = true;
            return Ok(());
        }
        if !self.visited.insert(key.clone()) {
            return Ok(());
        }
        let Some(targets) = self.aliases.lookup(local, domain) else {
            if !self.account(local, domain, depth, true)? && depth > 0 {
                log::warn!("aliases: {local}@{domain} is neither an alias nor a user; skipped");
            }
            return Ok(());
        };
        self.active.push(key.clone());
        for target in targets {
            let (direct, t_local, t_domain) = split_target(target, domain);
            let is_self = fold(&format!("{t_local}@{t_domain}")) == key;
            let found = if direct || is_self {
                // `\name`, or the alias naming itself: the user's own mailbox.
                self.account(t_local, t_domain, depth + 1, !direct)?
            } else {
                self.address(t_local, t_domain, depth + 1)?;
                true
            };
            if !found {
                log::warn!(
                    "aliases: {local}@{domain} lists {target}, which is not a user; skipped"
                );
            }
        }
        self.active.pop();
        Ok(())
    }

    /// Delivers to the user with this address, following their forward if
    /// `follow_forward`; false if there is no such user.
    fn account(
        &mut self,
        local: &str,
        domain: &str,
        depth: usize,
        follow_forward: bool,
    ) -> Result<bool, ExpandError> {
        if depth > MAX_DEPTH {
            return Err(ExpandError::TooDeep);
        }
        let Some(account) = self.dir.account(local, domain) else {
            return Ok(false);
        };
        if !follow_forward {
            self.emit(Target::Mailbox(account))?;
            return Ok(true);
        }
        if !self.visited_accounts.insert(fold(&account)) {
            return Ok(true);
        }
        let Some(forward) = self.dir.forward(&account) else {
            self.emit(Target::Mailbox(account))?;
            return Ok(true);
        };
        if forward.keep {
            self.emit(Target::Mailbox(account.clone()))?;
        }
        let key = fold(&format!("{local}@{domain}"));
        let pushed = !self.active.contains(&key);
        if pushed {
            self.active.push(key);
        }
        for target in &forward.to {
            if target.eq_ignore_ascii_case(&account) {
                self.emit(Target::Mailbox(account.clone()))?;
                continue;
            }
            let (_, t_local, t_domain) = split_target(target, domain);
            self.address(t_local, t_domain, depth + 1)?;
        }
        if pushed {
            self.active.pop();
        }
        Ok(true)
    }

    fn emit(&mut self, target: Target) -> Result<(), ExpandError> {
        let (Target::Mailbox(address) | Target::External(address)) = &target;
        if !self.delivered.insert(fold(address)) {
            return Ok(());
        }
        if self.out.len() >= MAX_TARGETS {
            return Err(ExpandError::TooMany);
        }
        self.out.push(target);
        Ok(())
    }
}

/// Sets `name`'s targets in the file at `path`, replacing its existing
/// entry in place or appending a new one; every other line (comments,
/// blank lines, layout) stays as it was. Comment lines inside the replaced
/// entry go with it. The file is created if missing.
pub fn add(path: &Path, name: &str, targets: &[String]) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() || name.contains(|c: char| c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(format!("invalid alias name {name:?}"));
    }
    if let Some(bad) = targets
        .iter()
        .find(|t| t.trim().is_empty() || t.contains(|c: char| c == ',' || c.is_control()))
    {
        return Err(format!(
            "invalid target {bad:?}: give one address per target"
        ));
    }
    let targets: Vec<&str> = targets.iter().map(|t| t.trim()).collect();
    let rendered = render(name, &targets, "\n");
    // The same parser as for the whole file, so what is written reads back.
    let parsed = parse_entries(&rendered).map_err(|e| e.replacen("line 1: ", "", 1))?;
    let key = &parsed[0].name;
    edit(path, true, |text, entries| {
        let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let rendered = render(name, &targets, eol);
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        Some(match entries.iter().find(|e| &e.name == key) {
            Some(entry) => {
                let mut out = lines[..entry.first_line].concat();
                out.push_str(&rendered);
                out.push_str(&lines[entry.last_line + 1..].concat());
                out
            }
            None => {
                let mut out = text.to_string();
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push_str(eol);
                }
                out.push_str(&rendered);
                out
            }
        })
    })
    .map(|_| ())
}

/// Removes `name`'s entry from the file at `path`, keeping every other
/// line; false if there was no such entry.
pub fn remove(path: &Path, name: &str) -> Result<bool, String> {
    let key = fold(name.trim());
    edit(path, false, |text, entries| {
        let entry = entries.iter().find(|e| e.name == key)?;
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let mut out = lines[..entry.first_line].concat();
        out.push_str(&lines[entry.last_line + 1..].concat());
        Some(out)
    })
}

/// The parsed file and its text ("" when missing).
fn read(disk: &dyn Disk, path: &Path) -> Result<(Aliases, String), String> {
    let text = disk.read(path).and_then(|bytes| {
        String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    });
    match text {
        Ok(text) => Aliases::parse(&text)
            .map(|aliases| (aliases, text))
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((Aliases::default(), String::new())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Where the last version of `path` that parsed is kept, so a damaged
/// aliases file never takes the lists out of service: `PATH.last-good`.
pub fn last_good_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".last-good");
    path.with_file_name(name)
}

/// Keeps `text` (which parsed) as the last good copy, when it differs.
fn keep_last_good(disk: &dyn Disk, path: &Path, text: &str) -> io::Result<()> {
    let last_good = last_good_path(path);
    if disk
        .read(&last_good)
        .is_ok_and(|kept| kept == text.as_bytes())
    {
        return Ok(());
    }
    durable::replace_file(disk, &last_good, text.as_bytes())
}

/// `name: a, b, c`, wrapped onto tab-indented continuation lines.
fn render(name: &str, targets: &[&str], eol: &str) -> String {
    const WIDTH: usize = 76;
    let mut out = format!("{name}:");
    let mut column = out.len();
    for (i, target) in targets.iter().enumerate() {
        let comma = if i + 1 < targets.len() { "," } else { "" };
        if i > 0 && column + 1 + target.len() + comma.len() > WIDTH {
            out.push_str(eol);
            out.push('\t');
            column = 8;
        } else {
            out.push(' ');
            column += 1;
        }
        out.push_str(target);
        out.push_str(comma);
        column += target.len() + comma.len();
    }
    out.push_str(eol);
    out
}

/// Read-modify-write of the aliases file under an exclusive lock; `change`
/// returns the new text, or `None` to leave the file alone. Returns whether
/// the file was written.
fn edit(
    path: &Path,
    create: bool,
    change: impl FnOnce(&str, &[Entry]) -> Option<String>,
) -> Result<bool, String> {
    let Some(file) = lock(path, create)? else {
        return Ok(false);
    };
    let text =
        io::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // A broken file is not edited: the change could land in the wrong place.
    let entries = parse_entries(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(new_text) = change(&text, &entries) else {
        return Ok(false);
    };
    let mode = file.metadata().map(|m| m.mode() & 0o7777).ok();
    durable::replace_file(disk::system(), path, new_text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if let Err(e) = keep_last_good(&**disk::system(), path, &new_text) {
        log::warn!("cannot keep a last good copy of {}: {e}", path.display());
    }
    // The durable write makes a private file; an aliases file is usually
    // readable by others (and by the server running as another user).
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot restore the mode of {}: {e}", path.display()))?;
    }
    Ok(true)
}

/// Opens `path` and locks it exclusively. The file is replaced by rename,
/// so after waiting for the lock it checks that the path still names the
/// locked file, and tries again if not. `None` when it does not exist and
/// `create` is false.
fn lock(path: &Path, create: bool) -> Result<Option<File>, String> {
    let fail = |e: io::Error| format!("cannot lock {}: {e}", path.display());
    loop {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            // A new file's mode is fixed, not the umask's: the owner (the
            // server's user) reads and writes it, its group may read it.
            .mode(0o640)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        file.lock().map_err(fail)?;
        let locked = file.metadata().map_err(fail)?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == locked.ino() && now.dev() == locked.dev() => {
                return Ok(Some(file))
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(e)),
        }
    }
}

/// The aliases as the server sees them: re-read only when the file changes,
/// and the last good version kept in service if a new one does not parse
/// (at start, the copy kept in `aliases.last-good`), so mail keeps flowing.
pub struct AliasesCache {
    disk: Arc<dyn Disk>,
    path: PathBuf,
    stamp: Option<Metadata>,
    aliases: Aliases,
    /// The file was damaged at start and had no last good copy: an
    /// unknown name may be an alias after all until it is repaired.
    no_good_copy: bool,
}

/// A version of the aliases file other than the one held, as read on the
/// blocking pool.
pub struct Checked {
    stamp: Option<Metadata>,
    aliases: Result<Aliases, String>,
}

/// Reads the file (version `stamp`), keeping a copy of it as the last good one.
fn read_keeping(disk: &dyn Disk, path: &Path, stamp: Option<Metadata>) -> Result<Aliases, String> {
    let (aliases, text) = read(disk, path)?;
    if stamp.is_some() {
        if let Err(e) = keep_last_good(disk, path, &text) {
            log::debug!("cannot keep a last good copy of {}: {e}", path.display());
        }
    }
    Ok(aliases)
}

impl AliasesCache {
    /// Reads the file on the calling thread: this is start-up.
    pub fn open(disk: &Arc<dyn Disk>, path: &Path) -> Self {
        let stamp = disk.metadata(path).ok();
        let mut no_good_copy = false;
        let aliases = match read_keeping(&**disk, path, stamp) {
            Ok(aliases) => aliases,
            Err(e) => {
                let last_good = last_good_path(path);
                match read(&**disk, &last_good) {
                    Ok((aliases, _)) => {
                        log::error!(
                            "{e}; the aliases file is damaged: serving its last good copy ({} names, {}) until it is repaired",
                            aliases.len(),
                            last_good.display()
                        );
                        aliases
                    }
                    Err(e2) => {
                        log::error!(
                            "{e}; the aliases file is damaged and there is no last good copy ({e2}): mail for unknown names is deferred until it is repaired"
                        );
                        no_good_copy = true;
                        Aliases::default()
                    }
                }
            }
        };
        AliasesCache {
            disk: disk.clone(),
            path: path.to_path_buf(),
            stamp,
            aliases,
            no_good_copy,
        }
    }

    /// Whether the file is damaged with no good copy in service.
    pub fn without_good_copy(&self) -> bool {
        self.no_good_copy
    }

    /// The file's look, to run on the blocking pool: reads it only when
    /// it is not the version held.
    pub fn check(&self) -> impl FnOnce() -> Option<Checked> + Send + 'static {
        let (disk, path, held) = (self.disk.clone(), self.path.clone(), self.stamp);
        move || {
            let stamp = disk.metadata(&path).ok();
            (stamp != held).then(|| Checked {
                stamp,
                aliases: read_keeping(&*disk, &path, stamp),
            })
        }
    }

    /// Takes what [`AliasesCache::check`] found into service.
    pub fn apply(&mut self, checked: Option<Checked>) {
        let Some(checked) = checked else {
            return;
        };
        match checked.aliases {
            Ok(aliases) => {
                log::info!("aliases reloaded: {} names", aliases.len());
                self.aliases = aliases;
                self.no_good_copy = false;
            }
            Err(e) => {
                log::error!(
                    "{e}; the aliases file is damaged: keeping the last good copy in service"
                )
            }
        }
        self.stamp = checked.stamp;
    }

    /// Takes any change to the file into service, looking on the blocking pool.
    pub async fn refresh(cache: &std::cell::RefCell<Self>) {
        let check = cache.borrow().check();
        let checked = smol::unblock(check).await;
        cache.borrow_mut().apply(checked);
    }

    /// The aliases as last refreshed.
    pub fn current(&self) -> &Aliases {
        &self.aliases
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Dir {
        domains: Vec<&'static str>,
        users: Vec<&'static str>,
        forwards: HashMap<String, Forward>,
    }

    impl Dir {
        fn new(users: &[&'static str]) -> Dir {
            Dir {
                domains: vec!["club.example", "home.example"],
                users: users.to_vec(),
                forwards: HashMap::new(),
            }
        }

        fn forward(mut self, account: &str, to: &[&str], keep: bool) -> Dir {
            let to = to.iter().map(|s| s.to_string()).collect();
            self.forwards.insert(account.into(), Forward { to, keep });
            self
        }
    }

    impl Directory for Dir {
        fn serves(&self, domain: &str) -> bool {
            self.domains.contains(&domain)
        }
        fn account(&self, local: &str, domain: &str) -> Option<String> {
            let account = format!("{local}@{domain}").to_ascii_lowercase();
            self.users.contains(&account.as_str()).then_some(account)
        }
        fn forward(&self, account: &str) -> Option<Forward> {
            self.forwards.get(account).cloned()
        }
    }

    fn mailbox(a: &str) -> Target {
        Target::Mailbox(a.into())
    }

    fn external(a: &str) -> Target {
        Target::External(a.into())
    }

    const USERS: &[&str] = &[
        "alice@club.example",
        "bob@club.example",
        "carol@club.example",
        "alice@home.example",
    ];

    #[test]
    fn nested_list_with_duplicates_and_external_member() {
        let aliases = Aliases::parse(
            "# the board\n\
             board: alice, <Bob@Club.Example>\n\
             members: board,\n\
             \t  carol, ALICE,\n\
             \t  # dave left\n\
             \t  erin@Elsewhere.Example, erin@elsewhere.example\n",
        )
        .unwrap();
        let dir = Dir::new(USERS);
        assert_eq!(
            expand(&aliases, &dir, "Members", "club.example").unwrap(),
            [
                mailbox("alice@club.example"),
                mailbox("bob@club.example"),
                mailbox("carol@club.example"),
                external("erin@elsewhere.example"),
            ]
        );
        assert_eq!(
            aliases.targets("MEMBERS").unwrap(),
            [
                "board",
                "carol",
                "ALICE",
                "erin@elsewhere.example",
                "erin@elsewhere.example"
            ]
        );
        assert_eq!(aliases.names().collect::<Vec<_>>(), ["board", "members"]);
    }

    #[test]
    fn users_without_aliases_and_unknown_addresses() {
        let aliases = Aliases::default();
        let dir = Dir::new(USERS);
        assert_eq!(
            expand(&aliases, &dir, "Alice", "Club.Example").unwrap(),
            [mailbox("alice@club.example")]
        );
        assert_eq!(
            expand(&aliases, &dir, "nobody", "club.example"),
            Err(ExpandError::NoSuchUser)
        );
        // A stale member is skipped; a list of nothing but stale members is unknown.
        let aliases = Aliases::parse("list: gone, bob\nstale: gone\n").unwrap();
        assert_eq!(
            expand(&aliases, &dir, "list", "club.example").unwrap(),
            [mailbox("bob@club.example")]
        );
        assert_eq!(
            expand(&aliases, &dir, "stale", "club.example"),
            Err(ExpandError::NoSuchUser)
        );
    }

    #[test]
    fn loops_are_cut_and_reported_when_nothing_is_left() {
        let dir = Dir::new(USERS);
        let aliases = Aliases::parse("a: b\nb: c, bob\nc: a\n").unwrap();
        assert_eq!(
            expand(&aliases, &dir, "a", "club.example").unwrap(),
            [mailbox("bob@club.example")]
        );
        let aliases = Aliases::parse("a: b\nb: a\n").unwrap();
        assert_eq!(
            expand(&aliases, &dir, "a", "club.example"),
            Err(ExpandError::Loop)
        );
        let dir = Dir::new(USERS)
            .forward("alice@club.example", &["bob@club.example"], false)
            .forward("bob@club.example", &["alice@club.example"], false);
        assert_eq!(
            expand(&Aliases::default(), &dir, "alice", "club.example"),
            Err(ExpandError::Loop)
        );
    }

    #[test]
    fn domain_specific_names_win_over_bare_ones() {
        let aliases = Aliases::parse("info: alice\ninfo@Home.Example: bob@club.example\n").unwrap();
        let dir = Dir::new(USERS);
        assert_eq!(
            expand(&aliases, &dir, "info", "club.example").unwrap(),
            [mailbox("alice@club.example")]
        );
        // A bare target stays in the domain being expanded.
        assert_eq!(
            expand(&aliases, &dir, "INFO", "home.example").unwrap(),
            [mailbox("bob@club.example")]
        );
        let aliases = Aliases::parse("info: alice\n").unwrap();
        assert_eq!(
            expand(&aliases, &dir, "info", "home.example").unwrap(),
            [mailbox("alice@home.example")]
        );
        assert_eq!(
            expand(&aliases, &dir, "bob", "elsewhere.example").unwrap(),
            [external("bob@elsewhere.example")]
        );
    }

    #[test]
    fn forwards_with_and_without_keep() {
        let aliases = Aliases::parse("team: alice, carol\n").unwrap();
        let dir = Dir::new(USERS)
            .forward("alice@club.example", &["alice@phone.example"], true)
            .forward(
                "carol@club.example",
                &["carol@phone.example", "bob@club.example"],
                false,
            );
        assert_eq!(
            expand(&aliases, &dir, "team", "club.example").unwrap(),
            [
                mailbox("alice@club.example"),
                external("alice@phone.example"),
                external("carol@phone.example"),
                mailbox("bob@club.example"),
            ]
        );
        // A forward to a local alias is expanded again.
        let dir = Dir::new(USERS).forward("bob@club.example", &["team@club.example"], false);
        assert_eq!(
            expand(&aliases, &dir, "bob", "club.example").unwrap(),
            [mailbox("alice@club.example"), mailbox("carol@club.example")]
        );
    }

    #[test]
    fn an_alias_naming_itself_delivers_to_its_user() {
        let aliases = Aliases::parse("alice: alice, alice@elsewhere.example\n").unwrap();
        let dir = Dir::new(USERS);
        assert_eq!(
            expand(&aliases, &dir, "alice", "club.example").unwrap(),
            [
                mailbox("alice@club.example"),
                external("alice@elsewhere.example")
            ]
        );
        // The backslash form skips the forward too.
        let aliases = Aliases::parse("bob: \\bob, carol\n").unwrap();
        let dir = Dir::new(USERS).forward("bob@club.example", &["x@elsewhere.example"], false);
        assert_eq!(
            expand(&aliases, &dir, "bob", "club.example").unwrap(),
            [mailbox("bob@club.example"), mailbox("carol@club.example")]
        );
    }

    #[test]
    fn depth_and_size_limits() {
        let chain: String = (0..=MAX_DEPTH + 1)
            .map(|i| format!("a{i}: a{}\n", i + 1))
            .collect();
        let aliases = Aliases::parse(&chain).unwrap();
        let dir = Dir::new(USERS);
        assert_eq!(
            expand(&aliases, &dir, "a0", "club.example"),
            Err(ExpandError::TooDeep)
        );
        let many: Vec<String> = (0..=MAX_TARGETS)
            .map(|i| format!("u{i}@elsewhere.example"))
            .collect();
        let aliases = Aliases::parse(&format!("big: {}\n", many.join(", "))).unwrap();
        assert_eq!(
            expand(&aliases, &dir, "big", "club.example"),
            Err(ExpandError::TooMany)
        );
        assert_eq!(ExpandError::TooMany.enhanced(), "5.5.3");
    }

    #[test]
    fn overlapping_lists_stay_cheap() {
        // Nine layers of ten lists that each name all ten below: 10^9
        // paths, but each list is expanded once.
        let mut text = String::new();
        for layer in 0..9 {
            for i in 0..10 {
                let below: Vec<String> = (0..10).map(|j| format!("l{}x{j}", layer + 1)).collect();
                text += &format!("l{layer}x{i}: {}\n", below.join(", "));
            }
        }
        for j in 0..10 {
            text += &format!("l9x{j}: bob\n");
        }
        let aliases = Aliases::parse(&text).unwrap();
        assert_eq!(
            expand(&aliases, &Dir::new(USERS), "l0x0", "club.example").unwrap(),
            [mailbox("bob@club.example")]
        );
    }

    #[test]
    fn required_names() {
        let dir = Dir::new(USERS);
        let aliases = Aliases::default();
        assert_eq!(
            aliases.missing_required(&dir, "club.example"),
            ["postmaster", "MAILER-DAEMON"]
        );
        let aliases = Aliases::parse("postmaster: alice\nmailer-daemon: postmaster\n").unwrap();
        assert!(aliases.missing_required(&dir, "club.example").is_empty());
        let aliases = Aliases::parse("postmaster: nobody\nMAILER-DAEMON: alice\n").unwrap();
        assert_eq!(
            aliases.missing_required(&dir, "club.example"),
            ["postmaster"]
        );
    }

    #[test]
    fn parse_errors_name_the_line() {
        for (text, expected) in [
            ("a: b\nnocolon\n", "line 2: missing colon"),
            ("a: b\n: b\n", "line 2: empty name"),
            ("a: b\n\nc:\n\nd: e\n", "line 3: c has no targets"),
            ("a: b\nc: ,\n", "line 2: c has no targets"),
            ("a:\n\n", "line 1: a has no targets"),
            (
                "x: a\nlist: b,\n  |/usr/bin/prog\n",
                "line 3: |/usr/bin/prog: delivery to a command",
            ),
            (
                "x: \"|prog arg\"\n",
                "line 1: \"|prog arg\": delivery to a command",
            ),
            (
                "x: /var/log/mail\n",
                "line 1: /var/log/mail: delivery to a file",
            ),
            (
                "x: :INCLUDE:/etc/list\n",
                "line 1: :INCLUDE:/etc/list: :include:",
            ),
            ("a: b\nA: c\n", "line 2: duplicate name a (first on line 1)"),
            (
                "a@x.example: b\nA@X.EXAMPLE: c\n",
                "line 2: duplicate name a@x.example",
            ),
            (
                "# start\n  b\n",
                "line 2: continuation line without an entry",
            ),
            (
                "a: b\n\n  c\n",
                "line 3: continuation line without an entry",
            ),
            ("a b: c\n", "line 1: invalid name"),
            ("a: b c\n", "line 1: invalid target"),
            ("a: <>\n", "line 1: <>: empty address"),
            ("a: b@-x-\n", "line 1: invalid target"),
        ] {
            let err = Aliases::parse(text).unwrap_err();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
        // CRLF files, indented comments and trailing commas are fine.
        let aliases = Aliases::parse("a: b,\r\n  # c,\r\n\td,\r\n").unwrap();
        assert_eq!(aliases.targets("a").unwrap(), ["b", "d"]);
    }

    #[test]
    fn load_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Aliases::load(&dir.path().join("aliases"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn add_and_remove_keep_comments_and_layout() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        let original = "# Club aliases\n\n# the board\nboard: alice,\n\tbob\n\ninfo:   alice\n";
        fs::write(&path, original).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();

        add(
            &path,
            "board",
            &["carol".into(), "dave@elsewhere.example".into()],
        )
        .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# Club aliases\n\n# the board\nboard: carol, dave@elsewhere.example\n\ninfo:   alice\n"
        );
        add(&path, "Sales@Club.Example", &["<bob>".into()]).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("info:   alice\nSales@Club.Example: <bob>\n"));
        assert_eq!(
            Aliases::load(&path)
                .unwrap()
                .targets("sales@club.example")
                .unwrap(),
            ["bob"]
        );

        assert!(remove(&path, "BOARD").unwrap());
        assert!(!remove(&path, "board").unwrap());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# Club aliases\n\n# the board\n\ninfo:   alice\nSales@Club.Example: <bob>\n"
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);

        for bad in [
            ("x", vec!["|prog".to_string()]),
            ("x", vec![]),
            ("x", vec!["a, b".to_string()]),
            ("x y", vec!["a".to_string()]),
            ("x:", vec!["a".to_string()]),
        ] {
            assert!(add(&path, bad.0, &bad.1).is_err(), "{bad:?}");
        }
        assert_eq!(Aliases::load(&path).unwrap().len(), 2);
    }

    #[test]
    fn add_wraps_long_lists_and_creates_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        assert!(!remove(&path, "x").unwrap());
        assert!(!path.exists());
        let members: Vec<String> = (0..30).map(|i| format!("member{i}@club.example")).collect();
        add(&path, "everyone", &members).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.lines().count() > 1);
        assert!(text.lines().all(|l| l.len() <= 76 + 8));
        assert_eq!(
            Aliases::load(&path).unwrap().targets("everyone").unwrap(),
            members
        );
    }

    #[test]
    fn add_refuses_to_edit_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        fs::write(&path, "a: b\nbroken\n").unwrap();
        let err = add(&path, "c", &["d".into()]).unwrap_err();
        assert!(err.contains("line 2: missing colon"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "a: b\nbroken\n");
    }

    #[test]
    fn cache_reloads_and_keeps_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        let disk: Arc<dyn Disk> = Arc::new(disk::Fs);
        let cache = std::cell::RefCell::new(AliasesCache::open(&disk, &path));
        let len = || {
            smol::block_on(AliasesCache::refresh(&cache));
            cache.borrow().current().len()
        };
        assert_eq!(len(), 0);
        add(&path, "a", &["b".into()]).unwrap();
        assert_eq!(len(), 1);
        fs::write(&path, "broken\n").unwrap();
        assert_eq!(len(), 1);
        // At the next start too, from the copy kept beside the file.
        assert_eq!(AliasesCache::open(&disk, &path).current().len(), 1);
        assert_eq!(fs::read_to_string(&path).unwrap(), "broken\n");
    }
}
