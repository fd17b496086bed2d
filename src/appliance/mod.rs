//! The appliance: the board the server runs on (serial line, reboot,
//! poweroff, repair shell) and the system calls behind it (accounts, disk,
//! partitions, time). It uses nothing of the mail side, so everything
//! above may depend on it.

pub mod board;
pub mod stick;
pub mod system;
pub mod wifi;

/// What the console can do to the machine it runs on.
pub trait Machine {
    fn reboot(&mut self) -> Result<(), String>;
    fn poweroff(&mut self) -> Result<(), String>;
    /// Runs an interactive root shell on the console's terminal until it exits.
    fn shell(&mut self) -> Result<(), String>;
    /// Mounts a USB stick and runs `work` (as root) on its folder, then
    /// unmounts it; `Ok(None)` when no stick is plugged in.
    fn with_stick(
        &mut self,
        work: &mut dyn FnMut(&std::path::Path) -> Result<String, String>,
    ) -> Result<Option<String>, String>;
    /// Stops the mail server and keeps it off (`true`), or lets it run
    /// again (`false`).
    fn hold_server(&mut self, hold: bool) -> Result<(), String>;
    /// What the Wi-Fi supplicant says: associated or not, signal, address.
    fn wifi_status(&mut self) -> Result<String, String> {
        Err("not an appliance console (postbox console --admin)".into())
    }
    /// Keeps the Wi-Fi keys in `config_file` and joins that network.
    fn set_wifi(
        &mut self,
        config_file: &std::path::Path,
        wifi: &wifi::Wifi,
    ) -> Result<String, String> {
        let _ = (config_file, wifi);
        self.wifi_status()
    }
}

/// A machine that does none of it (plain `postbox console`).
pub struct NoMachine;

impl Machine for NoMachine {
    fn reboot(&mut self) -> Result<(), String> {
        Err("not an appliance console (postbox console --admin)".into())
    }
    fn poweroff(&mut self) -> Result<(), String> {
        self.reboot()
    }
    fn shell(&mut self) -> Result<(), String> {
        self.reboot()
    }
    fn with_stick(
        &mut self,
        _: &mut dyn FnMut(&std::path::Path) -> Result<String, String>,
    ) -> Result<Option<String>, String> {
        self.reboot().map(|()| None)
    }
    fn hold_server(&mut self, _: bool) -> Result<(), String> {
        self.reboot()
    }
}
