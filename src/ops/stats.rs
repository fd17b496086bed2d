//! Traffic counters, like sendmail's mailstats: kept in RAM, written to
//! flash at most once a minute and at shutdown (kind to SD cards), shown
//! by `postbox stats` and the console's `stats`.

use crate::limits::STATS_DAYS_KEPT;
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
/// Version 4 added [`Stats::days`], version 3 [`Stats::checks`]; older
/// versions are carried over.
const VERSION: u16 = 4;
const SECONDS_PER_DAY: u64 = 86_400;

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
    /// Per-day counts, oldest first, at most [`STATS_DAYS_KEPT`] days
    /// back from the newest; a day with nothing counted has no entry.
    pub days: Vec<Day>,
}

/// What was counted on one day (UTC).
#[derive(Serialize, Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Day {
    /// Days since 1970-01-01.
    pub day: u64,
    pub received: u64,
    pub delivered: u64,
    pub sent: u64,
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

    /// The counters as they are now.
    pub fn snapshot(&self) -> Stats {
        self.stats.borrow().clone()
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

/// The third format, read once and carried over.
#[derive(Deserialize)]
// Tests write it, as an older server did.
#[cfg_attr(test, derive(Serialize))]
struct StatsV3 {
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
    checks: BTreeMap<String, u64>,
}

impl From<StatsV3> for Stats {
    fn from(old: StatsV3) -> Stats {
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
            checks: old.checks,
            days: Vec::new(),
        }
    }
}

/// The second format, read once and carried over.
#[derive(Deserialize)]
// Tests write it, as an older server did.
#[cfg_attr(test, derive(Serialize))]
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

impl From<StatsV2> for StatsV3 {
    fn from(old: StatsV2) -> StatsV3 {
        StatsV3 {
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
        Err(record::RecordError::UnsupportedVersion(3)) => {
            let old = record::load::<StatsV3>(disk::system(), &path(data_dir), KIND, 3)?;
            Ok(old.map_or_else(fresh, Stats::from))
        }
        Err(record::RecordError::UnsupportedVersion(2)) => {
            let old = record::load::<StatsV2>(disk::system(), &path(data_dir), KIND, 2)?;
            Ok(old.map_or_else(fresh, |v2| Stats::from(StatsV3::from(v2))))
        }
        Err(record::RecordError::UnsupportedVersion(1)) => {
            let old = record::load::<StatsV1>(disk::system(), &path(data_dir), KIND, 1)?;
            Ok(old.map_or_else(fresh, |v1| Stats::from(StatsV3::from(StatsV2::from(v1)))))
        }
        Ok(None) => Ok(fresh()),
        Err(e) => Err(e),
    }
}

pub fn save(data_dir: &Path, stats: &Stats) -> io::Result<()> {
    record::save(disk::system(), &path(data_dir), KIND, VERSION, stats)
}

impl Stats {
    /// Counts a message received (stored or queued), at `now` (Unix seconds).
    pub fn count_received(&mut self, now: u64, bytes: u64) {
        self.received_messages += 1;
        self.received_bytes += bytes;
        self.day(now).received += 1;
    }

    /// Counts `copies` put into local mailboxes at `now`.
    pub fn count_delivered(&mut self, now: u64, copies: u64) {
        self.delivered_local += copies;
        self.day(now).delivered += copies;
    }

    /// Counts a copy another server accepted from the queue at `now`.
    pub fn count_sent(&mut self, now: u64) {
        self.sent += 1;
        self.day(now).sent += 1;
    }

    /// The entry of the day `now` falls on, made if missing. Days older
    /// than [`STATS_DAYS_KEPT`] before the newest are dropped; a clock set
    /// back that far counts into the oldest day kept.
    fn day(&mut self, now: u64) -> &mut Day {
        let day = now / SECONDS_PER_DAY;
        let newest = self.days.last().map_or(day, |d| d.day.max(day));
        let oldest_kept = newest.saturating_sub(STATS_DAYS_KEPT as u64 - 1);
        self.days.retain(|d| d.day >= oldest_kept);
        let day = day.max(oldest_kept);
        let at = match self.days.binary_search_by_key(&day, |d| d.day) {
            Ok(at) => at,
            Err(at) => {
                self.days.insert(
                    at,
                    Day {
                        day,
                        ..Day::default()
                    },
                );
                at
            }
        };
        &mut self.days[at]
    }

    /// The `count` days up to and including the one `now` falls on,
    /// oldest first, with zeros for days nothing was counted.
    pub fn last_days(&self, now: u64, count: usize) -> Vec<Day> {
        let today = now / SECONDS_PER_DAY;
        (0..count as u64)
            .rev()
            .filter_map(|back| today.checked_sub(back))
            .map(|day| {
                self.days
                    .iter()
                    .find(|d| d.day == day)
                    .copied()
                    .unwrap_or(Day {
                        day,
                        ..Day::default()
                    })
            })
            .collect()
    }

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
        let dir = tempfile::tempdir().unwrap();
        let old = StatsV2 {
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

    const DAY: u64 = SECONDS_PER_DAY;

    #[test]
    fn messages_are_counted_per_day_and_old_days_dropped() {
        let mut s = Stats::default();
        let start = 20_000 * DAY;
        s.count_received(start + 10, 100);
        s.count_received(start + DAY - 1, 50);
        s.count_delivered(start + DAY - 1, 2);
        // Midnight UTC starts the next day.
        s.count_received(start + DAY, 7);
        s.count_sent(start + DAY + 5);
        assert_eq!((s.received_messages, s.received_bytes), (3, 157));
        assert_eq!((s.delivered_local, s.sent), (2, 1));
        assert_eq!(
            s.days,
            vec![
                Day {
                    day: 20_000,
                    received: 2,
                    delivered: 2,
                    sent: 0
                },
                Day {
                    day: 20_001,
                    received: 1,
                    delivered: 0,
                    sent: 1
                },
            ]
        );
        let chart = s.last_days(start + 3 * DAY + 1, 30);
        assert_eq!(chart.len(), 30);
        assert_eq!(chart[29].day, 20_003);
        assert_eq!(chart[26].received, 2);
        assert_eq!(chart[27].received, 1);
        assert_eq!(
            chart[28],
            Day {
                day: 20_002,
                ..Day::default()
            }
        );
        // Only the newest days are kept, however long the server runs.
        for day in 0..100 {
            s.count_received(start + day * DAY, 1);
        }
        assert_eq!(s.days.len(), STATS_DAYS_KEPT);
        assert_eq!(s.days.last().unwrap().day, 20_099);
        assert_eq!(s.days[0].day, 20_099 - STATS_DAYS_KEPT as u64 + 1);
        // A clock set back counts into a day kept, never grows the list.
        s.count_received(start, 1);
        s.count_received(start + 95 * DAY, 1);
        assert_eq!(s.days.len(), STATS_DAYS_KEPT);
        assert_eq!((s.days[0].received, s.days[0].day), (2, 20_068));
        assert_eq!(s.days.iter().find(|d| d.day == 20_095).unwrap().received, 2);
        assert!(s.days.windows(2).all(|w| w[0].day < w[1].day));
    }

    /// Counters saved before days were counted still load, and count on.
    #[test]
    fn version_3_counters_carry_over() {
        let dir = tempfile::tempdir().unwrap();
        let old = StatsV3 {
            since: 1,
            saved: 2,
            received_messages: 3,
            received_bytes: 4,
            delivered_local: 5,
            logins: 6,
            failed_logins: 7,
            connections: BTreeMap::from([("smtp".into(), 8)]),
            rejected: BTreeMap::from([("550 5.1.1".into(), 9)]),
            queued: 10,
            sent: 11,
            bounced: 12,
            spam: 13,
            checks: BTreeMap::from([("spf=pass".into(), 14)]),
        };
        record::save(disk::system(), &path(dir.path()), KIND, 3, &old).unwrap();
        let mut stats = load(dir.path()).unwrap();
        assert_eq!(
            (stats.received_messages, stats.sent, stats.spam),
            (3, 11, 13)
        );
        assert_eq!(stats.checks["spf=pass"], 14);
        assert_eq!(stats.rejected["550 5.1.1"], 9);
        assert!(stats.days.is_empty());
        stats.count_received(20_000 * DAY, 10);
        save(dir.path(), &stats).unwrap();
        let again = load(dir.path()).unwrap();
        assert_eq!(again.received_messages, 4);
        assert_eq!(again.days.len(), 1);
        assert_eq!(again, stats);
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
