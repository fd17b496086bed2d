//! Every number a config file may set: its default and its range, in one
//! table, and the old names keys are still read under. Each value is
//! checked here, so no value can overflow a clock or a size later.

use super::value::{parse_duration, parse_size, Value};
use crate::limits::*;
use std::time::Duration;

/// What a number in the file counts, for its range and its error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Percent,
    /// Written as a number of bytes or as a size (`"500M"`).
    Bytes,
    /// Written as a number of seconds or as a duration (`"4h"`).
    Seconds,
}

/// The default and the allowed values of one numeric key, in its unit
/// (seconds for durations, bytes for sizes).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub key: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
    pub unit: Unit,
}

const fn bound(key: &'static str, default: u64, min: u64, max: u64, unit: Unit) -> Bound {
    Bound {
        key,
        default,
        min,
        max,
        unit,
    }
}

pub const MINUTE: u64 = 60;
pub const HOUR: u64 = 3600;
pub const DAY: u64 = 86400;
const KIB: u64 = 1024;
const GIB: u64 = 1 << 30;

const fn secs(d: Duration) -> u64 {
    d.as_secs()
}

use Unit::*;

/// Every numeric key: default, range. The example file states the same
/// ranges (a test compares them).
pub const BOUNDS: &[Bound] = &[
    bound(
        "smtp.max_sessions",
        DEFAULT_MAX_SESSIONS as u64,
        1,
        10_000,
        Count,
    ),
    bound(
        "smtp.max_message_size",
        DEFAULT_MAX_MESSAGE_SIZE,
        KIB,
        GIB,
        Bytes,
    ),
    bound(
        "smtp.max_recipients",
        DEFAULT_MAX_RECIPIENTS as u64,
        1,
        10_000,
        Count,
    ),
    bound("smtp.max_errors", DEFAULT_MAX_ERRORS as u64, 1, 1000, Count),
    bound(
        "smtp.command_timeout",
        secs(DEFAULT_COMMAND_TIMEOUT),
        1,
        HOUR,
        Seconds,
    ),
    bound(
        "smtp.data_timeout",
        secs(DEFAULT_DATA_TIMEOUT),
        1,
        HOUR,
        Seconds,
    ),
    bound("smtp.greet_delay", 0, 0, MINUTE, Seconds),
    bound(
        "pop3.max_sessions",
        DEFAULT_MAX_SESSIONS as u64,
        1,
        10_000,
        Count,
    ),
    bound("pop3.max_errors", DEFAULT_MAX_ERRORS as u64, 1, 1000, Count),
    bound("pop3.timeout", secs(DEFAULT_POP3_TIMEOUT), 1, HOUR, Seconds),
    bound(
        "limits.sessions_per_address",
        DEFAULT_SESSIONS_PER_ADDRESS as u64,
        1,
        10_000,
        Count,
    ),
    bound("limits.connections_per_minute", 0, 0, 100_000, Count),
    bound(
        "limits.login_failures",
        DEFAULT_LOGIN_FAILURES as u64,
        1,
        1000,
        Count,
    ),
    bound(
        "limits.tls_handshake_timeout",
        secs(DEFAULT_TLS_HANDSHAKE_TIMEOUT),
        1,
        5 * MINUTE,
        Seconds,
    ),
    bound(
        "submission.max_sessions",
        DEFAULT_MAX_SESSIONS as u64,
        1,
        10_000,
        Count,
    ),
    bound(
        "submissions.max_sessions",
        DEFAULT_MAX_SESSIONS as u64,
        1,
        10_000,
        Count,
    ),
    bound(
        "pop3s.max_sessions",
        DEFAULT_MAX_SESSIONS as u64,
        1,
        10_000,
        Count,
    ),
    bound(
        "web.max_sessions",
        DEFAULT_MAX_SESSIONS as u64,
        1,
        10_000,
        Count,
    ),
    bound("quota.default", 0, 0, 16384 * GIB, Bytes),
    bound("backup.keep", 7, 1, 1000, Count),
    bound("backup.every", 0, 0, 365 * DAY, Seconds),
    bound("quota.warn_percent", 90, 1, 100, Percent),
    bound("greylist.delay", 5 * MINUTE, 0, DAY, Seconds),
    bound(
        "greylist.retry_window",
        48 * HOUR,
        HOUR,
        720 * HOUR,
        Seconds,
    ),
    bound("greylist.allow", 36 * DAY, DAY, 365 * DAY, Seconds),
    bound("spam.recipient_limit", 15, 0, 1000, Count),
    bound("queue.warn", 4 * HOUR, 1, 30 * DAY, Seconds),
    bound("queue.return", 5 * DAY, 1, 30 * DAY, Seconds),
    bound("queue.retry_first", 5 * MINUTE, 1, DAY, Seconds),
    bound("queue.retry_max", 2 * HOUR, 1, DAY, Seconds),
    bound("queue.max_deliveries", 8, 1, 100, Count),
    bound("queue.max_per_destination", 2, 1, 100, Count),
    bound("queue.smtp_port", 25, 1, 65535, Count),
];

/// A key that moved or was renamed. The old name still reads, with a plain
/// number counting what it counted then (`per` seconds).
#[derive(Debug, Clone, Copy)]
pub struct OldName {
    pub old: &'static str,
    pub new: &'static str,
    pub per: u64,
}

const fn old(old: &'static str, new: &'static str, per: u64) -> OldName {
    OldName { old, new, per }
}

/// Every old name still read, with what it is called now.
pub const OLD_NAMES: &[OldName] = &[
    old("smarthost", "queue.smarthost", 1),
    old("smarthost_user", "queue.smarthost_user", 1),
    old("smarthost_password", "queue.smarthost_password", 1),
    old("smarthost_tls", "queue.smarthost_tls", 1),
    old("smarthost_ca", "queue.smarthost_ca", 1),
    old("queue_warn", "queue.warn", 1),
    old("queue_return", "queue.return", 1),
    old("greylist.retry_window_hours", "greylist.retry_window", HOUR),
    old("greylist.allow_days", "greylist.allow", DAY),
];

/// A key's value as the file gives it: under which name, and what a plain
/// number counts there.
pub struct Given<'a, T> {
    pub value: &'a T,
    pub name: &'static str,
    pub per: u64,
}

/// Every problem found in a config, in file order, so all are reported at once.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    /// The value when `result` holds one; otherwise the problem is noted.
    pub fn check<T>(&mut self, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }

    /// The value of `key`, given under its name or its old name (not both).
    pub fn given<'a, T>(
        &mut self,
        key: &'static str,
        new: &'a Option<T>,
        old: &'a Option<T>,
    ) -> Option<Given<'a, T>> {
        let renamed = OLD_NAMES
            .iter()
            .find(|o| o.new == key)
            .unwrap_or_else(|| panic!("{key} has no old name"));
        match (new, old) {
            (Some(_), Some(_)) => {
                self.0.push(format!(
                    "{key} and {} (its old name) are both given; keep {key}",
                    renamed.old
                ));
                None
            }
            (Some(value), None) => Some(Given {
                value,
                name: key,
                per: 1,
            }),
            (None, Some(value)) => Some(Given {
                value,
                name: renamed.old,
                per: renamed.per,
            }),
            (None, None) => None,
        }
    }
}

impl Bound {
    pub fn of(key: &str) -> &'static Bound {
        BOUNDS
            .iter()
            .find(|b| b.key == key)
            .unwrap_or_else(|| panic!("no range for config key {key}"))
    }

    /// `1 to 10000`, `1s to 1h`, `1K to 1G`, as the example file says it.
    pub fn range(&self) -> String {
        let show = |n: u64| match self.unit {
            Seconds => human(n, &[(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (1, "s")]),
            Bytes => human(n, &[(GIB, "G"), (1 << 20, "M"), (KIB, "K")]),
            _ => n.to_string(),
        };
        format!("{} to {}", show(self.min), show(self.max))
    }

    /// The error for a value out of range, naming the key as the file
    /// does; an old name counting hours or days states its range in them.
    fn refusal(&self, name: &str, per: u64, given: impl std::fmt::Display) -> String {
        let range = match (per, self.unit) {
            (HOUR, _) => format!("{} to {} hours", self.min / HOUR, self.max / HOUR),
            (DAY, _) => format!("{} to {} days", self.min / DAY, self.max / DAY),
            (_, Percent) => format!("{} percent", self.range()),
            _ => self.range(),
        };
        format!("{name} must be {range}, not {given}")
    }

    fn in_range(&self, n: Option<u64>) -> Option<u64> {
        n.filter(|n| (self.min..=self.max).contains(n))
    }

    /// A count or percentage; the default when not given.
    pub fn count<T: TryFrom<u64>>(&self, value: Option<i64>, p: &mut Problems) -> T {
        let n = match value {
            None => self.default,
            Some(n) => match self.in_range(u64::try_from(n).ok()) {
                Some(n) => n,
                None => {
                    p.0.push(self.refusal(self.key, 1, n));
                    self.default
                }
            },
        };
        // Every maximum fits the field's type.
        T::try_from(n).unwrap_or_else(|_| unreachable!("{} range", self.key))
    }

    /// A duration under the key's own name.
    pub fn duration(&self, value: &Option<Value>, p: &mut Problems) -> Duration {
        let given = value.as_ref().map(|value| Given {
            value,
            name: self.key,
            per: 1,
        });
        self.duration_given(given, p)
    }

    /// A duration as given (perhaps under an old name); the default when
    /// not given or when wrong (the problem is noted).
    pub fn duration_given(&self, given: Option<Given<Value>>, p: &mut Problems) -> Duration {
        let Some(Given { value, name, per }) = given else {
            return Duration::from_secs(self.default);
        };
        let (seconds, shown) = match value {
            Value::Number(n) => {
                let seconds = u64::try_from(*n).ok().and_then(|n| n.checked_mul(per));
                let shown = match per {
                    1 => format!("{n} seconds"),
                    _ => n.to_string(),
                };
                (seconds, shown)
            }
            Value::Text(t) => match parse_duration(t) {
                Ok(d) => (Some(d.as_secs()), format!("{t:?}")),
                Err(e) => {
                    p.0.push(format!("{name}: {e}"));
                    return Duration::from_secs(self.default);
                }
            },
        };
        match self.in_range(seconds) {
            Some(n) => Duration::from_secs(n),
            None => {
                p.0.push(self.refusal(name, per, shown));
                Duration::from_secs(self.default)
            }
        }
    }

    /// A size in bytes; the default when not given or wrong.
    pub fn size(&self, value: &Option<Value>, p: &mut Problems) -> u64 {
        let (bytes, shown) = match value {
            None => return self.default,
            Some(Value::Number(n)) => (u64::try_from(*n).ok(), format!("{n} bytes")),
            Some(Value::Text(t)) => match parse_size(t) {
                Ok(n) => (Some(n), format!("{t:?}")),
                Err(e) => {
                    p.0.push(format!("{}: {e}", self.key));
                    return self.default;
                }
            },
        };
        self.in_range(bytes).unwrap_or_else(|| {
            p.0.push(self.refusal(self.key, 1, shown));
            self.default
        })
    }
}

/// `n` in the largest unit that divides it evenly (`3600` -> `1h`).
fn human(n: u64, units: &[(u64, &str)]) -> String {
    if n == 0 {
        return "0".into();
    }
    match units.iter().find(|(size, _)| n.is_multiple_of(*size)) {
        Some((size, suffix)) => format!("{}{suffix}", n / size),
        None => n.to_string(),
    }
}
