//! What the appliance needs beyond mail, used by its init and console:
//! running as an unprivileged user, growing the data partition to fill the
//! card, setting the clock over SNTP, and facts for `status` (addresses,
//! disk use, uptime). `postbox system ...` exposes the init's part.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A user from /etc/passwd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

/// Looks `name` up in /etc/passwd (a static binary has no NSS).
pub fn account(name: &str) -> Result<Account, String> {
    let text = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    parse_passwd(&text, name).ok_or_else(|| format!("no user {name:?} in /etc/passwd"))
}

fn parse_passwd(text: &str, name: &str) -> Option<Account> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4 && fields[0] == name {
            Some(Account {
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
            })
        } else {
            None
        }
    })
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// For `serve`, once its ports are bound and before it touches the data
/// directory: becomes `account` for good.
pub fn drop_root(account: Account) -> Result<(), String> {
    // SAFETY: plain system calls with no pointers but the empty group list.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os_error("setgroups"));
        }
        if libc::setgid(account.gid) != 0 {
            return Err(os_error("setgid"));
        }
        if libc::setuid(account.uid) != 0 {
            return Err(os_error("setuid"));
        }
        if account.uid != 0 && libc::setuid(0) == 0 {
            return Err("still able to become root after dropping it".into());
        }
    }
    Ok(())
}

/// The name of user `uid` in /etc/passwd, or `uid N`.
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() >= 3 && fields[2].parse() == Ok(uid)).then(|| fields[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// For the console: works on the data directory as `name` (so the server
/// can use what it creates) while keeping root to get back for reboot,
/// poweroff and the repair shell.
pub fn act_as(account: Account) -> Result<(), String> {
    // SAFETY: plain system calls.
    unsafe {
        if libc::setegid(account.gid) != 0 {
            return Err(os_error("setegid"));
        }
        if libc::seteuid(account.uid) != 0 {
            return Err(os_error("seteuid"));
        }
    }
    Ok(())
}

/// Back to root (the real user) after [`act_as`].
pub fn act_as_root() -> Result<(), String> {
    // SAFETY: plain system calls.
    unsafe {
        if libc::seteuid(0) != 0 || libc::setegid(0) != 0 {
            return Err(os_error("cannot get root back"));
        }
    }
    Ok(())
}

// --- growing the data partition and its filesystem ----------------------

/// `/sys/class/block/NAME` of a device path like `/dev/mmcblk0p2`.
fn sysfs_block(device: &str) -> Result<std::path::PathBuf, String> {
    let name = Path::new(device)
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("not a device path: {device}"))?;
    let dir = Path::new("/sys/class/block").join(name);
    dir.canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn read_number(path: &Path) -> Result<u64, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .trim()
        .parse()
        .map_err(|_| format!("{}: not a number", path.display()))
}

/// Grows the MBR partition `device` (the last one) to the end of its card,
/// and tells the kernel, before the filesystem is mounted. Does nothing
/// when it already fills the card.
pub fn grow_partition(device: &str) -> Result<String, String> {
    let part = sysfs_block(device)?;
    let number = read_number(&part.join("partition"))?;
    let start = read_number(&part.join("start"))?;
    let size = read_number(&part.join("size"))?;
    let disk_dir = part.parent().ok_or("partition without a disk")?;
    let disk_sectors = read_number(&disk_dir.join("size"))?;
    let disk_name = disk_dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // Whole 4 KiB blocks, within what an MBR entry can say.
    let wanted = (disk_sectors.saturating_sub(start) & !7).min(u64::from(u32::MAX) & !7);
    if wanted <= size + 2048 || !(1..=4).contains(&number) {
        return Ok(format!("{device} already fills the card"));
    }
    let disk = format!("/dev/{disk_name}");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk)
        .map_err(|e| format!("{disk}: {e}"))?;
    let mut mbr = [0u8; 512];
    file.read_exact(&mut mbr)
        .map_err(|e| format!("{disk}: {e}"))?;
    let entry = 446 + 16 * (number as usize - 1);
    let le = |at: usize| u32::from_le_bytes(mbr[at..at + 4].try_into().unwrap());
    if mbr[510..512] != [0x55, 0xAA] || u64::from(le(entry + 8)) != start {
        return Err(format!(
            "{disk}: no MBR entry {number} starting at sector {start}"
        ));
    }
    for other in 0..4 {
        let at = 446 + 16 * other;
        let (s, n) = (u64::from(le(at + 8)), u64::from(le(at + 12)));
        if other != number as usize - 1 && n > 0 && s > start {
            return Err(format!("{device} is not the last partition"));
        }
    }
    mbr[entry + 12..entry + 16].copy_from_slice(&(wanted as u32).to_le_bytes());
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    file.write_all(&mbr).map_err(|e| format!("{disk}: {e}"))?;
    file.sync_all().map_err(|e| format!("{disk}: {e}"))?;
    // BLKPG resizes the kernel's view of one partition even while others
    // (the boot partition) are in use.
    #[repr(C)]
    struct BlkpgPartition {
        start: i64,
        length: i64,
        pno: libc::c_int,
        devname: [u8; 64],
        volname: [u8; 64],
    }
    #[repr(C)]
    struct BlkpgIoctlArg {
        op: libc::c_int,
        flags: libc::c_int,
        datalen: libc::c_int,
        data: *mut libc::c_void,
    }
    let mut partition = BlkpgPartition {
        start: (start * 512) as i64,
        length: (wanted * 512) as i64,
        pno: number as libc::c_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op: 3, // BLKPG_RESIZE_PARTITION
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: &mut partition as *mut BlkpgPartition as *mut libc::c_void,
    };
    const BLKPG: libc::c_ulong = 0x1269;
    // SAFETY: `arg` points at a live, correctly laid out blkpg_partition.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKPG as _, &mut arg) } != 0 {
        return Err(os_error("BLKPG resize"));
    }
    Ok(format!(
        "{device} grown from {} MiB to {} MiB",
        size / 2048,
        wanted / 2048
    ))
}

/// Grows the mounted ext4 filesystem on `device` to fill its partition
/// (the kernel's online resize, as resize2fs does it).
pub fn grow_filesystem(device: &str, mountpoint: &str) -> Result<String, String> {
    let part_bytes = read_number(&sysfs_block(device)?.join("size"))? * 512;
    let mut superblock = [0u8; 1024];
    let mut dev = File::open(device).map_err(|e| format!("{device}: {e}"))?;
    dev.seek(SeekFrom::Start(1024)).map_err(|e| e.to_string())?;
    dev.read_exact(&mut superblock)
        .map_err(|e| format!("{device}: {e}"))?;
    if superblock[0x38..0x3A] != [0x53, 0xEF] {
        return Err(format!("{device}: not ext2/3/4"));
    }
    let le32 = |at: usize| {
        u64::from(u32::from_le_bytes(
            superblock[at..at + 4].try_into().unwrap(),
        ))
    };
    let block_size = 1024u64 << le32(0x18);
    let incompat_64bit = le32(0x60) & 0x80 != 0;
    let blocks = le32(0x04) | if incompat_64bit { le32(0x150) << 32 } else { 0 };
    let wanted = part_bytes / block_size;
    if wanted <= blocks + 256 {
        return Ok(format!("{mountpoint} already fills {device}"));
    }
    let dir = File::open(mountpoint).map_err(|e| format!("{mountpoint}: {e}"))?;
    const EXT4_IOC_RESIZE_FS: libc::c_ulong = 0x4008_6610;
    let mut count = wanted;
    // SAFETY: the ioctl reads one u64 block count.
    if unsafe { libc::ioctl(dir.as_raw_fd(), EXT4_IOC_RESIZE_FS as _, &mut count) } != 0 {
        return Err(os_error("EXT4_IOC_RESIZE_FS"));
    }
    Ok(format!(
        "{mountpoint} grown from {} MiB to {} MiB",
        (blocks * block_size) >> 20,
        (wanted * block_size) >> 20
    ))
}

// --- time -----------------------------------------------------------------

/// Seconds between the NTP epoch (1900) and the Unix one.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Asks each server in turn (SNTP, RFC 4330) and steps the clock to the
/// first good answer.
pub fn ntp(servers: &[&str]) -> Result<String, String> {
    let mut last = String::from("no time servers given");
    for server in servers {
        match ask_time(server) {
            Ok(time) => {
                let now = SystemTime::now();
                let offset = match time.duration_since(now) {
                    Ok(ahead) => ahead.as_secs_f64(),
                    Err(e) => -e.duration().as_secs_f64(),
                };
                if offset.abs() > 0.5 {
                    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
                    let spec = libc::timespec {
                        tv_sec: since.as_secs() as _,
                        tv_nsec: since.subsec_nanos() as _,
                    };
                    // SAFETY: a valid timespec for CLOCK_REALTIME.
                    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &spec) } != 0 {
                        return Err(os_error("clock_settime"));
                    }
                }
                return Ok(format!("{server}: clock off by {offset:.3} s, set"));
            }
            Err(e) => last = format!("{server}: {e}"),
        }
    }
    Err(last)
}

fn ask_time(server: &str) -> Result<SystemTime, String> {
    use std::net::ToSocketAddrs;
    let addr = (server, 123)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let socket = UdpSocket::bind(if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .map_err(|e| e.to_string())?;
    socket.connect(addr).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut request = [0u8; 48];
    request[0] = 0x23; // no leap warning, version 4, client
                       // A random-looking transmit time to match the answer against.
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    request[40..48].copy_from_slice(&nonce.to_be_bytes());
    socket.send(&request).map_err(|e| e.to_string())?;
    let mut answer = [0u8; 128];
    let n = socket.recv(&mut answer).map_err(|e| e.to_string())?;
    parse_answer(&answer[..n], nonce)
}

fn parse_answer(answer: &[u8], nonce: u64) -> Result<SystemTime, String> {
    if answer.len() < 48 {
        return Err("short answer".into());
    }
    let leap = answer[0] >> 6;
    let mode = answer[0] & 7;
    let stratum = answer[1];
    let origin = u64::from_be_bytes(answer[24..32].try_into().unwrap());
    if mode != 4 || leap == 3 || stratum == 0 || stratum > 15 || origin != nonce {
        return Err("unsynchronized or mismatched answer".into());
    }
    let secs = u64::from(u32::from_be_bytes(answer[40..44].try_into().unwrap()));
    let frac = u64::from(u32::from_be_bytes(answer[44..48].try_into().unwrap()));
    let unix = secs
        .checked_sub(NTP_UNIX_OFFSET)
        .ok_or("time before 1970")?;
    Ok(UNIX_EPOCH + Duration::from_secs(unix) + Duration::from_nanos((frac * 1_000_000_000) >> 32))
}

// --- facts for status -----------------------------------------------------

/// The machine's addresses, as `eth0 192.168.1.20`, loopback left out.
pub fn addresses() -> Vec<String> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we walk read-only and then free.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut cur = list;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy();
            let ip: Option<IpAddr> = match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    Some(IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                }
                _ => None,
            };
            if let Some(ip) = ip.filter(|ip| !ip.is_loopback()) {
                found.push(format!("{name} {ip}"));
            }
        }
        libc::freeifaddrs(list);
    }
    found
}

/// (used, total) bytes of the filesystem holding `path`.
pub fn disk_use(path: &Path) -> Option<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into a zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    let total = st.f_blocks as u64 * unit;
    Some((total - st.f_bfree as u64 * unit, total))
}

/// Seconds since the machine booted.
pub fn uptime() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(secs as u64)
}

/// `postbox system WORDS...`: the init's helpers.
pub fn command(words: &[&str]) -> Result<String, String> {
    match words {
        ["grow-part", device] => grow_partition(device),
        ["grow-fs", device, mountpoint] => grow_filesystem(device, mountpoint),
        ["ntp", servers @ ..] if !servers.is_empty() => ntp(servers),
        ["wifi-watch"] => super::board::watch_wifi(),
        _ => Err("usage: postbox system grow-part DEVICE | grow-fs DEVICE MOUNTPOINT | ntp SERVER... | admin-hash".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup() {
        let text = "root:x:0:0:root:/:/bin/sh\npostbox:x:100:101:Postbox:/data:/bin/false\n";
        assert_eq!(
            parse_passwd(text, "postbox"),
            Some(Account { uid: 100, gid: 101 })
        );
        assert_eq!(parse_passwd(text, "post"), None);
    }

    #[test]
    fn sntp_answers_checked() {
        let mut answer = [0u8; 48];
        answer[0] = 0x24; // version 4, server
        answer[1] = 2;
        answer[24..32].copy_from_slice(&7u64.to_be_bytes());
        let secs = (NTP_UNIX_OFFSET + 1_795_600_000) as u32;
        answer[40..44].copy_from_slice(&secs.to_be_bytes());
        answer[44..48].copy_from_slice(&(1u32 << 31).to_be_bytes());
        let time = parse_answer(&answer, 7).unwrap();
        assert_eq!(
            time.duration_since(UNIX_EPOCH).unwrap(),
            Duration::from_millis(1_795_600_000_500)
        );
        assert!(parse_answer(&answer, 8).is_err(), "someone else's answer");
        answer[1] = 0;
        assert!(parse_answer(&answer, 7).is_err(), "kiss of death");
    }
}
