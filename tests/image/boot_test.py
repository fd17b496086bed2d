#!/usr/bin/python3
"""Boots the appliance images under qemu and drives them like a user would:
the serial console (pexpect) for administration, and mail over the host's
forwarded ports with Python's own SMTP and POP3 clients.

  boot_test.py IMAGE_DIR [qemu-virt] [no-data] [mistakes] [stick] [wifi] [rpi3] [rpi0] [rpi2]

IMAGE_DIR is target/image (made by scripts/build-image for each board).
Nothing leaves the machine: qemu's user network only, the guest's time
servers off and its DNS pointed at a closed port.
"""

import hashlib
import http.client
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import pexpect

ADMIN_PW = "console-Secret-1"
PASSWORDS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}
TEST_CONFIG = """\
hostname = "postbox.test"
domains = ["localhost"]
dns_resolver = "127.0.0.1:9"
# This board has no DNS: strangers' mail is not checked here (SPF, DKIM
# and DMARC are tested between two servers in tests/mailauth.rs).
[inbound]
spf = "off"
dkim = "off"
dmarc = "off"
[network]
mode = "dhcp"
interface = "eth0"
ntp = ""
[smtp]
listen = "0.0.0.0:25"
[submission]
listen = "0.0.0.0:587"
[submissions]
listen = "0.0.0.0:465"
[pop3]
listen = "0.0.0.0:110"
[pop3s]
listen = "0.0.0.0:995"
[web]
listen = "0.0.0.0:443"
http_listen = "0.0.0.0:80"
"""
BOOT_TIMEOUT = 240
MIB = 1024 * 1024


def log(text):
    print(f"[image-test] {text}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls():
    # The board's certificate is self-signed: no verification here.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def board_file(name):
    values = {}
    here = os.path.dirname(os.path.abspath(__file__))
    text = open(os.path.join(here, "..", "..", "board", name)).read()
    for m in re.finditer(r'^([A-Z_]+)="?([^"\n]*)"?$', text, re.M):
        values[m.group(1)] = m.group(2)
    return values


class Board:
    """One qemu run of an image; its serial console is `self.console`."""

    def __init__(self, image_dir, disk, ports, extra=(), initrd=None):
        self.image_dir = image_dir
        self.initrd = initrd or f"{image_dir}/qemu-virt/initramfs.cpio"
        self.disk = disk
        self.ports = ports
        self.extra = list(extra)
        self.console = None

    def start(self):
        board = board_file("qemu-virt")
        forwards = ",".join(
            f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for guest, host in self.ports.items()
        )
        args = [
            "-M", "virt", "-cpu", "cortex-a53", "-m", "512", "-smp", "2",
            "-kernel", f"{self.image_dir}/qemu-virt/vmlinuz",
            "-initrd", self.initrd,
            "-append", board["CMDLINE"],
            "-netdev", f"user,id=n,{forwards}",
            "-device", "virtio-net-device,netdev=n",
            "-drive", f"if=none,file={self.disk},format=raw,id=d",
            "-device", "virtio-blk-device,drive=d",
            "-device", "i6300esb",
            "-nographic",
        ] + self.extra
        self.started = time.monotonic()
        self.console = pexpect.spawn(
            "qemu-system-aarch64", args, encoding="utf-8", codec_errors="replace",
            timeout=BOOT_TIMEOUT,
        )
        self.console.logfile_read = open(self.disk + ".console.log", "a")

    def expect(self, pattern, timeout=60):
        return self.console.expect(pattern, timeout=timeout)

    def command(self, line, answers=(), expect="postbox> ", timeout=60):
        """Types a console command (and answers to its questions); returns
        what it printed."""
        self.console.send(line + "\r")
        for prompt, answer in answers:
            self.expect(prompt, timeout)
            self.console.send(answer + "\r")
        self.expect(expect, timeout)
        return self.console.before

    def login(self):
        self.expect("Admin password: ", BOOT_TIMEOUT)
        self.console.send(ADMIN_PW + "\r")
        self.expect("postbox> ")

    def smtp_ready(self):
        """Seconds from qemu's start until port 25 greets."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ports[25]), timeout=3) as s:
                    s.settimeout(3)
                    if s.recv(64).startswith(b"220"):
                        return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("SMTP never greeted")

    def kill(self):
        self.console.kill(signal.SIGKILL)
        self.console.close(force=True)

    def wait_exit(self, timeout=120):
        self.console.expect(pexpect.EOF, timeout=timeout)
        self.console.close()


def message(sender, rcpt, subject, body):
    digest = hashlib.sha256(body.encode()).hexdigest()
    return (
        f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
        f"X-Digest: {digest}\r\n\r\n{body}\r\nEND-OF-MESSAGE\r\n"
    )


def mailbox(ports, user):
    """Subject -> full text of every message in the user's mailbox, read
    over POP3 with STLS; checks each is whole."""
    pop = poplib.POP3("127.0.0.1", ports[110], timeout=30)
    pop.stls(context=tls())
    pop.user(f"{user}@localhost")
    pop.pass_(PASSWORDS[user])
    found = {}
    count, _ = pop.stat()
    for i in range(1, count + 1):
        lines = pop.retr(i)[1]
        text = "\r\n".join(l.decode("utf-8", "replace") for l in lines)
        subject = re.search(r"^Subject: (.*)$", text, re.M).group(1).strip()
        digest = re.search(r"^X-Digest: (\w+)$", text, re.M)
        body = text.split("\r\n\r\n", 1)[1]
        assert body.endswith("END-OF-MESSAGE"), f"partial message {subject!r}"
        if digest:
            content = body[: -len("\r\nEND-OF-MESSAGE")]
            assert hashlib.sha256(content.encode()).hexdigest() == digest.group(1), subject
        found[subject] = text
    pop.quit()
    return found


def first_boot(board):
    board.start()
    # Measured from qemu's start, while the console is being set up.
    ready = []
    waiter = threading.Thread(target=lambda: ready.append(board.smtp_ready()))
    waiter.start()
    board.expect(r"watchdog on", BOOT_TIMEOUT)
    board.expect("choose the admin password", BOOT_TIMEOUT)
    board.expect("Password: ")
    board.console.send(ADMIN_PW + "\r")
    board.expect("Again: ")
    board.console.send(ADMIN_PW + "\r")
    board.expect("admin password set")
    board.expect("postbox> ")
    waiter.join()
    for user in ("alice", "bob"):
        out = board.command(
            f"user add {user}",
            [("Password: ", PASSWORDS[user]), ("Again: ", PASSWORDS[user])],
        )
        assert f"added {user}@localhost" in out, out
    return ready[0]


def send_mail(ports):
    s = smtplib.SMTP("127.0.0.1", ports[25], "client.test", timeout=60)
    s.sendmail(
        "friend@example.org", ["alice@localhost"],
        message("friend@example.org", "alice@localhost", "hello over smtp", "First message."),
    )
    s.quit()
    s = smtplib.SMTP("127.0.0.1", ports[587], "client.test", timeout=60)
    s.starttls(context=tls())
    s.login("bob@localhost", PASSWORDS["bob"])
    s.sendmail(
        "bob@localhost", ["alice@localhost"],
        message("bob@localhost", "alice@localhost", "from bob via submission", "Hi Alice."),
    )
    s.quit()


def web_pages(ports):
    """The pages on 443 (the mail certificate) and 80 (only redirects)."""
    page = http.client.HTTPSConnection("127.0.0.1", ports[443], timeout=30, context=tls())
    page.request("GET", "/", headers={"Host": "localhost"})
    answer = page.getresponse()
    body = answer.read().decode()
    assert answer.status == 200 and "Postbox at" in body, (answer.status, body)
    page.close()
    plain = http.client.HTTPConnection("127.0.0.1", ports[80], timeout=30)
    plain.request("GET", "/login", headers={"Host": "mail.club.test"})
    answer = plain.getresponse()
    assert answer.status == 301, answer.status
    assert answer.getheader("Location") == "https://mail.club.test/login", answer.getheaders()
    plain.close()


def stream(ports, acked, stop):
    """Delivers numbered messages until stopped or the board dies; notes
    each one that got its 250."""
    n = 0
    try:
        s = smtplib.SMTP("127.0.0.1", ports[25], "client.test", timeout=20)
        while not stop.is_set():
            body = f"Message {n}.\r\n" + ("x" * 70 + "\r\n") * (n % 50)
            s.sendmail(
                "friend@example.org", ["alice@localhost"],
                message("friend@example.org", "alice@localhost", f"stream {n}", body),
            )
            acked.append(n)
            n += 1
    except (OSError, smtplib.SMTPException):
        pass


def data_partition_check(disk):
    """Host-side e2fsck -fn of the data partition after a clean poweroff."""
    out = subprocess.run(["sfdisk", "-J", disk], capture_output=True, text=True, check=True).stdout
    import json
    parts = json.loads(out)["partitiontable"]["partitions"]
    data = parts[1]
    part = disk + ".data"
    subprocess.run(
        ["dd", f"if={disk}", f"of={part}", "bs=512", f"skip={data['start']}",
         f"count={data['size']}", "status=none"], check=True,
    )
    result = subprocess.run(["e2fsck", "-fn", part], capture_output=True, text=True)
    os.unlink(part)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_qemu_virt(image_dir, work):
    disk = os.path.join(work, "virt.img")
    subprocess.run(f"xz -dc {image_dir}/postbox-qemu-virt.img.xz > {disk}", shell=True, check=True)
    # What a user does on their PC: edit postbox.toml on the FAT partition.
    conf = os.path.join(work, "postbox.toml")
    open(conf, "w").write(TEST_CONFIG)
    subprocess.run(["mcopy", "-o", "-i", f"{disk}@@1M", conf, "::postbox.toml"], check=True)
    # A bigger card than the image: the data partition grows on first boot.
    os.truncate(disk, 1024 * MIB)
    ports = {p: free_port() for p in (25, 587, 110, 443, 80)}
    board = Board(image_dir, disk, ports)

    log("1. first boot: admin password, users alice and bob on the console")
    ready = first_boot(board)
    log(f"boot to SMTP ready: {ready:.1f} s (qemu TCG)")

    log("2. mail from the host: SMTP to alice, bob via submission+STARTTLS, POP3+STLS as alice; "
        "the web pages on 443 and 80")
    send_mail(ports)
    box = mailbox(ports, "alice")
    assert set(box) == {"hello over smtp", "from bob via submission"}, box.keys()
    assert "ESMTPSA" in box["from bob via submission"]
    web_pages(ports)
    status = board.command("status")
    assert "server: running" in status and "tls SHA-256:" in status, status
    assert "smtp 0.0.0.0:25" in status and "eth0 10.0.2.15" in status, status
    assert re.search(r"disk: \d+ of (\d+) MiB", status), status
    total = int(re.search(r"disk: \d+ of (\d+) MiB", status).group(1))
    assert total > 800, f"data partition not grown: {status}"
    logs = board.command("log 50")
    assert "serving localhost on smtp 0.0.0.0:25" in logs and "running as user postbox" in logs, logs

    log("3. reboot from the console: users and mail are still there")
    board.console.send("reboot\r")
    board.expect("stopping for reboot", 60)
    board.started = time.monotonic()
    board.login()
    users = board.command("user list")
    assert "alice@localhost (admin)" in users and "bob@localhost" in users, users
    board.smtp_ready()
    assert set(mailbox(ports, "alice")) == {"hello over smtp", "from bob via submission"}

    log("4. power cut in the middle of a stream of deliveries")
    acked, stop = [], threading.Event()
    sender = threading.Thread(target=stream, args=(ports, acked, stop))
    sender.start()
    deadline = time.monotonic() + 60
    while len(acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    board.kill()
    stop.set()
    sender.join()
    assert len(acked) >= 20, f"only {len(acked)} messages acknowledged before the cut"
    log(f"cut after {len(acked)} acknowledged messages")
    board.start()
    board.expect(r"e2fsck /dev/vda2 rc=(\d+)", BOOT_TIMEOUT)
    rc = int(board.console.match.group(1))
    assert rc in (0, 1), f"e2fsck -p after the power cut: rc={rc}"
    board.login()
    board.smtp_ready()
    box = mailbox(ports, "alice")
    missing = [n for n in acked if f"stream {n}" not in box]
    assert not missing, f"acknowledged but lost: {missing}"
    extra = len([s for s in box if s.startswith("stream ")]) - len(acked)
    log(f"all {len(acked)} acknowledged messages readable and whole ({extra} more that were in flight)")

    log("poweroff from the console; the data partition checks clean on the host")
    board.console.send("poweroff\r")
    board.wait_exit()
    log(f"host e2fsck -fn: {data_partition_check(disk)}")


def fresh_card(image_dir, work, name, backup="keep = 2\n"):
    disk = os.path.join(work, name)
    subprocess.run(f"xz -dc {image_dir}/postbox-qemu-virt.img.xz > {disk}", shell=True, check=True)
    conf = os.path.join(work, "postbox.toml")
    open(conf, "w").write(TEST_CONFIG + "[backup]\n" + backup)
    subprocess.run(["mcopy", "-o", "-i", f"{disk}@@1M", conf, "::postbox.toml"], check=True)
    os.truncate(disk, 1024 * MIB)
    return disk


def stick_archives(stick):
    out = subprocess.run(["mdir", "-b", "-i", stick, "::"], check=True,
                         capture_output=True, text=True).stdout
    return sorted(re.findall(r"postbox-\d{8}-\d{6}\.tar", out))


def test_usb_stick(image_dir, work):
    """The console's backup to a FAT stick on USB, and restore onto a fresh card."""
    stick = os.path.join(work, "stick.img")
    subprocess.run(["mkfs.vfat", "-C", stick, str(64 * 1024)], check=True, capture_output=True)
    usb = ["-device", "qemu-xhci", "-drive", f"if=none,id=stick,file={stick},format=raw",
           "-device", "usb-storage,drive=stick"]
    ports = {p: free_port() for p in (25, 587, 110, 443, 80)}

    log("usb stick 1. [backup] every: the box backs up to the stick by itself")
    unattended = 'keep = 2\nevery = "1d"\n'
    board = Board(image_dir, fresh_card(image_dir, work, "old.img", unattended), ports, usb)
    first_boot(board)
    board.expect(r"backup postbox-\d{8}-\d{6}\.tar written to the USB stick", 300)

    log("usb stick 1. a box with mail backs up to the stick from the console")
    send_mail(ports)
    assert set(mailbox(ports, "alice")) == {"hello over smtp", "from bob via submission"}
    out = board.command("backup", timeout=120)
    assert "written to the USB stick" in out, out
    board.console.send("poweroff\r")
    board.wait_exit()
    names = stick_archives(stick)
    assert len(names) == 2, names
    newest = names[-1]
    local = os.path.join(work, newest)
    subprocess.run(["mcopy", "-i", stick, f"::{newest}", local], check=True)
    import tarfile
    with tarfile.open(local) as archive:
        members = archive.getnames()
    assert members[0] == "postbox-backup.json" and "data/users" in members, members[:5]
    log(f"{newest}: {len(members)} members")

    log("usb stick 2. restore onto a fresh card: users and mail come back")
    board = Board(image_dir, fresh_card(image_dir, work, "new.img"), ports, usb)
    board.start()
    board.expect("choose the admin password", BOOT_TIMEOUT)
    board.expect("Password: ")
    board.console.send(ADMIN_PW + "\r")
    board.expect("Again: ")
    board.console.send(ADMIN_PW + "\r")
    board.expect("postbox> ")
    board.smtp_ready()
    out = board.command("restore", timeout=180)
    assert "restored: " in out and newest in out, out
    board.started = time.monotonic()
    board.smtp_ready()
    users = board.command("user list")
    assert "alice@localhost (admin)" in users and "bob@localhost" in users, users
    assert set(mailbox(ports, "alice")) == {"hello over smtp", "from bob via submission"}
    board.console.send("poweroff\r")
    board.wait_exit()


WIFI_AP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wifi-ap")
WIFI_SSID, WIFI_PASSWORD = "postbox-test", "correct horse battery"


def add_libraries(binaries, unpacked, root, libdir):
    """Copies into `root` the dynamic loader `binaries` name and every
    library they need (DT_NEEDED, recursively) from the `unpacked` debs,
    the libraries into `libdir`."""

    def readelf(flag, path):
        return subprocess.run(["readelf", flag, "-W", path], check=True,
                              capture_output=True, text=True).stdout

    def find(name):
        for folder, _, files in sorted(os.walk(unpacked)):
            # A link may point outside the unpacked tree: the file it names.
            if name in files and os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
        raise SystemExit(f"{name} is in none of the unpacked packages")

    interp = re.search(r"interpreter: (\S+)\]", readelf("-l", binaries[0])).group(1)
    os.makedirs(os.path.dirname(root + interp), exist_ok=True)
    shutil.copy(find(os.path.basename(interp)), root + interp)
    os.makedirs(os.path.join(root, libdir), exist_ok=True)
    todo, seen = list(binaries), {os.path.basename(interp)}
    while todo:
        for name in re.findall(r"\(NEEDED\).*\[(.*)\]", readelf("-d", todo.pop())):
            if name not in seen:
                seen.add(name)
                copy = os.path.join(root, libdir, name)
                shutil.copy(find(name), copy)
                todo.append(copy)


def wifi_initramfs(image_dir, work):
    """The image's initramfs with an access point added for the test only:
    a second archive after it (the kernel unpacks both) holding
    /etc/test-hook, which the init runs, and Debian's hostapd and iw with
    the shared libraries they load (in /usr/lib/test-ap; the image itself
    has none) and their dynamic loader."""
    debs = os.path.join(image_dir, "debs")
    extra = os.path.join(work, "wifi-ap")
    unpacked = os.path.join(work, "wifi-ap-debs")
    for package in ("hostapd", "iw", "libc6", "libssl3", "libnl-3-200", "libnl-genl-3-200",
                    "libnl-route-3-200"):
        found = [f for f in os.listdir(debs) if f.startswith(package + "_") and f.endswith("_arm64.deb")]
        if not found:
            subprocess.run(["apt-get", "download", "-q", f"{package}:arm64"], cwd=debs, check=True)
            found = [f for f in os.listdir(debs) if f.startswith(package + "_") and f.endswith("_arm64.deb")]
        subprocess.run(["dpkg-deb", "-x", os.path.join(debs, sorted(found)[-1]), unpacked], check=True)
    os.makedirs(os.path.join(extra, "usr/bin"))
    binaries = [os.path.join(unpacked, b) for b in ("usr/sbin/hostapd", "sbin/iw")]
    for binary in binaries:
        shutil.copy(binary, os.path.join(extra, "usr/bin"))
    add_libraries(binaries, unpacked, extra, "usr/lib/test-ap")
    os.makedirs(os.path.join(extra, "etc/test-ap"))
    shutil.copy(os.path.join(WIFI_AP, "test-hook"), os.path.join(extra, "etc/test-hook"))
    for name in ("ap-start", "ap-stop", "hostapd.conf", "udhcpd.conf"):
        shutil.copy(os.path.join(WIFI_AP, name), os.path.join(extra, "etc/test-ap", name))
    initrd = os.path.join(work, "initramfs-wifi.cpio")
    shutil.copy(f"{image_dir}/qemu-virt/initramfs.cpio", initrd)
    subprocess.run(
        f"cd {extra} && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0 | gzip -1 >> {initrd}",
        shell=True, check=True,
    )
    return initrd


def test_wifi(image_dir, work):
    """Wi-Fi without radios: the kernel's mac80211_hwsim makes two, an
    access point (hostapd, WPA2-PSK + WPA3-SAE, and a DHCP server) runs on
    one in a network namespace of its own with the board's eth0, and the
    board joins on the other. A wrong password is named on the console;
    `wifi set` corrects it; the board gets its address by DHCP, serves
    SMTP through qemu's forwarded port (relayed over the radio), and
    reconnects when the access point comes back."""
    log("8. Wi-Fi on simulated radios: wrong password named, wifi set, DHCP, SMTP, reconnect")
    disk = os.path.join(work, "wifi.img")
    subprocess.run(f"xz -dc {image_dir}/postbox-qemu-virt.img.xz > {disk}", shell=True, check=True)
    conf = os.path.join(work, "postbox.toml")
    # A wrong key as 64 hex digits: WPA2-PSK only, whose 4-way handshake
    # tells a wrong key apart (WPA3-SAE only says the access point refused).
    keys = f'[network]\nwifi_ssid = "{WIFI_SSID}"\nwifi_password = "{"ab" * 32}"\nwifi_country = "GB"\n'
    open(conf, "w").write(TEST_CONFIG.replace("[network]\n", keys))
    subprocess.run(["mcopy", "-o", "-i", f"{disk}@@1M", conf, "::postbox.toml"], check=True)
    os.truncate(disk, 1024 * MIB)
    ports = {p: free_port() for p in (25,)}
    board = Board(image_dir, disk, ports, initrd=wifi_initramfs(image_dir, work))
    try:
        board.start()
        board.expect("test-hook: access point postbox-test on wlan1", BOOT_TIMEOUT)
        board.expect("choose the admin password", BOOT_TIMEOUT)
        board.expect(f'Wi-Fi: wrong password for "{WIFI_SSID}": the 4-way handshake failed', 120)
        board.console.send(ADMIN_PW + "\r")
        board.expect("Again: ")
        board.console.send(ADMIN_PW + "\r")
        board.expect("postbox> ")
        out = board.command("wifi status")
        assert "wlan0: not associated" in out and "last problem: Wi-Fi: wrong password" in out, out
        out = board.command("wifi set", [
            ("SSID\\): ", WIFI_SSID), ("Password: ", WIFI_PASSWORD), ("Again: ", WIFI_PASSWORD),
            ("Country.*: ", "gb"),
        ])
        assert "saved in /boot/postbox.toml" in out, out
        board.expect(r"Wi-Fi: associated", 120)
        board.console.send("\r")
        board.expect("postbox> ")
        # The lease arrives by DHCP over the radio (udhcpc keeps asking).
        deadline = time.monotonic() + 120
        while "address 192.168.77.10" not in (out := board.command("wifi status")):
            assert time.monotonic() < deadline, out
            time.sleep(2)
        assert re.search(r'associated with "postbox-test" \((SAE|WPA2-PSK)\), signal -?\d+ dBm, address 192\.168\.77\.10', out), out
        log(f"wifi: {out.strip().splitlines()[-1]}")
        # The forwarded port reaches the access point's side, which relays to
        # the board's Wi-Fi address: the mail crosses the simulated radio.
        s = smtplib.SMTP("127.0.0.1", ports[25], "client.test", timeout=60)
        code, _ = s.ehlo()
        assert code == 250
        s.quit()
        log("wifi: SMTP over the radio answered")
        # The access point goes away and comes back: the board rejoins.
        board.command("shell", [("continue: ", "repair")], expect="repair# ")
        board.console.send("/etc/test-ap/ap-stop\r")
        board.expect(r"Wi-Fi: disconnected", 120)
        board.console.send("sleep 5; /etc/test-ap/ap-start\r")
        board.expect(r"Wi-Fi: associated", 120)
        board.console.send("exit\r")
        board.expect("postbox> ")
        s = smtplib.SMTP("127.0.0.1", ports[25], "client.test", timeout=60)
        assert s.ehlo()[0] == 250
        s.quit()
        log("wifi: rejoined after the access point came back; SMTP again")
        board.console.send("poweroff\r")
        board.wait_exit()
    finally:
        if board.console is not None and board.console.isalive():
            board.kill()


def partitions(disk):
    import json
    out = subprocess.run(["sfdisk", "-J", disk], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["partitiontable"]["partitions"]


def remove_data_partition(disk):
    """The card as if its second partition had been deleted on a PC."""
    boot = partitions(disk)[0]
    subprocess.run(["sfdisk", "-q", "--delete", disk, "2"], check=True)
    os.truncate(disk, (boot["start"] + boot["size"]) * 512)


def overwrite_data_filesystem(disk):
    """The data partition still there, its filesystem overwritten (every
    superblock copy with it, so no repair can bring it back)."""
    data = partitions(disk)[1]
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={disk}", "bs=512", f"seek={data['start']}",
         f"count={data['size']}", "conv=notrunc", "status=none"], check=True,
    )


def test_no_data_partition(image_dir, work):
    """Without its data partition the board never accepts mail (it would
    be kept in RAM); the console says why and what to do, and works."""
    for name, damage, said in (
        ("missing", remove_data_partition, "data partition missing"),
        ("unmountable", overwrite_data_filesystem, "data partition /dev/vda2 will not mount"),
    ):
        log(f"6. a card whose data partition is {name}: no mail server, the console explains")
        disk = os.path.join(work, f"{name}.img")
        subprocess.run(f"xz -dc {image_dir}/postbox-qemu-virt.img.xz > {disk}", shell=True, check=True)
        conf = os.path.join(work, "postbox.toml")
        open(conf, "w").write(TEST_CONFIG)
        subprocess.run(["mcopy", "-o", "-i", f"{disk}@@1M", conf, "::postbox.toml"], check=True)
        damage(disk)
        ports = {p: free_port() for p in (25, 587, 110)}
        board = Board(image_dir, disk, ports)
        board.start()
        board.expect(said, BOOT_TIMEOUT)
        board.expect("the mail server stays off")
        board.expect("reflash the card")
        # The console repeats it, and works.
        board.expect("choose the admin password", BOOT_TIMEOUT)
        assert said in board.console.before, board.console.before
        board.expect("Password: ")
        board.console.send(ADMIN_PW + "\r")
        board.expect("Again: ")
        board.console.send(ADMIN_PW + "\r")
        board.expect("postbox> ")
        status = board.command("status")
        assert "server: not running" in status, status
        logs = board.command("log 20")
        assert said in logs and "[init]" in logs, logs
        # Port 25 is forwarded by qemu, but nothing in the guest answers.
        with socket.create_connection(("127.0.0.1", ports[25]), timeout=10) as s:
            s.settimeout(10)
            try:
                greeting = s.recv(64)
            except OSError:
                greeting = b""
        assert not greeting.startswith(b"220"), greeting
        board.kill()
        log(f"{name}: mail server off, console up")


def test_config_mistakes(image_dir, work):
    """A postbox.toml with mistakes keeps the mail server off; the serial
    console names each mistake by its key."""
    log("7. a postbox.toml with mistakes: no mail server, the console names each")
    disk = os.path.join(work, "mistakes.img")
    subprocess.run(f"xz -dc {image_dir}/postbox-qemu-virt.img.xz > {disk}", shell=True, check=True)
    conf = os.path.join(work, "postbox.toml")
    open(conf, "w").write(TEST_CONFIG + "[queue]\nwarn = \"soon\"\n[greylist]\nallow_days = 400\n")
    subprocess.run(["mcopy", "-o", "-i", f"{disk}@@1M", conf, "::postbox.toml"], check=True)
    ports = {p: free_port() for p in (25, 587, 110)}
    board = Board(image_dir, disk, ports)
    board.start()
    board.expect("postbox.toml has mistakes; the mail server stays off", BOOT_TIMEOUT)
    board.expect("queue.warn: invalid duration")
    board.expect("greylist.allow_days must be 1 to 365 days, not 400")
    board.expect("correct postbox.toml on the boot partition")
    with socket.create_connection(("127.0.0.1", ports[25]), timeout=10) as s:
        s.settimeout(10)
        try:
            greeting = s.recv(64)
        except OSError:
            greeting = b""
    assert not greeting.startswith(b"220"), greeting
    board.kill()
    log("mistakes: mail server off, each named on the console")


# Each Pi board's qemu machine: the emulator, the device tree it boots,
# which of the machine's two serial ports (PL011, mini-UART) is the
# board's console, and kernel arguments for the emulator's gaps.
PI_MACHINES = {
    "rpi3": ("qemu-system-aarch64", "raspi3b", "bcm2837-rpi-3-b.dtb", 1, ""),
    # The Zero W's device tree: its console is the mini-UART (the PL011
    # serves Bluetooth), found by the init from the device tree. qemu 7.2
    # has no power-domain bridge (ASB) registers, whose driver the rpi
    # kernel builds in: reading them stops the kernel, so it is not run.
    "rpi0": ("qemu-system-arm", "raspi0", "bcm2835-rpi-zero-w.dtb", 1,
             " initcall_blacklist=bcm2835_power_driver_init"),
    "rpi2": ("qemu-system-arm", "raspi2b", "bcm2836-rpi-2-b.dtb", 0, ""),
}


def test_pi(image_dir, work, name):
    emulator, machine, dtb, port, gaps = PI_MACHINES[name]
    log(f"5. {name} image on qemu -M {machine}: admin shell on the serial console, data partition mounted")
    board = board_file(name)
    card = os.path.join(work, f"{name}.img")
    subprocess.run(f"xz -dc {image_dir}/postbox-{name}.img.xz > {card}", shell=True, check=True)
    os.truncate(card, 2048 * MIB)  # qemu wants an SD card of a power-of-two size
    serial = [["-serial", "null"], ["-serial", "null"]]
    serial[port] = ["-serial", "stdio"]
    args = [
        "-M", machine,
        "-kernel", f"{image_dir}/{name}/vmlinuz",
        "-dtb", f"{image_dir}/{name}/{dtb}",
        "-initrd", f"{image_dir}/{name}/initramfs.cpio",
        # qemu's model of the Pi watchdog resets as soon as it is started.
        "-append", board["CMDLINE"] + " postbox.nowatchdog" + gaps,
        "-drive", f"if=sd,file={card},format=raw",
        *serial[0], *serial[1], "-display", "none", "-monitor", "none",
    ]
    started = time.monotonic()
    pi = pexpect.spawn(emulator, args, encoding="utf-8", codec_errors="replace",
                       timeout=BOOT_TIMEOUT * 2)
    pi.logfile_read = open(card + ".console.log", "w")
    if pi.expect(["choose the admin password", "Kernel panic", "Internal error"]) != 0:
        pi.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=5)
        raise AssertionError(f"{name}: the kernel stopped: {pi.before[-2000:]}")
    log(f"{name}: admin console after {time.monotonic() - started:.1f} s")
    pi.expect("Password: ")
    pi.send(ADMIN_PW + "\r")
    pi.expect("Again: ")
    pi.send(ADMIN_PW + "\r")
    pi.expect("postbox> ")
    pi.send("status\r")
    pi.expect("postbox> ", timeout=120)
    status = pi.before
    match = re.search(r"disk: \d+ of (\d+) MiB", status)
    assert match and int(match.group(1)) > 1500, f"data partition not mounted and grown: {status}"
    log(f"{name}: data partition mounted, {match.group(1)} MiB")
    pi.kill(signal.SIGKILL)
    pi.close(force=True)


def main():
    image_dir = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="postbox-image-test.")
    try:
        only = sys.argv[2:]  # e.g. "rpi3" to run one part
        if not only or "qemu-virt" in only:
            test_qemu_virt(image_dir, work)
        if not only or "no-data" in only:
            test_no_data_partition(image_dir, work)
        if not only or "mistakes" in only:
            test_config_mistakes(image_dir, work)
        if not only or "stick" in only:
            test_usb_stick(image_dir, work)
        if not only or "wifi" in only:
            test_wifi(image_dir, work)
        for name in PI_MACHINES:
            if not only or name in only:
                test_pi(image_dir, work, name)
    except BaseException:
        for name in sorted(os.listdir(work)):
            if name.endswith(".console.log"):
                text = open(os.path.join(work, name), errors="replace").read()
                print(f"--- last of {name} ---\n{text[-4000:]}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log("all image tests passed")


if __name__ == "__main__":
    main()
