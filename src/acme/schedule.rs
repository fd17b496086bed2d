//! When to ask for a certificate: at two thirds of the current one's
//! lifetime, at once when there is none (or it lacks a name), and after a
//! failure not before a delay that doubles with each failure in a row.
//! Times are seconds since 1970, passed in.

use crate::limits::{ACME_RETRY_FIRST, ACME_RETRY_MAX};

/// The certificate held now, as far as timing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub valid_from: i64,
    pub valid_until: i64,
    /// It covers every configured name.
    pub covers: bool,
}

/// When a certificate valid over [from, until) is renewed.
pub fn renewal_time(valid_from: i64, valid_until: i64) -> i64 {
    valid_from + (valid_until - valid_from).max(0) * 2 / 3
}

/// The wait after `failures` failed attempts in a row (at least one).
pub fn retry_delay(failures: u32) -> i64 {
    let first = ACME_RETRY_FIRST.as_secs() as i64;
    let doublings = failures.saturating_sub(1).min(30);
    (first << doublings).min(ACME_RETRY_MAX.as_secs() as i64)
}

/// The next attempt: when the certificate is due (now, without a usable
/// one), but not before the retry delay after the last failure.
pub fn next_attempt(held: Option<Held>, failures: u32, last_failure: Option<i64>, now: i64) -> i64 {
    let due = match held {
        Some(held) if held.covers && held.valid_until > now => {
            renewal_time(held.valid_from, held.valid_until)
        }
        _ => now,
    };
    let not_before = match (failures, last_failure) {
        (1.., Some(at)) => at + retry_delay(failures),
        _ => i64::MIN,
    };
    due.max(not_before)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn renews_at_two_thirds_of_the_lifetime() {
        assert_eq!(renewal_time(0, 90 * DAY), 60 * DAY);
        assert_eq!(renewal_time(1000, 1000 + 3 * DAY), 1000 + 2 * DAY);
        let held = Held {
            valid_from: 0,
            valid_until: 90 * DAY,
            covers: true,
        };
        assert_eq!(next_attempt(Some(held), 0, None, DAY), 60 * DAY);
        // Past due: the due time is in the past, which means now.
        assert_eq!(next_attempt(Some(held), 0, None, 70 * DAY), 60 * DAY);
    }

    #[test]
    fn asks_at_once_without_a_usable_certificate() {
        assert_eq!(next_attempt(None, 0, None, 500), 500);
        let lacking = Held {
            valid_from: 0,
            valid_until: 90 * DAY,
            covers: false,
        };
        assert_eq!(next_attempt(Some(lacking), 0, None, 500), 500);
        let expired = Held {
            valid_from: 0,
            valid_until: 10,
            covers: true,
        };
        assert_eq!(next_attempt(Some(expired), 0, None, 500), 500);
    }

    #[test]
    fn retries_after_growing_delays_up_to_a_day() {
        assert_eq!(retry_delay(1), 60);
        assert_eq!(retry_delay(2), 120);
        assert_eq!(retry_delay(3), 240);
        assert_eq!(retry_delay(11), 60 << 10);
        assert_eq!(retry_delay(12), DAY);
        assert_eq!(retry_delay(1000), DAY);
        assert_eq!(next_attempt(None, 1, Some(1000), 1010), 1060);
        assert_eq!(next_attempt(None, 3, Some(1000), 1010), 1240);
        // A renewal due later than the retry waits for the renewal.
        let held = Held {
            valid_from: 0,
            valid_until: 90 * DAY,
            covers: true,
        };
        assert_eq!(next_attempt(Some(held), 2, Some(DAY), DAY + 1), 60 * DAY);
        // A failed renewal past due waits out the delay.
        assert_eq!(
            next_attempt(Some(held), 2, Some(61 * DAY), 61 * DAY),
            61 * DAY + 120
        );
    }
}
