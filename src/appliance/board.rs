//! The appliance console's machine: its serial line in raw mode, and
//! reboot, poweroff and the repair shell through the image's init (PID 1
//! takes TERM as reboot and USR2 as poweroff, as busybox init does).

use super::system::{act_as, act_as_root, Account};
use super::Machine;

/// The terminal on stdin, in raw mode while this lives (the console edits
/// lines itself; Ctrl-C arrives as a byte, not a signal).
pub struct RawTerminal {
    saved: Option<libc::termios>,
}

impl RawTerminal {
    /// Raw mode when stdin is a terminal; nothing otherwise.
    pub fn new() -> RawTerminal {
        // SAFETY: tcgetattr fills a termios we own.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return RawTerminal { saved: None };
        }
        let terminal = RawTerminal { saved: Some(saved) };
        terminal.raw();
        terminal
    }

    pub fn is_raw(&self) -> bool {
        self.saved.is_some()
    }

    fn raw(&self) {
        let Some(saved) = self.saved else { return };
        let mut t = saved;
        t.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
        t.c_iflag &= !(libc::ICRNL | libc::INLCR | libc::IXON | libc::ISTRIP);
        t.c_cc[libc::VMIN] = 1;
        t.c_cc[libc::VTIME] = 0;
        // SAFETY: sets attributes from a valid termios.
        unsafe { libc::tcsetattr(0, libc::TCSADRAIN, &t) };
    }

    fn cooked(&self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the attributes read at the start.
            unsafe { libc::tcsetattr(0, libc::TCSADRAIN, saved) };
        }
    }
}

impl Default for RawTerminal {
    fn default() -> Self {
        RawTerminal::new()
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        self.cooked();
    }
}

pub struct Board {
    pub terminal: RawTerminal,
    /// The data directory's owner, whom the console acts as between verbs.
    pub account: Option<Account>,
}

impl Board {
    fn signal_init(&mut self, signal: libc::c_int) -> Result<(), String> {
        act_as_root()?;
        // SAFETY: kill with a constant signal number.
        if unsafe { libc::kill(1, signal) } != 0 {
            return Err(format!(
                "cannot signal init: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

/// Where init keeps the server's process id, and the file that tells it
/// to keep the server off.
const SERVER_PID: &str = "/run/postbox/pid";
const SERVER_HOLD: &str = "/run/postbox/hold";

impl Board {
    /// Runs `work` as root, then acts as the data directory's owner again.
    fn as_root<T>(&mut self, work: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        act_as_root()?;
        let result = work();
        if let Some(account) = self.account {
            act_as(account)?;
        }
        result
    }
}

/// Sends the server SIGTERM and waits (up to a minute: a message in DATA
/// may take 30 s) until it is gone.
fn stop_server() -> Result<(), String> {
    let Some(pid) = std::fs::read_to_string(SERVER_PID)
        .ok()
        .and_then(|p| p.trim().parse::<libc::pid_t>().ok())
    else {
        return Ok(());
    };
    // SAFETY: kill with a constant signal; 0 only asks whether it lives.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Ok(()); // already gone
    }
    for _ in 0..600 {
        if unsafe { libc::kill(pid, 0) } != 0 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err("the mail server did not stop within a minute".into())
}

impl Machine for Board {
    fn wifi_status(&mut self) -> Result<String, String> {
        self.wifi_status_text()
    }

    fn set_wifi(
        &mut self,
        config_file: &std::path::Path,
        wifi: &super::wifi::Wifi,
    ) -> Result<String, String> {
        self.write_wifi(config_file, wifi)
    }

    fn with_stick(
        &mut self,
        work: &mut dyn FnMut(&std::path::Path) -> Result<String, String>,
    ) -> Result<Option<String>, String> {
        self.as_root(|| {
            let Some(stick) = super::stick::mount()? else {
                return Ok(None);
            };
            let done = work(&stick.path);
            drop(stick); // unmounted (after a sync of its own) before we answer
            done.map(Some)
        })
    }

    fn hold_server(&mut self, hold: bool) -> Result<(), String> {
        self.as_root(|| match hold {
            true => {
                std::fs::write(SERVER_HOLD, "")
                    .map_err(|e| format!("cannot write {SERVER_HOLD}: {e}"))?;
                stop_server()
            }
            false => std::fs::remove_file(SERVER_HOLD)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| format!("cannot remove {SERVER_HOLD}: {e}")),
        })
    }

    fn reboot(&mut self) -> Result<(), String> {
        self.signal_init(libc::SIGTERM)
    }

    fn poweroff(&mut self) -> Result<(), String> {
        self.signal_init(libc::SIGUSR2)
    }

    fn shell(&mut self) -> Result<(), String> {
        act_as_root()?;
        self.terminal.cooked();
        // The shell takes the terminal's foreground; the console must
        // survive its Ctrl-C and take the terminal back afterwards.
        let ignored = [
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTSTP,
            libc::SIGTTOU,
            libc::SIGTTIN,
        ];
        // SAFETY: setting dispositions to SIG_IGN and back to SIG_DFL.
        unsafe {
            for s in ignored {
                libc::signal(s, libc::SIG_IGN);
            }
        }
        let status = std::process::Command::new("/bin/sh")
            .env("PS1", "repair# ")
            .status();
        // SAFETY: see above; tcsetpgrp on our own terminal and group.
        unsafe {
            libc::tcsetpgrp(0, libc::getpgrp());
            for s in ignored {
                libc::signal(s, libc::SIG_DFL);
            }
        }
        self.terminal.raw();
        if let Some(account) = self.account {
            act_as(account)?;
        }
        status
            .map(|_| ())
            .map_err(|e| format!("cannot start /bin/sh: {e}"))
    }
}

/// Where the image's init runs the supplicant's control sockets, and the
/// file it notes the last Wi-Fi trouble in (a wrong password).
const SUPPLICANT_SOCKETS: &str = super::wifi::CONTROL_DIR;
const WIFI_TROUBLE: &str = "/run/postbox/wifi-trouble";
/// Made by `wifi set`: the init's Wi-Fi loop starts the supplicant again.
const WIFI_CHANGED: &str = "/run/postbox/wifi-changed";

/// A datagram socket bound to our own path and connected to the
/// supplicant's control socket.
struct Control {
    socket: std::os::unix::net::UnixDatagram,
    local: String,
}

impl Control {
    fn open() -> Result<Control, String> {
        let server = format!("{SUPPLICANT_SOCKETS}/{}", super::wifi::INTERFACE);
        let local = format!("/run/postbox/wpa_ctrl_{}", std::process::id());
        let _ = std::fs::remove_file(&local);
        let socket = std::os::unix::net::UnixDatagram::bind(&local)
            .map_err(|e| format!("cannot bind {local}: {e}"))?;
        let control = Control { socket, local };
        control
            .socket
            .connect(&server)
            .and_then(|()| {
                control
                    .socket
                    .set_read_timeout(Some(std::time::Duration::from_secs(3)))
            })
            .map_err(|e| format!("no Wi-Fi supplicant at {server}: {e}"))?;
        Ok(control)
    }

    fn send(&self, request: &str) -> Result<(), String> {
        self.socket
            .send(request.as_bytes())
            .map(|_| ())
            .map_err(|e| format!("the Wi-Fi supplicant is gone: {e}"))
    }

    /// The next datagram; `None` after the read timeout.
    fn receive(&self) -> Result<Option<String>, String> {
        let mut reply = vec![0u8; 4096];
        match self.socket.recv(&mut reply) {
            Ok(n) => Ok(Some(String::from_utf8_lossy(&reply[..n]).into_owned())),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(format!("the Wi-Fi supplicant is gone: {e}")),
        }
    }

    fn request(&self, request: &str) -> Result<String, String> {
        self.send(request)?;
        self.receive()?
            .ok_or_else(|| format!("no answer from the Wi-Fi supplicant to {request}"))
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.local);
    }
}

fn supplicant_request(request: &str) -> Result<String, String> {
    Control::open()?.request(request)
}

/// `postbox system wifi-watch` (the init runs it beside the supplicant):
/// prints what the supplicant's events mean, one line each (a wrong
/// password, associated, lost), and keeps the last trouble for `wifi
/// status`; returns when the supplicant is gone.
pub fn watch_wifi() -> Result<String, String> {
    use std::io::Write;
    let mut tries = 0;
    let control = loop {
        match Control::open().and_then(|c| c.request("ATTACH").map(|_| c)) {
            Ok(control) => break control,
            Err(e) if tries == 30 => return Err(e),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(500)),
        }
        tries += 1;
    };
    // Each trouble said once until the board joins; a loss only after a join.
    let (mut said, mut joined) = (String::new(), false);
    loop {
        let Some(event) = control.receive()? else {
            control.send("PING")?; // fails once the supplicant is gone
            continue;
        };
        let Some((line, trouble)) = super::wifi::event_message(&event) else {
            continue;
        };
        let news = match trouble {
            true => {
                std::fs::write(WIFI_TROUBLE, &line)
                    .map_err(|e| format!("cannot write {WIFI_TROUBLE}: {e}"))?;
                line != said
            }
            false => {
                let _ = std::fs::remove_file(WIFI_TROUBLE);
                let join = line.starts_with("Wi-Fi: associated");
                let news = join || joined;
                joined = join;
                news
            }
        };
        if news {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            said = line;
        }
    }
}

impl Board {
    pub fn wifi_status_text(&mut self) -> Result<String, String> {
        self.as_root(|| {
            let trouble = std::fs::read_to_string(WIFI_TROUBLE).ok();
            let status = match supplicant_request("STATUS") {
                Ok(status) => status,
                Err(e) if !std::path::Path::new(SUPPLICANT_SOCKETS).exists() => {
                    return Err(format!(
                        "Wi-Fi is off: no radio on this board, or no wifi_ssid in postbox.toml ({e})"
                    ))
                }
                Err(e) => return Err(e),
            };
            let signal = supplicant_request("SIGNAL_POLL").unwrap_or_default();
            Ok(super::wifi::describe(&status, &signal, trouble.as_deref()))
        })
    }

    /// Writes the keys into the config file on the boot partition (which
    /// the init mounts read-only) and has the init start the supplicant again.
    pub fn write_wifi(
        &mut self,
        config_file: &std::path::Path,
        wifi: &super::wifi::Wifi,
    ) -> Result<String, String> {
        self.as_root(|| {
            let file = std::fs::canonicalize(config_file)
                .map_err(|e| format!("cannot find {}: {e}", config_file.display()))?;
            if !file.starts_with("/boot") {
                return Err("no postbox.toml on the boot partition to keep the settings in".into());
            }
            let remount = |mode: &str| {
                std::process::Command::new("mount")
                    .args(["-o", &format!("remount,{mode}"), "/boot"])
                    .status()
                    .map_err(|e| e.to_string())
                    .and_then(|s| {
                        s.success()
                            .then_some(())
                            .ok_or(format!("mount -o remount,{mode} /boot failed"))
                    })
            };
            remount("rw")?;
            let written = std::fs::read_to_string(&file)
                .map(|text| super::wifi::set_in_toml(&text, wifi))
                .and_then(|text| {
                    let new = file.with_extension("toml.new");
                    std::fs::write(&new, text)?;
                    std::fs::File::open(&new)?.sync_all()?;
                    std::fs::rename(&new, &file)
                })
                .map_err(|e| format!("cannot write {}: {e}", file.display()));
            // SAFETY: sync takes no arguments.
            unsafe { libc::sync() };
            let back = remount("ro");
            written?;
            back?;
            let _ = std::fs::remove_file(WIFI_TROUBLE);
            std::fs::write(WIFI_CHANGED, "")
                .map_err(|e| format!("cannot write {WIFI_CHANGED}: {e}"))?;
            Ok(format!(
                "saved in {}; joining {:?}",
                file.display(),
                wifi.ssid
            ))
        })
    }
}
