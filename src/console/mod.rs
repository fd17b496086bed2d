//! The admin shell. It speaks through `embedded-io` `Read`/`Write`, so the
//! same code serves stdin/stdout, a tty or a board's UART, and tests drive
//! it with in-memory buffers.

mod stdio;

pub use stdio::StdIo;

use crate::admin;
use crate::config::Config;
use crate::line::{LineBuffer, LineEvent};
use crate::serve::running_status;
use crate::store::{maildir, users};
use embedded_io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

const PROMPT: &str = "postbox> ";

const HELP: &str = "\
commands:
  user add NAME        add a user (NAME is local or local@domain); asks for the password
  user passwd NAME     set a new password
  user del NAME        remove a user and their mail
  user list            list users
  user quota NAME SIZE mailbox limit: 500M, 2G, unlimited or default
  status               server, listeners, users and stored mail
  stats                traffic counters: received, delivered, refused
  help                 this text
  quit                 leave the console
";

/// Reads lines from an `embedded-io` reader, a byte at a time from the
/// caller's view, through the shared line splitter.
struct Lines<R> {
    reader: R,
    buf: [u8; 64],
    start: usize,
    end: usize,
    lines: LineBuffer,
}

impl<R: Read> Lines<R> {
    /// The next line as text, `None` at end of input.
    fn next(&mut self) -> Result<Option<String>, R::Error> {
        loop {
            while self.start < self.end {
                let (used, event) = self.lines.push(&self.buf[self.start..self.end]);
                self.start += used;
                match event {
                    Some(LineEvent::Line(line)) => {
                        return Ok(Some(String::from_utf8_lossy(line).into_owned()))
                    }
                    Some(LineEvent::TooLong) => return Ok(Some(String::new())),
                    None => {}
                }
            }
            let n = self.reader.read(&mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.start = 0;
            self.end = n;
        }
    }
}

/// Runs the console until `quit` or end of input.
pub fn run<R, W>(config: &Config, reader: R, mut writer: W) -> Result<(), W::Error>
where
    W: Write,
    R: Read + embedded_io::ErrorType<Error = W::Error>,
{
    let out = &mut writer;
    let mut lines = Lines {
        reader,
        buf: [0; 64],
        start: 0,
        end: 0,
        lines: LineBuffer::new(),
    };
    say(
        out,
        &format!(
            "Postbox {} console. Type 'help' for commands.\r\n",
            env!("CARGO_PKG_VERSION")
        ),
    )?;
    loop {
        out.write_all(PROMPT.as_bytes())?;
        out.flush()?;
        let Some(line) = lines.next()? else {
            out.write_all(b"\r\n")?;
            return out.flush();
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["quit"] | ["exit"] => return out.flush(),
            ["help"] => out.write_all(HELP.replace('\n', "\r\n").as_bytes())?,
            ["status"] => status(config, out)?,
            ["stats"] => report(
                out,
                admin::stats_report(config).map(|r| r.trim_end().replace('\n', "\r\n")),
            )?,
            ["user", "list"] => match admin::list_users(config) {
                Ok(names) if names.is_empty() => out.write_all(b"no users\r\n")?,
                Ok(names) => {
                    for name in names {
                        say(out, &format!("{name}\r\n"))?;
                    }
                }
                Err(e) => say(out, &format!("error: {e}\r\n"))?,
            },
            ["user", "add", name] | ["user", "passwd", name] => {
                let Some(password) = ask_password(&mut lines, out)? else {
                    continue;
                };
                let result = if words[1] == "add" {
                    admin::add_user(config, name, &password).map(|a| format!("added {a}"))
                } else {
                    admin::set_password(config, name, &password)
                        .map(|a| format!("password changed for {a}"))
                };
                report(out, result)?;
            }
            ["user", "quota", name, size] => report(out, admin::set_quota(config, name, size))?,
            ["user", "del", name] => report(
                out,
                admin::delete_user(config, name).map(|a| format!("deleted {a}")),
            )?,
            _ => say(
                out,
                &format!("error: unknown command {:?}; type 'help'\r\n", line.trim()),
            )?,
        }
    }
}

/// Writes text; `embedded-io` has no `fmt` error to mix with the I/O one.
fn say<W: Write>(out: &mut W, text: &str) -> Result<(), W::Error> {
    out.write_all(text.as_bytes())
}

fn report<W: Write>(out: &mut W, result: Result<String, String>) -> Result<(), W::Error> {
    match result {
        Ok(text) => say(out, &format!("{text}\r\n")),
        Err(e) => say(out, &format!("error: {e}\r\n")),
    }
}

/// Asks twice; `None` when the answers differ or input ended.
fn ask_password<R: Read<Error = E>, W: Write<Error = E>, E: embedded_io::Error>(
    lines: &mut Lines<R>,
    out: &mut W,
) -> Result<Option<String>, E> {
    out.write_all(b"Password: ")?;
    out.flush()?;
    let Some(first) = lines.next()? else {
        return Ok(None);
    };
    out.write_all(b"\r\nAgain: ")?;
    out.flush()?;
    let Some(second) = lines.next()? else {
        return Ok(None);
    };
    out.write_all(b"\r\n")?;
    if first != second {
        out.write_all(b"error: passwords do not match\r\n")?;
        return Ok(None);
    }
    Ok(Some(first))
}

fn status<W: Write>(config: &Config, out: &mut W) -> Result<(), W::Error> {
    match running_status(&config.data_dir) {
        Some(s) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let up = now.saturating_sub(s.started_unix);
            let listeners: Vec<String> = s
                .listeners
                .iter()
                .map(|(service, addr)| format!("{service} {addr}"))
                .collect();
            say(
                out,
                &format!(
                    "server: running (pid {}), up {}d {:02}h {:02}m {:02}s\r\nlisteners: {}\r\n",
                    s.pid,
                    up / 86400,
                    up % 86400 / 3600,
                    up % 3600 / 60,
                    up % 60,
                    listeners.join(", "),
                ),
            )?;
        }
        None => out.write_all(b"server: not running\r\n")?,
    }
    // From the files: what the server presents at its next handshake.
    let tls = match crate::tls::show(&crate::tls::CertPaths::of(config)) {
        Ok(info) => format!(
            "tls: {}, valid until {}\r\ntls SHA-256: {}\r\n",
            info.subject, info.not_after, info.fingerprint
        ),
        Err(_) => "tls: no certificate yet (made on first start)\r\n".to_string(),
    };
    say(out, &tls)?;
    say(out, &format!("domains: {}\r\n", config.domains.join(", ")))?;
    match users::load(&config.data_dir) {
        Ok(list) => say(out, &format!("users: {}\r\n", list.users.len()))?,
        Err(e) => say(out, &format!("users: cannot read users file: {e}\r\n"))?,
    }
    let (messages, bytes) = maildir::usage(&config.data_dir);
    say(
        out,
        &format!("stored: {messages} messages, {bytes} bytes\r\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn drive(config: &Config, input: &str) -> String {
        let mut output = Vec::new();
        run(config, input.as_bytes(), &mut output).unwrap();
        String::from_utf8(output).unwrap()
    }

    #[test]
    fn manages_users_through_in_memory_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&Overrides {
            data_dir: Some(dir.path().into()),
            ..Default::default()
        })
        .unwrap();
        let text = drive(
            &config,
            "help\nuser add alice\nsecret\nsecret\nuser add bob\none\ntwo\nuser list\nstatus\nuser passwd alice\nnew\nnew\nuser del alice\nuser list\nbogus\nquit\nuser list\n",
        );
        assert!(text.contains("user add NAME"), "{text}");
        assert!(text.contains("added alice@localhost"));
        assert!(text.contains("error: passwords do not match"));
        assert!(text.contains("alice@localhost (admin)\r\n"));
        assert!(text.contains("server: not running"));
        assert!(text.contains("users: 1\r\n"));
        assert!(text.contains("stored: 0 messages, 0 bytes"));
        assert!(text.contains("password changed for alice@localhost"));
        assert!(text.contains("deleted alice@localhost"));
        assert!(text.contains("no users"));
        assert!(text.contains("error: unknown command \"bogus\""));
        // Nothing after quit runs.
        assert_eq!(text.matches("no users").count(), 1);
    }

    #[test]
    fn end_of_input_ends_the_console() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&Overrides {
            data_dir: Some(dir.path().into()),
            ..Default::default()
        })
        .unwrap();
        let text = drive(&config, "user add alice\nonly-once");
        assert!(!text.contains("added"));
    }
}
