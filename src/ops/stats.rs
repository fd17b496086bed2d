//! Traffic counters, like sendmail's mailstats: kept in RAM, written to
//! flash at most once a minute and at shutdown (kind to SD cards), shown
//! by `postbox stats` and the console's `stats`.

use crate::store::disk;
use crate::store::record;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const FILE: &str = "stats";
const KIND: [u8; 4] = *b"PBSS";
/// Version 3 added [`Stats::checks`]; versions 1 and 2 are carried over.
const VERSION: u16 = 3;

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// When counting started (Unix seconds).
    pub since: u64,
    /// When these figures were last written.
    pub saved: u64,
    pub received_messages: u64,
    pub received_bytes: u64,
    /// Copies put into local mailboxes (one per recipient).
    pub delivered_local: u64,
    pub logins: u64,
    pub failed_logins: u64,
    /// Connections per listener.
    pub connections: BTreeMap<String, u64>,
    /// Refusals by reply ("550 5.1.1", "-ERR [AUTH]", ...).
    pub rejected: BTreeMap<String, u64>,
    /// Copies handed to the outbound queue (one per remote recipient).
    pub queued: u64,
    /// Copies other servers accepted from the queue.
    pub sent: u64,
    /// Copies the queue gave up on (refused for good, or expired).
    pub bounced: u64,
    /// Copies judged spam (tagged or refused).
    pub spam: u64,
    /// Strangers' mail checked on arrival, by result ("spf=pass",
    /// "dkim=fail", "dmarc=none") and by what was done ("refused",
    /// "deferred", "tagged", "delivered").
    pub checks: BTreeMap<String, u64>,
}

/// The running server's counters: changed by every session, written to
/// flash by [`Counters::save`] when they changed, off the executor thread.
pub struct Counters {
    stats: RefCell<Stats>,
    changed: Cell<bool>,
    data_dir: PathBuf,
}

impl Counters {
    /// The saved counters (damaged ones set aside, see
    /// [`load_or_start_afresh`]), written back to `data_dir`.
    pub fn open(data_dir: &Path) -> Counters {
        Counters {
            stats: RefCell::new(load_or_start_afresh(data_dir)),
            changed: Cell::new(false),
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Updates the counters.
    pub fn count(&self, change: impl FnOnce(&mut Stats)) {
        change(&mut self.stats.borrow_mut());
        self.changed.set(true);
    }

    /// Writes the counters if they changed (or `always`, when asked).
    pub async fn save(&self, always: bool) {
        if !self.changed.replace(false) && !always {
            return;
        }
        let mut stats = self.stats.borrow().clone();
        stats.saved = now();
        let dir = self.data_dir.clone();
        if let Err(e) = smol::unblock(move || save(&dir, &stats)).await {
            log::error!("cannot save statistics: {e}");
        }
    }
}

/// A refusal as the server decided it: the code of the reply, never
/// read back from the text sent (a POP3 listing line may start "450 ").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// An SMTP 4xx/5xx reply and its enhanced status code (RFC 3463), if any.
    Smtp(u16, Option<&'a str>),
    /// A POP3 -ERR and its response code (RFC 2449), if any.
    Pop3(Option<&'a str>),
    /// An HTTP error status.
    Http(u16),
}

impl Refusal<'_> {
    /// The key in [`Stats::rejected`]: "550 5.1.1", "421", "-ERR [AUTH]", "-ERR".
    fn key(&self) -> String {
        match self {
            Refusal::Smtp(code, Some(enhanced)) => format!("{code} {enhanced}"),
            Refusal::Smtp(code, None) => code.to_string(),
            Refusal::Pop3(Some(code)) => format!("-ERR [{code}]"),
            Refusal::Pop3(None) => "-ERR".to_string(),
            Refusal::Http(status) => format!("HTTP {status}"),
        }
    }
}

/// The second format, read once and carried over.
#[derive(Deserialize)]
struct StatsV2 {
    since: u64,
    saved: u64,
    received_messages: u64,
    received_bytes: u64,
    delivered_local: u64,
    logins: u64,
    failed_logins: u64,
    connections: BTreeMap<String, u64>,
    rejected: BTreeMap<String, u64>,
    queued: u64,
    sent: u64,
    bounced: u64,
    spam: u64,
}

impl From<StatsV2> for Stats {
    fn from(old: StatsV2) -> Stats {
        Stats {
            since: old.since,
            saved: old.saved,
            received_messages: old.received_messages,
            received_bytes: old.received_bytes,
            delivered_local: old.delivered_local,
            logins: old.logins,
            failed_logins: old.failed_logins,
            connections: old.connections,
            rejected: old.rejected,
            queued: old.queued,
            sent: old.sent,
            bounced: old.bounced,
            spam: old.spam,
            checks: BTreeMap::new(),
        }
    }
}

impl From<StatsV1> for StatsV2 {
    fn from(old: StatsV1) -> StatsV2 {
        StatsV2 {
            since: old.since,
            saved: old.saved,
            received_messages: old.received_messages,
            received_bytes: old.received_bytes,
            delivered_local: old.delivered_local,
            logins: old.logins,
            failed_logins: old.failed_logins,
            connections: old.connections,
            rejected: old.rejected,
            queued: 0,
            sent: 0,
            bounced: 0,
            spam: 0,
        }
    }
}

/// The first format, read once and carried over.
#[derive(Deserialize)]
struct StatsV1 {
    since: u64,
    saved: u64,
    received_messages: u64,
    received_bytes: u64,
    delivered_local: u64,
    logins: u64,
    failed_logins: u64,
    connections: BTreeMap<String, u64>,
    rejected: BTreeMap<String, u64>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The saved counters, or fresh ones starting now.
pub fn load(data_dir: &Path) -> Result<Stats, String> {
    read(data_dir).map_err(|e| format!("cannot read statistics: {e}"))
}

/// For the server: damaged counters are set aside and counting starts
/// afresh, since they are never worth refusing mail over.
pub fn load_or_start_afresh(data_dir: &Path) -> Stats {
    read(data_dir).unwrap_or_else(|e| {
        record::start_afresh(disk::system(), &path(data_dir), &e);
        fresh()
    })
}

fn fresh() -> Stats {
    Stats {
        since: now(),
        ..Default::default()
    }
}

fn read(data_dir: &Path) -> Result<Stats, record::RecordError> {
    match record::load(disk::system(), &path(data_dir), KIND, VERSION) {
        Ok(Some(stats)) => Ok(stats),
        // Older formats carry over, each into the next.
        Err(record::RecordError::UnsupportedVersion(2)) => {
            let old = record::load::<StatsV2>(disk::system(), &path(data_dir), KIND, 2)?;
            Ok(old.map_or_else(fresh, Stats::from))
        }
        Err(record::RecordError::UnsupportedVersion(1)) => {
            let old = record::load::<StatsV1>(disk::system(), &path(data_dir), KIND, 1)?;
            Ok(old.map_or_else(fresh, |v1| Stats::from(StatsV2::from(v1))))
        }
        Ok(None) => Ok(fresh()),
        Err(e) => Err(e),
    }
}

pub fn save(data_dir: &Path, stats: &Stats) -> io::Result<()> {
    record::save(disk::system(), &path(data_dir), KIND, VERSION, stats)
}

impl Stats {
    /// Counts one refusal the server decided on, by its code.
    pub fn count_refusal(&mut self, refusal: Refusal<'_>) {
        *self.rejected.entry(refusal.key()).or_insert(0) += 1;
    }

    /// Counts one finding or outcome of the arrival checks.
    pub fn count_check(&mut self, what: &str) {
        *self.checks.entry(what.to_string()).or_insert(0) += 1;
    }

    /// The report `postbox stats` prints.
    pub fn report(&self) -> String {
        let date =
            |secs| super::clock::rfc5322_date(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        let saved = match self.saved {
            0 => "not saved yet".to_string(),
            secs => format!("saved {}", date(secs)),
        };
        let mut out = format!(
            "since {} ({saved})\nreceived: {} messages, {} bytes\ndelivered to mailboxes: {}\nqueued for other servers: {}, sent: {}, bounced: {}\njudged spam: {}\nlogins: {} ok, {} failed\n",
            date(self.since),
            self.received_messages,
            self.received_bytes,
            self.delivered_local,
            self.queued,
            self.sent,
            self.bounced,
            self.spam,
            self.logins,
            self.failed_logins
        );
        out.push_str("connections:");
        if self.connections.is_empty() {
            out.push_str(" none");
        }
        for (listener, n) in &self.connections {
            out.push_str(&format!(" {listener} {n};"));
        }
        out.push_str("\nrejected:");
        if self.rejected.is_empty() {
            out.push_str(" none");
        }
        for (reply, n) in &self.rejected {
            out.push_str(&format!("\n  {reply}: {n}"));
        }
        if !self.checks.is_empty() {
            out.push_str("\nchecks of strangers' mail:");
            for (what, n) in &self.checks {
                out.push_str(&format!(" {what} {n};"));
            }
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_code() {
        let mut s = Stats::default();
        s.count_refusal(Refusal::Smtp(550, Some("5.1.1")));
        s.count_refusal(Refusal::Smtp(550, Some("5.1.1")));
        s.count_refusal(Refusal::Smtp(452, Some("4.5.3")));
        s.count_refusal(Refusal::Smtp(421, None));
        s.count_refusal(Refusal::Pop3(Some("AUTH")));
        s.count_refusal(Refusal::Pop3(None));
        assert_eq!(s.rejected["550 5.1.1"], 2);
        assert_eq!(s.rejected["452 4.5.3"], 1);
        assert_eq!(s.rejected["421"], 1);
        assert_eq!(s.rejected["-ERR [AUTH]"], 1);
        assert_eq!(s.rejected["-ERR"], 1);
        assert_eq!(s.rejected.len(), 5);
    }

    /// Counters saved before the checks were counted still load.
    #[test]
    fn version_2_counters_carry_over() {
        #[derive(Serialize)]
        struct V2 {
            since: u64,
            saved: u64,
            received_messages: u64,
            received_bytes: u64,
            delivered_local: u64,
            logins: u64,
            failed_logins: u64,
            connections: BTreeMap<String, u64>,
            rejected: BTreeMap<String, u64>,
            queued: u64,
            sent: u64,
            bounced: u64,
            spam: u64,
        }
        let dir = tempfile::tempdir().unwrap();
        let old = V2 {
            since: 1,
            saved: 2,
            received_messages: 3,
            received_bytes: 4,
            delivered_local: 5,
            logins: 6,
            failed_logins: 7,
            connections: BTreeMap::from([("smtp".into(), 8)]),
            rejected: BTreeMap::new(),
            queued: 9,
            sent: 10,
            bounced: 11,
            spam: 12,
        };
        record::save(disk::system(), &path(dir.path()), KIND, 2, &old).unwrap();
        let stats = load(dir.path()).unwrap();
        assert_eq!(
            (stats.received_messages, stats.queued, stats.spam),
            (3, 9, 12)
        );
        assert!(stats.checks.is_empty());
        let mut stats = stats;
        stats.count_check("dmarc=pass");
        save(dir.path(), &stats).unwrap();
        assert_eq!(load(dir.path()).unwrap().checks["dmarc=pass"], 1);
    }

    #[test]
    fn counters_reach_flash_only_when_changed_or_asked() {
        smol::block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let counters = Counters::open(dir.path());
            counters.save(false).await;
            assert!(
                !path(dir.path()).exists(),
                "nothing changed, nothing written"
            );
            counters.count(|s| s.received_messages += 2);
            counters.save(false).await;
            assert_eq!(load(dir.path()).unwrap().received_messages, 2);
            std::fs::remove_file(path(dir.path())).unwrap();
            counters.save(false).await;
            assert!(!path(dir.path()).exists(), "already saved");
            counters.save(true).await;
            assert_eq!(load(dir.path()).unwrap().received_messages, 2);
        });
    }

    #[test]
    fn saved_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = load(dir.path()).unwrap();
        assert!(fresh.since > 0);
        let mut s = fresh.clone();
        s.received_messages = 3;
        s.connections.insert("smtp".into(), 4);
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()).unwrap(), s);
        assert!(s.report().contains("received: 3 messages"));
        std::fs::write(dir.path().join(FILE), b"garbage").unwrap();
        assert!(load(dir.path()).is_err());
        // The server sets them aside and counts afresh.
        assert_eq!(load_or_start_afresh(dir.path()).received_messages, 0);
        assert!(!dir.path().join(FILE).exists());
        assert_eq!(load(dir.path()).unwrap().received_messages, 0);
    }
}
