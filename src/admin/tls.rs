//! `tls show` and `tls renew`: which certificate the listeners present
//! (ACME, configured files or self-signed), what it says, and how
//! renewal goes; and asking the running server to renew now.

use super::existing_data_dir;
use crate::acme::status::{self, AcmeStatus};
use crate::config::Config;
use crate::store::disk;
use crate::tls::{self, CertPaths, Origin};

/// `2026-12-02 16:29:10 UTC`.
pub fn date(unix: i64) -> String {
    let (y, m, d) = crate::ops::clock::civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// The renewal record, when `[acme]` is enabled.
fn acme_status(config: &Config) -> Option<AcmeStatus> {
    config
        .acme
        .enabled
        .then(|| status::load(disk::system(), &tls::dir(config)).0)
}

/// `tls show`.
pub fn show(config: &Config) -> Result<String, String> {
    let paths = CertPaths::in_use(config, tls::unix_now());
    if paths.origin == Origin::SelfSigned && !paths.cert.exists() {
        return Err(format!(
            "no certificate yet in {}; 'postbox serve' or 'postbox tls selfsigned' makes one",
            paths.cert.display()
        ));
    }
    let info = tls::show(&paths)?;
    let mut text = format!(
        "certificate: {} ({})\nnames:       {}\nsubject:     {}\nissuer:      {}\nserial:      {}\nvalid from:  {}\nvalid until: {}\nSHA-256:     {}\n",
        paths.origin.describe(),
        paths.cert.display(),
        info.names.join(", "),
        info.subject,
        info.issuer,
        info.serial,
        info.not_before,
        info.not_after,
        info.fingerprint
    );
    if let Some(record) = acme_status(config) {
        text.push_str(&format!("acme:        {}\n", acme_summary(&record)));
        if let Some(error) = last_error(&record) {
            text.push_str(&format!("last error:  {error}\n"));
        }
    }
    Ok(text)
}

/// `renewed 2026-12-02 ..., next attempt ...`.
fn acme_summary(record: &AcmeStatus) -> String {
    let renewed = match record.last_success {
        Some(at) => format!("renewed {}", date(at)),
        None => "no certificate obtained yet".to_string(),
    };
    match record.next_attempt {
        Some(at) => format!("{renewed}, next attempt {}", date(at)),
        None => renewed,
    }
}

/// The last failure, with its time and how many in a row since.
fn last_error(record: &AcmeStatus) -> Option<String> {
    let error = record.last_error.as_ref()?;
    let at = record.last_error_at.map(date).unwrap_or_default();
    let streak = match record.failures {
        0 => " (succeeded since)".to_string(),
        1 => String::new(),
        n => format!(" ({n} failures in a row)"),
    };
    Some(format!("{at}: {error}{streak}"))
}

/// How ACME renewal goes, a fact a line, when `[acme]` is enabled: which
/// certificate is in use, the last renewal, the next attempt, the last
/// error. For the admin page.
pub fn renewal(config: &Config) -> Option<String> {
    let record = acme_status(config)?;
    let origin = CertPaths::in_use(config, tls::unix_now()).origin;
    let mut text = format!(
        "in use: {} certificate
{}
",
        origin.describe(),
        acme_summary(&record)
    );
    if let Some(error) = last_error(&record) {
        text.push_str(&format!("last error: {error}\n"));
    }
    Some(text)
}

/// The certificate lines of `status`.
pub fn status_lines(config: &Config) -> String {
    let paths = CertPaths::in_use(config, tls::unix_now());
    let mut text = match tls::show(&paths) {
        Ok(info) => format!(
            "tls: {} certificate for {}, from {}, valid until {}\ntls SHA-256: {}\n",
            paths.origin.describe(),
            info.names.join(", "),
            info.issuer,
            info.not_after,
            info.fingerprint
        ),
        Err(_) => "tls: no certificate yet (made on first start)\n".to_string(),
    };
    if let Some(record) = acme_status(config) {
        text.push_str(&format!("tls acme: {}\n", acme_summary(&record)));
        if let Some(error) = last_error(&record) {
            text.push_str(&format!("tls acme last error: {error}\n"));
        }
    }
    text
}

/// `tls renew`: the running server asks for a new certificate now.
pub fn renew(config: &Config) -> Result<String, String> {
    existing_data_dir(config)?;
    if !config.acme.enabled {
        return Err("[acme] is not enabled in the config".into());
    }
    match crate::ops::status::request_renewal(&config.data_dir)? {
        true => Ok(
            "the server is asking for a new certificate now ('tls show' tells how it went)".into(),
        ),
        false => Err("no server is running on this data directory".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(1_767_268_800 + 3723), "2026-01-01 13:02:03 UTC");
    }

    #[test]
    fn renewal_for_the_admin_page() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "hostname = \"mx.test\"\ndata_dir = {:?}\n",
            dir.path().to_str().unwrap()
        );
        let off = Config::from_toml(&text).unwrap();
        assert_eq!(renewal(&off), None);
        let on = Config::from_toml(&format!("{text}[acme]\nenabled = true\n")).unwrap();
        let record = AcmeStatus {
            last_error: Some("refused".into()),
            last_error_at: Some(0),
            failures: 1,
            next_attempt: Some(60),
            ..Default::default()
        };
        std::fs::create_dir_all(tls::dir(&on)).unwrap();
        status::save(disk::system(), &tls::dir(&on), &record).unwrap();
        assert_eq!(
            renewal(&on).unwrap(),
            "in use: self-signed certificate\nno certificate obtained yet, next attempt 1970-01-01 00:01:00 UTC\nlast error: 1970-01-01 00:00:00 UTC: refused\n"
        );
    }

    #[test]
    fn renewal_facts() {
        let mut record = AcmeStatus::default();
        assert_eq!(acme_summary(&record), "no certificate obtained yet");
        assert_eq!(last_error(&record), None);
        record.next_attempt = Some(60);
        record.last_error = Some("refused".into());
        record.last_error_at = Some(0);
        record.failures = 3;
        assert_eq!(
            acme_summary(&record),
            "no certificate obtained yet, next attempt 1970-01-01 00:01:00 UTC"
        );
        assert_eq!(
            last_error(&record).unwrap(),
            "1970-01-01 00:00:00 UTC: refused (3 failures in a row)"
        );
        record.failures = 0;
        record.last_success = Some(120);
        assert!(last_error(&record).unwrap().ends_with("(succeeded since)"));
        assert!(acme_summary(&record).starts_with("renewed 1970-01-01 00:02:00 UTC"));
    }
}
