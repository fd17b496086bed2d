//! The admin shell. It speaks through `embedded-io` `Read`/`Write`, so the
//! same code serves stdin/stdout, a tty or a board's UART, and tests drive
//! it with in-memory buffers.
//!
//! On the board (`postbox console --admin`) it is what the serial line
//! shows: it asks for the admin password first (on first use it asks to
//! choose one, unless the config gives `admin_password_hash`), edits lines
//! itself ([`edit`]), and adds `log`, `reboot`, `poweroff` and a guarded
//! repair `shell`, which act through a [`Machine`].

mod edit;
mod stdio;
mod stick;

pub use stick::unattended_backup;

pub use crate::appliance::{Machine, NoMachine};
pub use edit::{Editor, Input};
pub use stdio::StdIo;

use crate::admin;
use crate::appliance::wifi;
use crate::auth::password;
use crate::config::Config;
use crate::store::disk;
use embedded_io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PROMPT: &str = "postbox> ";

/// The admin password's hash when the config gives none.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

const ADMIN_HELP: &str = "\
  log [N]                the last N lines of the server's log (default 20)
  reboot                 stop the server cleanly and restart the board
  poweroff               stop the server cleanly and switch off
  shell                  a root shell for repairs (asks first)
  backup                 write the box to a USB stick (FAT or ext4)
  restore [NAME]         onto a fresh card: the stick's newest backup, or NAME
  passwd                 change this console's admin password
  wifi status            Wi-Fi: associated or not, signal, address
  wifi set               join a Wi-Fi network (asks name, password, country)
";

/// How a console session runs.
pub struct Options {
    /// The appliance console: admin password, system verbs.
    pub admin: bool,
    /// Echo and edit lines (a raw serial line); off for pipes and cooked terminals.
    pub echo: bool,
    /// The log ring file `log` shows.
    pub log_ring: Option<PathBuf>,
    /// Pause after a wrong admin password (doubles each time).
    pub login_delay: Duration,
    /// The config file, which `backup` puts in the archive.
    pub config_file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            admin: false,
            echo: false,
            log_ring: None,
            login_delay: Duration::from_secs(2),
            config_file: None,
        }
    }
}

/// Runs the console until `quit` or end of input.
pub fn run<R, W>(config: &Config, reader: R, writer: W) -> Result<(), W::Error>
where
    W: Write,
    R: Read + embedded_io::ErrorType<Error = W::Error>,
{
    run_with(config, &Options::default(), &mut NoMachine, reader, writer)
}

/// Runs a console session with `options` on `machine`.
pub fn run_with<R, W>(
    config: &Config,
    options: &Options,
    machine: &mut dyn Machine,
    reader: R,
    mut writer: W,
) -> Result<(), W::Error>
where
    W: Write,
    R: Read + embedded_io::ErrorType<Error = W::Error>,
{
    let out = &mut writer;
    let mut lines = Editor::new(reader, options.echo);
    if options.admin {
        say(
            out,
            &format!(
                "\r\nPostbox {} on {} - admin console\r\n",
                env!("CARGO_PKG_VERSION"),
                config.hostname
            ),
        )?;
        if !login(config, options, &mut lines, out)? {
            return out.flush();
        }
    }
    say(
        out,
        &format!(
            "Postbox {} console. Type 'help' for commands.\r\n",
            env!("CARGO_PKG_VERSION")
        ),
    )?;
    let mut session = Session {
        config,
        options,
        machine,
        lines,
    };
    loop {
        let line = match session.lines.read_line(out, PROMPT, false)? {
            Input::Line(line) => line,
            Input::Interrupt => continue,
            Input::End => {
                out.write_all(b"\r\n")?;
                return out.flush();
            }
        };
        if session.command(&line, out)? == Flow::Quit {
            return out.flush();
        }
    }
}

/// Whether the console goes on after a command.
#[derive(PartialEq, Eq)]
enum Flow {
    Next,
    Quit,
}

/// One console session: what its commands act on.
struct Session<'a, R> {
    config: &'a Config,
    options: &'a Options,
    machine: &'a mut dyn Machine,
    lines: Editor<R>,
}

impl<R: Read<Error = E>, E: embedded_io::Error> Session<'_, R> {
    fn command<W: Write<Error = E>>(&mut self, line: &str, out: &mut W) -> Result<Flow, E> {
        let admin = self.options.admin;
        let words: Vec<&str> = line.split_whitespace().collect();
        let words = words.as_slice();
        match words {
            [] => {}
            ["quit"] | ["exit"] | ["logout"] => return Ok(Flow::Quit),
            ["help"] => {
                let mut text = format!("commands:\n{}", help_text());
                if admin {
                    text.push_str(ADMIN_HELP);
                }
                out.write_all(text.replace('\n', "\r\n").as_bytes())?
            }
            _ if self.admin_verb(words, out)? => {}
            ["log"] | ["log", _] if admin || self.options.log_ring.is_some() => {
                match words.get(1).map(|n| n.parse::<usize>()) {
                    None => show_log(self.options, 20, out)?,
                    Some(Ok(n)) => show_log(self.options, n, out)?,
                    Some(Err(_)) => say(out, "error: log takes a number of lines\r\n")?,
                }
            }
            ["passwd"] if admin => self.admin_passwd(out)?,
            ["reboot"] if admin => {
                say(out, "stopping the server and rebooting...\r\n")?;
                out.flush()?;
                report(out, self.machine.reboot().map(|()| String::new()))?;
            }
            ["poweroff"] if admin => {
                say(out, "stopping the server and powering off...\r\n")?;
                out.flush()?;
                report(out, self.machine.poweroff().map(|()| String::new()))?;
            }
            ["shell"] if admin => return self.shell(out),
            ["wifi", "status"] if admin => {
                let status = self.machine.wifi_status();
                report(out, status.map(|text| text.replace('\n', "\r\n")))?
            }
            ["wifi", "set"] if admin => self.wifi_set(out)?,
            ["backup"] if admin => {
                say(out, "writing the backup to the USB stick...\r\n")?;
                out.flush()?;
                let file = self.options.config_file.as_deref();
                report(out, stick::backup(self.config, file, self.machine))?;
            }
            ["restore"] | ["restore", _] if admin => {
                let done = stick::restore(self.config, self.machine, words.get(1).copied());
                report(out, done.map(|text| text.replace('\n', "\r\n")))?;
            }
            _ => say(
                out,
                &format!("error: unknown command {:?}; type 'help'\r\n", line.trim()),
            )?,
        }
        Ok(Flow::Next)
    }

    /// Runs a verb of the admin table when `words` name one with fitting
    /// arguments; false otherwise.
    fn admin_verb<W: Write<Error = E>>(&mut self, words: &[&str], out: &mut W) -> Result<bool, E> {
        let admin::Lookup::Verb(verb, rest) = admin::lookup(words) else {
            return Ok(false);
        };
        let Some((args, keep)) = verb.arguments(rest) else {
            return Ok(false);
        };
        let password = match verb.password {
            false => String::new(),
            true => match ask_password(&mut self.lines, out)? {
                Some(password) => password,
                None => return Ok(true),
            },
        };
        let text = match (verb.text)(&args) {
            false => String::new(),
            true => match read_text(&mut self.lines, out)? {
                Some(text) => text,
                None => return Ok(true),
            },
        };
        let request = admin::Request {
            args: &args,
            password,
            keep,
            text,
        };
        match (verb.run)(self.config, &request) {
            Ok(admin::Output::Text(text)) => say(
                out,
                &format!("{}\r\n", text.trim_end().replace('\n', "\r\n")),
            )?,
            Ok(admin::Output::List(items, none)) if items.is_empty() => {
                say(out, &format!("{none}\r\n"))?
            }
            Ok(admin::Output::List(items, _)) => {
                for item in items {
                    say(out, &format!("{item}\r\n"))?;
                }
            }
            Err(e) => say(out, &format!("error: {e}\r\n"))?,
        }
        Ok(true)
    }

    fn admin_passwd<W: Write<Error = E>>(&mut self, out: &mut W) -> Result<(), E> {
        if self.config.admin_password_hash.is_some() {
            return say(
                out,
                "error: the admin password is set by admin_password_hash in the config\r\n",
            );
        }
        if let Some(password) = ask_password(&mut self.lines, out)? {
            report(
                out,
                save_admin_password(self.config, &password)
                    .map(|()| "admin password changed".into()),
            )?;
        }
        Ok(())
    }

    /// Asks for the network's name, password and country, checks them as
    /// `check-config` would, and has the board keep them and join.
    fn wifi_set<W: Write<Error = E>>(&mut self, out: &mut W) -> Result<(), E> {
        let Some(file) = self.options.config_file.clone() else {
            return say(
                out,
                "error: no config file to keep the Wi-Fi settings in\r\n",
            );
        };
        let Input::Line(ssid) = self.lines.read_line(out, "Network name (SSID): ", false)? else {
            return say(out, "\r\nnot changed\r\n");
        };
        let Some(password) = ask_password(&mut self.lines, out)? else {
            return say(out, "not changed\r\n");
        };
        let Input::Line(country) =
            self.lines
                .read_line(out, "Country (two letters, e.g. GB; Enter: none): ", false)?
        else {
            return say(out, "\r\nnot changed\r\n");
        };
        let country = Some(country.trim().to_ascii_uppercase()).filter(|c| !c.is_empty());
        match wifi::check(Some(&ssid), Some(&password), country.as_deref()) {
            Ok(Some(settings)) => report(out, self.machine.set_wifi(&file, &settings)),
            Ok(None) => say(out, "not changed\r\n"),
            Err(problems) => say(
                out,
                &format!("error: {}\r\nnot changed\r\n", problems.join("\r\nerror: ")),
            ),
        }
    }

    fn shell<W: Write<Error = E>>(&mut self, out: &mut W) -> Result<Flow, E> {
        say(
            out,
            "A root shell can break the mail store. Type 'repair' to continue: ",
        )?;
        match self.lines.read_line(out, "", false)? {
            Input::Line(answer) if answer.trim() == "repair" => {
                say(out, "root shell; 'exit' returns to the console\r\n")?;
                out.flush()?;
                if let Err(e) = self.machine.shell() {
                    say(out, &format!("error: {e}\r\n"))?;
                }
            }
            Input::End => return Ok(Flow::Quit),
            _ => say(out, "not started\r\n")?,
        }
        Ok(Flow::Next)
    }
}

/// The shared verbs' help, then the console's own.
fn help_text() -> String {
    let own = [
        ("help".to_string(), "this text"),
        ("quit".to_string(), "leave the console"),
    ];
    let own = admin::verbs::help_lines(&own, admin::verbs::CONSOLE_COLUMN);
    format!("{}{own}", admin::verbs::help())
}

/// Asks for the admin password, or on first use has one chosen. False when
/// input ended.
fn login<R: Read<Error = E>, W: Write<Error = E>, E: embedded_io::Error>(
    config: &Config,
    options: &Options,
    lines: &mut Editor<R>,
    out: &mut W,
) -> Result<bool, E> {
    let stored = stored_admin_hash(config.admin_password_hash.clone(), &config.data_dir);
    let Some(hash) = stored else {
        say(
            out,
            "First start: choose the admin password for this console.\r\n",
        )?;
        loop {
            let Some(password) = ask_password(lines, out)? else {
                if lines.at_end() {
                    return Ok(false);
                }
                continue;
            };
            match save_admin_password(config, &password) {
                Ok(()) => {
                    say(out, "admin password set\r\n")?;
                    return Ok(true);
                }
                Err(e) => say(out, &format!("error: {e}\r\n"))?,
            }
        }
    };
    let mut delay = options.login_delay;
    loop {
        match lines.read_line(out, "Admin password: ", true)? {
            Input::End => return Ok(false),
            Input::Interrupt => continue,
            Input::Line(password) => {
                if !lines.echo {
                    out.write_all(b"\r\n")?;
                }
                if password::verify(&password, &hash) {
                    return Ok(true);
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(30));
                say(out, "wrong password\r\n")?;
            }
        }
    }
}

/// Blocking: the admin password's hash: `admin_password_hash` from the
/// config if given, else what the console saved in the data directory;
/// `None` while none is set. (The console and the web admin sign-in both
/// read it here.)
pub fn stored_admin_hash(from_config: Option<String>, data_dir: &Path) -> Option<String> {
    from_config.or_else(|| {
        std::fs::read_to_string(data_dir.join(ADMIN_PASSWORD_FILE))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
}

fn save_admin_password(config: &Config, password: &str) -> Result<(), String> {
    password::check_new(password)?;
    let path = config.data_dir.join(ADMIN_PASSWORD_FILE);
    crate::store::durable::create_dir_durable(disk::system(), &config.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    crate::store::durable::replace_file(
        disk::system(),
        &path,
        format!("{}\n", password::hash(password)).as_bytes(),
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    Ok(())
}

fn show_log<W: Write>(options: &Options, count: usize, out: &mut W) -> Result<(), W::Error> {
    let Some(path) = &options.log_ring else {
        return say(out, "no log ring (postbox serve --log-ring FILE)\r\n");
    };
    let lines = crate::ops::logring::tail_with_notes(path, count);
    if lines.is_empty() {
        return say(out, "log is empty\r\n");
    }
    for line in lines {
        say(out, &format!("{line}\r\n"))?;
    }
    Ok(())
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

/// A verb's text: lines up to one holding only `.`; `None` on Ctrl-C or
/// end of input.
fn read_text<R: Read<Error = E>, W: Write<Error = E>, E: embedded_io::Error>(
    lines: &mut Editor<R>,
    out: &mut W,
) -> Result<Option<String>, E> {
    out.write_all(b"Text, ending with a line holding only '.':\r\n")?;
    let mut text = String::new();
    loop {
        match lines.read_line(out, "> ", false)? {
            Input::Line(line) if line == "." => return Ok(Some(text)),
            Input::Line(line) => {
                text.push_str(&line);
                text.push('\n');
            }
            Input::Interrupt | Input::End => return Ok(None),
        }
    }
}

/// Asks twice, unechoed; `None` when the answers differ, or on Ctrl-C or
/// end of input (the next read sees the end again).
fn ask_password<R: Read<Error = E>, W: Write<Error = E>, E: embedded_io::Error>(
    lines: &mut Editor<R>,
    out: &mut W,
) -> Result<Option<String>, E> {
    // Without echo the terminal (or nobody) shows the Enter: end the line.
    let newline = |lines: &Editor<R>, out: &mut W| {
        if lines.echo {
            Ok(())
        } else {
            out.write_all(b"\r\n")
        }
    };
    let Input::Line(first) = lines.read_line(out, "Password: ", true)? else {
        return Ok(None);
    };
    newline(lines, out)?;
    let Input::Line(second) = lines.read_line(out, "Again: ", true)? else {
        return Ok(None);
    };
    newline(lines, out)?;
    if first != second {
        out.write_all(b"error: passwords do not match\r\n")?;
        return Ok(None);
    }
    Ok(Some(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    /// The defaults, with data in `dir`.
    fn config_in(dir: &std::path::Path) -> Config {
        Config::load(&Overrides {
            data_dir: Some(dir.into()),
            ..Default::default()
        })
        .unwrap()
    }

    fn drive(config: &Config, input: &str) -> String {
        let mut output = Vec::new();
        run(config, input.as_bytes(), &mut output).unwrap();
        String::from_utf8(output).unwrap()
    }

    #[test]
    fn help_descriptions_share_one_column() {
        let text = format!("commands:\n{}{ADMIN_HELP}", help_text());
        let mut columns = Vec::new();
        let mut lines = text.lines().filter(|l| l.starts_with("  ")).peekable();
        while let Some(line) = lines.next() {
            let indent = |l: &str| l.len() - l.trim_start().len();
            let column = match line[2..].trim_start().find("  ") {
                // "  command   description": where the description starts.
                Some(gap) => {
                    let after = 2 + indent(&line[2..]) + gap;
                    after + indent(&line[after..])
                }
                // A long command alone: its description is on the next line.
                None => {
                    let next = lines
                        .next()
                        .unwrap_or_else(|| panic!("{line:?} has no description"));
                    assert!(
                        next.trim_start().len() < next.len() - 2,
                        "{line:?}: {next:?}"
                    );
                    indent(next)
                }
            };
            columns.push((column, line));
        }
        let first = columns[0].0;
        let wrong: Vec<_> = columns.iter().filter(|(c, _)| *c != first).collect();
        assert!(wrong.is_empty(), "not at column {first}: {wrong:#?}");
    }

    #[test]
    fn manages_users_through_in_memory_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
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
    fn routing_and_queue_verbs() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let text = drive(
            &config,
            "user add alice\nsecret1\nsecret1\nalias add club alice, friend@elsewhere.test\nalias list\nalias del club\nalias del club\nalias list\nuser forward alice bob@elsewhere.test --keep\nuser forward alice off\nqueue list\nqueue flush\nqueue delete nope\n",
        );
        assert!(
            text.contains("club: alice, friend@elsewhere.test\r\n"),
            "{text}"
        );
        assert!(text.contains("alias club removed"), "{text}");
        assert!(text.contains("error: no alias club"), "{text}");
        assert!(text.contains("no aliases"), "{text}");
        assert!(
            text.contains("forwards to bob@elsewhere.test and keeps a copy"),
            "{text}"
        );
        assert!(
            text.contains("alice@localhost no longer forwards"),
            "{text}"
        );
        assert!(text.contains("queue is empty\r\n"), "{text}");
        assert!(text.contains("error: no server is running"), "{text}");
        assert!(
            text.contains("error: no message nope in the queue"),
            "{text}"
        );
    }

    #[test]
    fn away_message_text_ends_at_a_dot_line() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let text = drive(
            &config,
            "user add alice\nsecret1\nsecret1\nuser away alice - Away for now\nBack soon.\n\nAlice\n.\nuser away alice\nuser away alice off\nuser away alice off\n",
        );
        assert!(text.contains("alice@localhost is away\r\n"), "{text}");
        assert!(
            text.contains("on\r\nsubject: Away for now\r\n\r\nBack soon.\r\n\r\nAlice\r\n"),
            "{text}"
        );
        assert!(
            text.contains("alice@localhost has no away message on now"),
            "{text}"
        );
        assert!(
            text.contains("error: alice@localhost has no away message on"),
            "{text}"
        );
    }

    #[test]
    fn end_of_input_ends_the_console() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let text = drive(&config, "user add alice\nonly-once");
        assert!(!text.contains("added"));
    }

    /// A board whose USB stick, when plugged in, is a folder.
    #[derive(Default)]
    struct FakeBoard(Vec<&'static str>, Option<PathBuf>);

    impl Machine for FakeBoard {
        fn reboot(&mut self) -> Result<(), String> {
            self.0.push("reboot");
            Ok(())
        }
        fn poweroff(&mut self) -> Result<(), String> {
            self.0.push("poweroff");
            Ok(())
        }
        fn shell(&mut self) -> Result<(), String> {
            self.0.push("shell");
            Ok(())
        }
        fn with_stick(
            &mut self,
            work: &mut dyn FnMut(&Path) -> Result<String, String>,
        ) -> Result<Option<String>, String> {
            match &self.1 {
                Some(stick) => work(stick).map(Some),
                None => Ok(None),
            }
        }
        fn hold_server(&mut self, hold: bool) -> Result<(), String> {
            self.0.push(if hold { "hold" } else { "release" });
            Ok(())
        }
        fn set_wifi(&mut self, file: &Path, wifi: &wifi::Wifi) -> Result<String, String> {
            assert_eq!(file, Path::new("/boot/postbox.toml"));
            assert_eq!(
                (wifi.ssid.as_str(), wifi.country.as_deref()),
                ("home net", Some("GB"))
            );
            self.0.push("set_wifi");
            Ok(format!("joining {:?}", wifi.ssid))
        }
    }

    #[test]
    fn wifi_set_asks_checks_and_hands_the_keys_to_the_board() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let options = Options {
            admin: true,
            login_delay: Duration::ZERO,
            config_file: Some("/boot/postbox.toml".into()),
            ..Options::default()
        };
        let mut board = FakeBoard::default();
        let input = "admin-pw\radmin-pw\rwifi set\rhome net\rshort\rshort\r\rwifi set\rhome net\rcorrect horse\rcorrect horse\rgb\rwifi status\r";
        let mut out = Vec::new();
        run_with(&config, &options, &mut board, input.as_bytes(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("error: network.wifi_password: 8 to 63"),
            "{text}"
        );
        assert!(text.contains("joining \"home net\""), "{text}");
        assert!(!text.contains("correct horse"), "password echoed: {text}");
        assert!(text.contains("error: not an appliance console"), "{text}");
        assert_eq!(board.0, ["set_wifi"]);
    }

    #[test]
    fn backup_to_a_usb_stick_and_restore_onto_a_fresh_card() {
        let dir = tempfile::tempdir().unwrap();
        let (old, fresh, stick) = (
            dir.path().join("old"),
            dir.path().join("fresh"),
            dir.path().join("stick"),
        );
        for d in [&old, &fresh, &stick] {
            std::fs::create_dir(d).unwrap();
        }
        let options = Options {
            admin: true,
            login_delay: Duration::ZERO,
            ..Options::default()
        };
        let session = |config: &Config, input: &str, board: &mut FakeBoard| {
            let mut out = Vec::new();
            run_with(config, &options, board, input.as_bytes(), &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let config = config_in(&old);
        let mut board = FakeBoard(Vec::new(), None);
        let text = session(&config, "admin-pw\radmin-pw\rbackup\r", &mut board);
        assert!(text.contains("error: no USB stick found"), "{text}");
        board.1 = Some(stick.clone());
        let text = session(
            &config,
            "admin-pw\ruser add alice\rsecret1\rsecret1\rbackup\rrestore\r",
            &mut board,
        );
        assert!(text.contains("written to the USB stick"), "{text}");
        assert_eq!(crate::mailio::archives::list(&stick).unwrap().len(), 1);
        assert!(text.contains("has users already"), "{text}");
        assert!(board.0.is_empty(), "held for nothing: {:?}", board.0);

        let config = config_in(&fresh);
        let text = session(&config, "pw-fresh\rpw-fresh\rrestore\r", &mut board);
        assert!(
            text.contains("backups on the stick:\r\n  postbox-"),
            "{text}"
        );
        assert!(text.contains("restored: "), "{text}");
        assert_eq!(board.0, ["hold", "release"]);
        let users = crate::store::users::load_or_report(&fresh).unwrap();
        assert!(users.find("alice", "localhost").is_some());
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("fresh.fresh-"))
            .count();
        assert_eq!(aside, 1, "the fresh card's files are kept");
    }

    #[test]
    fn admin_console_first_start_login_and_system_verbs() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let ring = dir.path().join("ring");
        std::fs::write(&ring, "one\ntwo\nthree\n").unwrap();
        let options = Options {
            admin: true,
            echo: true,
            log_ring: Some(ring),
            login_delay: Duration::ZERO,
            config_file: None,
        };
        let session = |input: &str, board: &mut FakeBoard| {
            let mut out = Vec::new();
            run_with(&config, &options, board, input.as_bytes(), &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let mut board = FakeBoard::default();
        // First start: choose the password (a mismatch asks again).
        let text = session(
            "a1\ra2\radmin-pw\radmin-pw\rlog 2\rshell\rno\rshell\rrepair\rreboot\r\x04",
            &mut board,
        );
        assert!(
            text.contains("First start: choose the admin password"),
            "{text}"
        );
        assert!(text.contains("passwords do not match"));
        assert!(text.contains("admin password set"));
        assert!(!text.contains("admin-pw"), "password echoed");
        assert!(text.contains("two\r\nthree\r\n") && !text.contains("one\r\n"));
        assert!(text.contains("not started"));
        assert_eq!(board.0, ["shell", "reboot"]);
        // Later starts ask for it; a wrong one is refused.
        let mut board = FakeBoard::default();
        let text = session("wrong\radmin-pw\rpoweroff\r", &mut board);
        assert!(text.contains("wrong password"), "{text}");
        assert!(text.contains("postbox> poweroff"));
        assert_eq!(board.0, ["poweroff"]);
        let text = session("wrong\r", &mut FakeBoard::default());
        assert!(!text.contains("postbox>"), "{text}");
        // The plain console has none of the system verbs.
        let text = drive(&config, "reboot\n");
        assert!(text.contains("unknown command \"reboot\""), "{text}");
    }
}
