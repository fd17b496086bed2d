//! The appliance console's `backup` and `restore`: the box to and from a
//! USB stick, through the [`Machine`] that finds and mounts it, with the
//! folder's archives kept by [`crate::mailio::archives`].

use super::Machine;
use crate::config::Config;
use crate::mailio::archives;
use std::path::Path;

const NO_STICK: &str = "no USB stick found: plug one in (FAT or ext4) and try again";

/// `backup`: a new archive on the stick, the oldest beyond
/// `[backup] keep` removed.
pub fn backup(
    config: &Config,
    config_file: Option<&Path>,
    machine: &mut dyn Machine,
) -> Result<String, String> {
    let now = crate::queue::unix_now();
    let keep = config.backup.keep;
    let source = (
        config.data_dir.as_path(),
        config_file,
        config.hostname.as_str(),
    );
    let done = machine.with_stick(&mut |dir| {
        let (name, summary) = archives::back_up_into(dir, keep, now, source)?;
        let kept = archives::list(dir)?.len();
        Ok(format!(
            "{name} written to the USB stick: {}; {kept} backups on it (keeping {keep})",
            summary.report()
        ))
    })?;
    done.ok_or_else(|| NO_STICK.into())
}

/// `restore [NAME]`: onto a fresh card (no users yet), the chosen archive
/// of the stick, or its newest. The server is held off meanwhile; what it
/// made on the fresh card is kept beside, as `DATA.fresh-UNIXTIME`.
pub fn restore(
    config: &Config,
    machine: &mut dyn Machine,
    wanted: Option<&str>,
) -> Result<String, String> {
    let data = config.data_dir.clone();
    if data.join(crate::store::users::USERS_FILE).exists() {
        return Err(format!(
            "{} has users already: restore only onto a fresh card",
            data.display()
        ));
    }
    let listed = machine.with_stick(&mut |dir| {
        let names = archives::list(dir)?;
        let chosen = archives::choose(dir, wanted)?;
        let name = chosen.file_name().unwrap_or_default().to_string_lossy();
        Ok(format!(
            "backups on the stick:\n  {}\nrestoring {name}",
            names.join("\n  ")
        ))
    })?;
    let listed = listed.ok_or(NO_STICK)?;
    machine.hold_server(true)?;
    let restored = machine.with_stick(&mut |dir| restore_onto_fresh(dir, wanted, &data));
    let released = machine.hold_server(false);
    let restored = restored?.ok_or(NO_STICK)?;
    released?;
    Ok(format!("{listed}\n{restored}"))
}

/// Sets the fresh data directory aside and restores the archive in its
/// place, owned as it was.
fn restore_onto_fresh(dir: &Path, wanted: Option<&str>, data: &Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let archive = archives::choose(dir, wanted)?;
    let owner = std::fs::metadata(data).ok().map(|m| (m.uid(), m.gid()));
    let mut aside = None;
    if owner.is_some() {
        let mut name = data.as_os_str().to_owned();
        name.push(format!(".fresh-{}", crate::queue::unix_now()));
        std::fs::rename(data, &name)
            .map_err(|e| format!("cannot set {} aside: {e}", data.display()))?;
        aside = Some(std::path::PathBuf::from(name));
    }
    let summary = match archives::restore_into(&archive, data, owner) {
        Ok(summary) => summary,
        Err(e) => {
            if let Some(aside) = &aside {
                let _ = std::fs::rename(aside, data);
            }
            return Err(e);
        }
    };
    let kept = aside
        .map(|a| format!("; what the fresh card had is in {}", a.display()))
        .unwrap_or_default();
    Ok(format!("restored: {}{kept}", summary.report()))
}

/// `postbox system backup-due`, which init runs every few minutes as
/// root: when `[backup] every` is on and the newest backup on a plugged-in
/// stick is that old (or there is none), a new one. Says what it did, or
/// once (until a stick is seen again) that a backup is due with no stick;
/// otherwise nothing.
pub fn unattended_backup(config: &Config, config_file: Option<&Path>) -> Result<String, String> {
    use crate::appliance::stick;
    let every = config.backup.every.as_secs();
    if every == 0 {
        return Ok(String::new());
    }
    let now = crate::queue::unix_now();
    let Some(mounted) = stick::mount()? else {
        return Ok(match stick::note_absent(true) {
            true => format!(
                "a backup is due ([backup] every = {every}s) but no USB stick is plugged in"
            ),
            false => String::new(),
        });
    };
    stick::note_absent(false);
    if !archives::due(&mounted.path, every, now)? {
        return Ok(String::new());
    }
    let source = (
        config.data_dir.as_path(),
        config_file,
        config.hostname.as_str(),
    );
    let (name, summary) = archives::back_up_into(&mounted.path, config.backup.keep, now, source)?;
    Ok(format!(
        "backup {name} written to the USB stick ({}): {}",
        mounted.device,
        summary.report()
    ))
}
