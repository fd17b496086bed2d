//! Away messages (vacation replies, RFC 3834): a member's automatic answer
//! to mail that arrives while they are away.
//!
//! * Each member's setting is a small record in their maildir
//!   (`postbox-away`): on or off, subject, text, and when it ends. The
//!   admin verb `user away` (and later a web page) changes it with
//!   [`set`] and [`turn_off`]; the server reads it as mail arrives.
//! * Whom the member answered when is another record there
//!   (`postbox-away-answered`), written only by the server: one reply per
//!   sender in [`AWAY_REPLY_INTERVAL`], at most [`AWAY_ANSWERED_SENDERS`]
//!   senders remembered. A new away message starts it afresh.
//! * `rule`: whether a message earns a reply (pure); `reply`: the reply.
//! * [`answer`]: after a delivery, the replies it earns go out as delivery
//!   reports do (null sender, signed, local ones into the mailbox).

pub mod reply;
pub mod rule;

use crate::limits::{
    AWAY_ANSWERED_SENDERS, AWAY_HEADER_SECTION, AWAY_MAX_SUBJECT, AWAY_MAX_TEXT,
    AWAY_REPLY_INTERVAL, MAX_MESSAGE_LINE,
};
use crate::store::disk::{self, Disk};
use crate::store::maildir::Incoming;
use crate::store::record;
use crate::wire::address::Address;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const SETTING_FILE: &str = "postbox-away";
const SETTING_KIND: [u8; 4] = *b"PBAW";
const ANSWERED_FILE: &str = "postbox-away-answered";
const ANSWERED_KIND: [u8; 4] = *b"PBAA";
const VERSION: u16 = 1;

/// A member's away message.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Away {
    pub on: bool,
    /// Empty: `Auto: ` and the original's subject.
    pub subject: String,
    pub text: String,
    /// Unix seconds from which it answers no more; `None`: until turned off.
    pub until: Option<u64>,
    /// Unix seconds when it was set: a new message answers everyone anew.
    pub set_at: u64,
}

/// Whom a member's away message answered, and when.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Answered {
    /// The [`Away::set_at`] of the message these answers were made with.
    pub set_at: u64,
    /// (sender's hash, Unix seconds answered), oldest first.
    pub senders: VecDeque<(u64, u64)>,
}

impl Answered {
    /// Whether `sender` was answered less than [`AWAY_REPLY_INTERVAL`]
    /// before `now` by the message set at `set_at`.
    pub fn recently(&self, set_at: u64, sender: &str, now: u64) -> bool {
        let hash = crate::spam::book::hash(sender);
        self.set_at == set_at
            && self.senders.iter().any(|&(h, when)| {
                h == hash && now.saturating_sub(when) < AWAY_REPLY_INTERVAL.as_secs()
            })
    }

    /// Notes an answer to `sender` at `now`, forgetting answers of an
    /// older message, and the oldest beyond the bound.
    pub fn note(&mut self, set_at: u64, sender: &str, now: u64) {
        if self.set_at != set_at {
            *self = Answered {
                set_at,
                senders: VecDeque::new(),
            };
        }
        let hash = crate::spam::book::hash(sender);
        self.senders.retain(|&(h, _)| h != hash);
        while self.senders.len() >= AWAY_ANSWERED_SENDERS {
            self.senders.pop_front();
        }
        self.senders.push_back((hash, now));
    }
}

fn setting_path(mailbox: &Path) -> PathBuf {
    mailbox.join(SETTING_FILE)
}

/// Blocking: a member's away message; none when it is missing, or damaged
/// (then set aside: the member sets it again, mail is never held up).
pub fn load(disk: &dyn Disk, mailbox: &Path) -> Option<Away> {
    record::load_or_start_afresh(disk, &setting_path(mailbox), SETTING_KIND, VERSION)
}

/// Checks an away message as a member gives it.
pub fn validate(subject: &str, text: &str) -> Result<(), String> {
    if subject.len() > AWAY_MAX_SUBJECT {
        return Err(format!("the subject is over {AWAY_MAX_SUBJECT} bytes"));
    }
    if subject.chars().any(char::is_control) {
        return Err("the subject must be one line".into());
    }
    if text.trim().is_empty() {
        return Err("an away message needs a text".into());
    }
    if text.len() > AWAY_MAX_TEXT {
        return Err(format!("the text is over {AWAY_MAX_TEXT} bytes"));
    }
    if text.lines().any(|l| l.len() > MAX_MESSAGE_LINE) {
        return Err(format!(
            "a line of the text is over {MAX_MESSAGE_LINE} bytes"
        ));
    }
    Ok(())
}

/// Blocking: turns the away message of the member whose maildir is
/// `mailbox` on, with `subject` (empty: `Auto: ` and the original's),
/// `text`, and the end `until` (Unix seconds; `None`: until turned off).
pub fn set(
    mailbox: &Path,
    subject: &str,
    text: &str,
    until: Option<u64>,
    now: u64,
) -> Result<Away, String> {
    validate(subject, text)?;
    let away = Away {
        on: true,
        subject: subject.trim().to_string(),
        text: text.to_string(),
        until,
        set_at: now,
    };
    save(mailbox, &away)?;
    Ok(away)
}

/// Blocking: turns the away message off, keeping its text; `None` when
/// there was none on.
pub fn turn_off(mailbox: &Path) -> Result<Option<Away>, String> {
    let path = setting_path(mailbox);
    let current: Option<Away> = record::load(disk::system(), &path, SETTING_KIND, VERSION)
        .map_err(|e| format!("cannot read the away message: {e}"))?;
    match current {
        Some(away) if away.on => {
            let off = Away { on: false, ..away };
            save(mailbox, &off)?;
            Ok(Some(off))
        }
        _ => Ok(None),
    }
}

fn save(mailbox: &Path, away: &Away) -> Result<(), String> {
    record::save(
        disk::system(),
        &setting_path(mailbox),
        SETTING_KIND,
        VERSION,
        away,
    )
    .map_err(|e| format!("cannot write the away message: {e}"))
}

/// `YYYY-MM-DD`: the day the member is back; replies stop at its start
/// (UTC). Unix seconds.
pub fn parse_date(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a date (YYYY-MM-DD)");
    let mut parts = text.splitn(3, '-');
    let mut number = |len: usize| {
        parts
            .next()
            .filter(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
            .ok_or_else(bad)
    };
    let (year, month, day) = (number(4)?, number(2)?, number(2)?);
    if !(1..=12).contains(&month) || day == 0 {
        return Err(bad());
    }
    let days = crate::ops::clock::days_from_civil(i64::from(year), month, day);
    // 31 February comes out as 3 March: refuse it.
    if crate::ops::clock::civil_from_days(days) != (i64::from(year), month, day) || days < 0 {
        return Err(bad());
    }
    Ok(days as u64 * 86_400)
}

/// `2026-12-24`, for showing an end.
pub fn format_date(unix: u64) -> String {
    let (y, m, d) = crate::ops::clock::civil_from_days((unix / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// How `user away NAME` shows a setting.
pub fn describe(away: Option<&Away>, now: u64) -> String {
    let Some(away) = away else {
        return "no away message".into();
    };
    let state = match (away.on, away.until) {
        (false, _) => "off".to_string(),
        (true, Some(until)) if now >= until => format!("ended {}", format_date(until)),
        (true, Some(until)) => format!("on until {}", format_date(until)),
        (true, None) => "on".to_string(),
    };
    let subject = match away.subject.as_str() {
        "" => "Auto: (the original's subject)",
        s => s,
    };
    format!("{state}\nsubject: {subject}\n\n{}", away.text.trim_end())
}

/// One reply to send: the member it is from, its name (spool file and
/// Message-ID), its text.
struct Earned {
    member: Address,
    name: String,
    text: Vec<u8>,
}

/// Read-modify-write of the answered records happens under this lock, so
/// two deliveries at once from one sender answer once.
static ANSWERED: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Blocking: the replies a delivery of `message` to `mailboxes` earns,
/// each noted as answered.
fn earn(
    message: &Incoming,
    sender: &str,
    mailboxes: &[(Address, PathBuf)],
    spam: bool,
    hostname: &str,
    names: &dyn Fn() -> String,
    log_prefix: &str,
) -> Vec<Earned> {
    let disk = disk::system();
    let away: Vec<(&Address, &PathBuf, Away)> = mailboxes
        .iter()
        .filter_map(|(member, dir)| Some((member, dir, load(disk, dir)?)))
        .filter(|(_, _, away)| away.on)
        .collect();
    if away.is_empty() {
        return Vec::new();
    }
    let original = match read_header(message) {
        Ok(header) => rule::Original::read(&header),
        Err(e) => {
            log::error!("{log_prefix}: no away reply: cannot read the message: {e}");
            return Vec::new();
        }
    };
    let now = SystemTime::now();
    let unix = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut earned = Vec::new();
    let _turn = ANSWERED.lock().unwrap_or_else(|e| e.into_inner());
    for (member, dir, away) in away {
        let path = dir.join(ANSWERED_FILE);
        let mut answered: Answered =
            record::load_or_start_afresh(disk, &path, ANSWERED_KIND, VERSION).unwrap_or_default();
        let arrival = rule::Arrival {
            sender,
            member: member.as_str(),
            original: &original,
            spam,
        };
        if let Err(why) = rule::decide(&away, &arrival, &answered, unix) {
            log::info!("{log_prefix}: no away reply from {member} to <{sender}>: {why}");
            continue;
        }
        answered.note(away.set_at, sender, unix);
        if let Err(e) = record::save(disk, &path, ANSWERED_KIND, VERSION, &answered) {
            // Unnoted, a reply could go again: better none.
            log::error!("{log_prefix}: no away reply from {member}: cannot note it: {e}");
            continue;
        }
        let name = names();
        let text = reply::compose(&reply::Reply {
            member: member.as_str(),
            to: sender,
            away: &away,
            original: &original,
            id: &name,
            hostname,
            now,
        });
        earned.push(Earned {
            member: member.clone(),
            name,
            text,
        });
    }
    earned
}

/// The header section of a spooled message, at most
/// [`AWAY_HEADER_SECTION`] bytes of it.
fn read_header(message: &Incoming) -> std::io::Result<Vec<u8>> {
    let mut header = Vec::new();
    message
        .reopen()?
        .take(AWAY_HEADER_SECTION as u64)
        .read_to_end(&mut header)?;
    if let Some(end) = header.windows(4).position(|w| w == b"\r\n\r\n") {
        header.truncate(end + 2);
    }
    Ok(header)
}

/// After `message` (from envelope sender `sender`) went into the
/// `mailboxes`, sends the away replies it earns. The message comes back.
/// `spam`: the copy delivered was tagged as spam (it earns nothing).
pub async fn answer(
    outbox: &crate::queue::Context,
    message: Incoming,
    sender: &str,
    mailboxes: &[(Address, PathBuf)],
    spam: bool,
    log_prefix: &str,
) -> Incoming {
    // Nothing answers the null sender: no need to look.
    if sender.is_empty() || mailboxes.is_empty() {
        return message;
    }
    let (sender_owned, boxes) = (sender.to_string(), mailboxes.to_vec());
    let hostname = outbox.config.hostname.clone();
    let prefix = log_prefix.to_string();
    // Names are made here: the maker is the executor's.
    let names: Vec<String> = (0..mailboxes.len())
        .map(|_| outbox.store.names.next())
        .collect();
    let (message, earned) = smol::unblock(move || {
        let next = std::cell::RefCell::new(names.into_iter());
        let name = || next.borrow_mut().next().unwrap_or_default();
        let earned = earn(
            &message,
            &sender_owned,
            &boxes,
            spam,
            &hostname,
            &name,
            &prefix,
        );
        (message, earned)
    })
    .await;
    for Earned { member, name, text } in earned {
        let sent = crate::queue::deliver_report(outbox, member.as_str(), sender, name, text).await;
        match sent {
            Ok(()) => log::info!("{log_prefix}: away reply from {member} to <{sender}>"),
            Err(e) => {
                log::error!("{log_prefix}: away reply from {member} to <{sender}> failed: {e}")
            }
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-02"), Ok(86_400));
        assert_eq!(
            parse_date("2026-12-24").map(format_date).as_deref(),
            Ok("2026-12-24")
        );
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-12-24",
            "2026-1-2",
            "soon",
            "2026-12-24x",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_show_off_and_a_damaged_setting() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = dir.path();
        assert!(load(&disk::Fs, mailbox).is_none());
        assert!(set(mailbox, "x", "", None, 5).is_err());
        assert!(set(mailbox, &"s".repeat(AWAY_MAX_SUBJECT + 1), "t", None, 5).is_err());
        let away = set(mailbox, " Away ", "Back on Monday.\n", Some(86_400), 5).unwrap();
        assert_eq!(load(&disk::Fs, mailbox), Some(away.clone()));
        assert_eq!(
            describe(Some(&away), 10),
            "on until 1970-01-02\nsubject: Away\n\nBack on Monday."
        );
        assert!(describe(Some(&away), 86_400).starts_with("ended 1970-01-02"));
        let off = turn_off(mailbox).unwrap().unwrap();
        assert!(!off.on && off.text == away.text);
        assert_eq!(turn_off(mailbox), Ok(None));
        std::fs::write(setting_path(mailbox), b"PBAW torn").unwrap();
        assert!(load(&disk::Fs, mailbox).is_none());
        let names: Vec<String> = std::fs::read_dir(mailbox)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("postbox-away.damaged-")),
            "{names:?}"
        );
    }
}
