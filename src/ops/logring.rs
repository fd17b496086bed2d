//! The log: one line per event, `2026-11-25T09:37:28.866Z INFO  [module] text`,
//! to stderr and, when a ring file is given, to that file too. On the board
//! the ring file is on a tmpfs (RAM, never flash) and the admin console's
//! `log` shows its tail; it stays between [`LOG_RING_BYTES`] and twice that.
//!
//! Write errors are ignored: a closed stderr (EPIPE) or a full tmpfs must
//! never stop the server.

use crate::limits::LOG_RING_BYTES;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

struct Ring {
    path: PathBuf,
    file: File,
    size: u64,
}

impl Ring {
    fn open(path: &Path) -> std::io::Result<Ring> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Ring {
            path: path.to_path_buf(),
            file,
            size,
        })
    }

    fn append(&mut self, line: &[u8]) {
        if self.file.write_all(line).is_ok() {
            self.size += line.len() as u64;
        }
        if self.size > 2 * LOG_RING_BYTES {
            let _ = self.cut();
        }
    }

    /// Keeps the newest [`LOG_RING_BYTES`], from a line start, by writing them
    /// to a new file and renaming it over the old one. A line another
    /// process appended meanwhile could be lost: the init writes its own
    /// file ([`INIT_LOG`]).
    fn cut(&mut self) -> std::io::Result<()> {
        let mut old = File::open(&self.path)?;
        let len = old.metadata()?.len();
        old.seek(SeekFrom::Start(len.saturating_sub(LOG_RING_BYTES)))?;
        let mut tail = Vec::new();
        old.read_to_end(&mut tail)?;
        let start = match tail.iter().position(|&b| b == b'\n') {
            Some(i) if len > LOG_RING_BYTES => i + 1,
            _ => 0,
        };
        let tmp = self.path.with_extension("cut");
        std::fs::write(&tmp, &tail[start..])?;
        std::fs::rename(&tmp, &self.path)?;
        *self = Ring::open(&self.path)?;
        Ok(())
    }
}

/// The ring file of the process's logger, once [`RingLogger::init`] made
/// it the logger: where the admin page reads the last lines.
static ACTIVE_RING: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The ring file this process logs to, if any.
pub fn active_ring() -> Option<&'static Path> {
    ACTIVE_RING.get().map(PathBuf::as_path)
}

pub struct RingLogger {
    level: log::LevelFilter,
    ring: Option<Mutex<Ring>>,
}

impl RingLogger {
    pub fn new(level: log::LevelFilter, ring: Option<&Path>) -> Result<RingLogger, String> {
        let ring = match ring {
            None => None,
            Some(path) => {
                Some(Mutex::new(Ring::open(path).map_err(|e| {
                    format!("cannot open log ring {}: {e}", path.display())
                })?))
            }
        };
        Ok(RingLogger { level, ring })
    }

    /// Makes this the process's logger.
    pub fn init(self) -> Result<(), String> {
        log::set_max_level(self.level);
        let ring = self
            .ring
            .as_ref()
            .and_then(|r| r.lock().ok())
            .map(|r| r.path.clone());
        log::set_boxed_logger(Box::new(self)).map_err(|e| e.to_string())?;
        if let Some(path) = ring {
            let _ = ACTIVE_RING.set(path);
        }
        Ok(())
    }
}

impl log::Log for RingLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let target = if record.target().is_empty() {
            record.module_path().unwrap_or_default()
        } else {
            record.target()
        };
        let line = format!(
            "{} {:<5} [{}] {}\n",
            timestamp(SystemTime::now()),
            record.level(),
            target,
            record.args()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(ring) = &self.ring {
            if let Ok(mut ring) = ring.lock() {
                ring.append(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// The last `count` lines of a ring file (empty when there is none yet).
pub fn tail(path: &Path, count: usize) -> Vec<String> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => return Vec::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// The board's init keeps its notes in this file beside the ring: the
/// server cuts the ring by rewriting it, which would lose lines another
/// process appended meanwhile.
pub const INIT_LOG: &str = "init.log";

/// The last `count` lines of the ring and of the init's notes beside it,
/// in time order (each line starts with its timestamp).
pub fn tail_with_notes(ring: &Path, count: usize) -> Vec<String> {
    let mut lines = tail(ring, count);
    lines.extend(tail(&ring.with_file_name(INIT_LOG), count));
    // Stable: lines of one file with the same timestamp keep their order.
    lines.sort_by(|a, b| a.get(..24).cmp(&b.get(..24)));
    lines.split_off(lines.len().saturating_sub(count))
}

/// `2026-11-25T09:37:28.866Z`.
pub fn timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = super::clock::civil_from_days((secs / 86400) as i64);
    let rest = secs % 86400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_in_utc_with_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_599_448_866);
        assert_eq!(timestamp(t), "2026-11-25T09:37:28.866Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&timestamp(leap)[..10], "2000-02-29");
    }

    #[test]
    fn the_inits_notes_are_shown_among_the_servers_lines() {
        let dir = tempfile::tempdir().unwrap();
        let ring = dir.path().join("log");
        std::fs::write(
            &ring,
            "2026-11-25T09:00:01.000Z INFO  [postbox::serve] a\n\
             2026-11-25T09:00:03.000Z INFO  [postbox::serve] c\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(INIT_LOG),
            "2026-11-25T09:00:00.000Z INFO  [init] up\n\
             2026-11-25T09:00:02.000Z INFO  [init] b\n",
        )
        .unwrap();
        let shown: Vec<String> = tail_with_notes(&ring, 3)
            .iter()
            .map(|l| l[l.len() - 1..].to_string())
            .collect();
        assert_eq!(shown, ["a", "b", "c"]);
        std::fs::remove_file(dir.path().join(INIT_LOG)).unwrap();
        assert_eq!(tail_with_notes(&ring, 5).len(), 2);
    }

    #[test]
    fn ring_file_stays_bounded_and_keeps_whole_newest_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut ring = Ring::open(&path).unwrap();
        for i in 0..10_000 {
            ring.append(format!("line {i:05} {}\n", "x".repeat(20)).as_bytes());
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 2 * LOG_RING_BYTES + 100, "{size}");
        assert!(size >= LOG_RING_BYTES / 2, "{size}");
        let last = tail(&path, 3);
        assert_eq!(last.len(), 3);
        assert!(last[2].starts_with("line 09999 "), "{last:?}");
        let all = tail(&path, usize::MAX);
        assert!(all.iter().all(|l| l.starts_with("line ")), "a cut line");
    }

    #[test]
    fn logger_line_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let logger = RingLogger::new(log::LevelFilter::Info, Some(&path)).unwrap();
        use log::Log;
        logger.log(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("postbox::serve")
                .args(format_args!("serving localhost on smtp 127.0.0.1:25"))
                .build(),
        );
        logger.log(
            &log::Record::builder()
                .level(log::Level::Debug)
                .target("x")
                .args(format_args!("hidden"))
                .build(),
        );
        let lines = tail(&path, 10);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].ends_with("Z INFO  [postbox::serve] serving localhost on smtp 127.0.0.1:25"),
            "{}",
            lines[0]
        );
        assert_eq!(lines[0].as_bytes()[23], b'Z');
    }
}
