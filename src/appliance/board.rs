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

impl Machine for Board {
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
