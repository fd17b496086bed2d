//! `postbox sendmail`: a local program's message, read from stdin as
//! sendmail reads it, written durably into the maildrop
//! (`DATA/maildrop/tmp`, fsynced, renamed into `new/`, `new/` fsynced)
//! for the server to pick up ([`super::maildrop`]).
//!
//! A maildrop file is the envelope (`sender ADDRESS`, `rcpt ADDRESS`...
//! lines, then an empty line) and the message as SMTP's DATA carries it:
//! CRLF line ends, dot-stuffed, ending in `.` CRLF.

use super::Pieces;
use crate::config::Config;
use crate::policy::from_header::HeaderScanner;
use crate::store::disk::{self, Disk};
use crate::store::durable::create_dir_durable;
use crate::store::{maildir, users};
use crate::wire::address::Address;
use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The maildrop folder in the data directory.
pub const MAILDROP_DIR: &str = "maildrop";
/// The first line of a maildrop file: its format.
pub const FORMAT_LINE: &str = "postbox-maildrop 1";

/// What the command line asks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `-t`: recipients from To:, Cc: and Bcc: (Bcc: then removed).
    pub extract: bool,
    /// `-i`, `-oi`: a line holding only `.` is text, not the end.
    pub ignore_dots: bool,
    /// `-f ADDRESS` (or `-r`): the envelope sender, a member's address.
    pub from: Option<String>,
    /// `-F NAME`: the full name in a From: field made for the message.
    pub full_name: Option<String>,
    pub recipients: Vec<String>,
    pub config: Option<PathBuf>,
    pub data: Option<PathBuf>,
}

/// Reads sendmail's options. Options sendmail takes that change nothing
/// here (`-oem`, `-odi`, `-bm`, `-v`...) are accepted and ignored.
pub fn parse_options(args: &[OsString]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.iter().map(|a| a.to_string_lossy().into_owned());
    let mut words_only = false;
    while let Some(arg) = args.next() {
        if words_only || !arg.starts_with('-') || arg == "-" {
            options.recipients.push(arg);
            continue;
        }
        let mut value = |flag: &str, rest: &str| -> Result<String, String> {
            match rest.is_empty() {
                false => Ok(rest.to_string()),
                true => args.next().ok_or(format!("{flag} needs a value")),
            }
        };
        match arg.as_str() {
            "--" => words_only = true,
            "-t" => options.extract = true,
            "-i" | "-oi" => options.ignore_dots = true,
            "--config" => options.config = Some(value("--config", "")?.into()),
            "--data" => options.data = Some(value("--data", "")?.into()),
            "-bm" | "-v" | "-U" | "-Am" | "-Ac" => {}
            _ if arg.starts_with("-b") => {
                return Err(format!("{arg}: only sending (-bm) is supported"));
            }
            _ if arg.starts_with("-f") => options.from = Some(value("-f", &arg[2..])?),
            _ if arg.starts_with("-r") => options.from = Some(value("-r", &arg[2..])?),
            _ if arg.starts_with("-F") => options.full_name = Some(value("-F", &arg[2..])?),
            // Delivery mode, error mode, queue hints: the server decides.
            _ if arg.starts_with("-o") || arg.starts_with("-e") => {}
            _ if arg.starts_with("-N") || arg.starts_with("-R") || arg.starts_with("-V") => {
                value(&arg[..2], &arg[2..])?;
            }
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(options)
}

/// Turns what a program writes on stdin into a maildrop file's message:
/// CRLF line ends, dot-stuffed, Bcc: taken out with `-t`, and the From:,
/// Date: and Message-ID: it lacks added at the end of its header section.
/// The header section is held (up to [`crate::limits::MAILIO_PIECE`]) so
/// the envelope, which `-t` takes from it, can be written first.
pub struct Composer {
    ignore_dots: bool,
    extract: bool,
    in_header: bool,
    header: Vec<u8>,
    /// The field whose lines are being read is Bcc:.
    in_bcc: bool,
    seen_from: bool,
    seen_date: bool,
    seen_message_id: bool,
    recipients: HeaderScanner<{ crate::limits::MAX_RECIPIENT_HEADERS }>,
    held_cr: bool,
    /// The body's last line so far has no line end yet.
    mid_line: bool,
    ended: bool,
    /// Octets of the body's line so far, and whether any line was over
    /// [`super::requote::MAX_LINE`] or any byte 8-bit.
    line_length: usize,
    long_line: bool,
    eight_bit: bool,
}

/// What the composer gives back.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep reading.
    More,
    /// The header section is complete: write it (with what it lacked)
    /// after the envelope; the addresses of To:, Cc: and Bcc: come with it.
    Header(Vec<u8>, Vec<String>),
    /// The message ended (a lone dot): stop reading.
    End,
}

/// The header fields a message lacks, made by the caller.
pub struct Missing {
    pub from: String,
    pub date: String,
    pub message_id: String,
}

impl Composer {
    pub fn new(options: &Options) -> Self {
        Composer {
            ignore_dots: options.ignore_dots,
            extract: options.extract,
            in_header: true,
            header: Vec::new(),
            in_bcc: false,
            seen_from: false,
            seen_date: false,
            seen_message_id: false,
            recipients: HeaderScanner::for_fields(&["to", "cc", "bcc"]),
            held_cr: false,
            mid_line: false,
            ended: false,
            line_length: 0,
            long_line: false,
            eight_bit: false,
        }
    }

    /// Whether a body line is over 998 octets, and whether the body has
    /// 8-bit bytes.
    pub fn long_line(&self) -> (bool, bool) {
        (self.long_line, self.eight_bit)
    }

    /// Takes a piece of a line of input; `starts_line` when it begins
    /// one. Body bytes go to `out`; `Err` when the header section is
    /// longer than the cap.
    pub fn piece(
        &mut self,
        piece: &[u8],
        starts_line: bool,
        missing: &dyn Fn() -> Missing,
        out: &mut impl FnMut(&[u8]),
    ) -> Result<Step, String> {
        if self.ended || piece.is_empty() {
            return Ok(Step::More);
        }
        let ends_line = piece.ends_with(b"\n");
        let text = trim_line_end(piece);
        if starts_line && !self.ignore_dots && ends_line && text == b"." {
            return Ok(self.end(missing, out));
        }
        if self.in_header {
            let continuation = !starts_line || piece.starts_with(b" ") || piece.starts_with(b"\t");
            let field = !continuation && text.contains(&b':') && !text.starts_with(b":");
            if starts_line && !continuation && !field {
                // The empty line, or text with no header before it.
                let header = self.close_header(missing);
                let step = Step::Header(header, self.recipients.addresses_seen());
                if !text.is_empty() {
                    self.body(piece, starts_line, out);
                }
                return Ok(step);
            }
            if field {
                let name = text.split(|b| *b == b':').next().unwrap_or(b"");
                let is = |wanted: &str| name.trim_ascii().eq_ignore_ascii_case(wanted.as_bytes());
                self.in_bcc = is("bcc");
                self.seen_from |= is("from");
                self.seen_date |= is("date");
                self.seen_message_id |= is("message-id");
            }
            let mut line = text.to_vec();
            if ends_line {
                line.extend_from_slice(b"\r\n");
            }
            self.recipients.feed(&line);
            if !(self.extract && self.in_bcc) {
                self.header.extend_from_slice(&line);
            }
            if self.header.len() > crate::limits::MAILIO_PIECE {
                return Err(format!(
                    "the header section is longer than {} bytes",
                    crate::limits::MAILIO_PIECE
                ));
            }
            return Ok(Step::More);
        }
        self.body(piece, starts_line, out);
        Ok(Step::More)
    }

    fn body(&mut self, piece: &[u8], starts_line: bool, out: &mut impl FnMut(&[u8])) {
        if starts_line && piece.starts_with(b".") {
            out(b".");
        }
        let mut text = piece;
        if self.held_cr {
            self.held_cr = false;
            if text == b"\n" {
                out(b"\r\n");
                self.mid_line = false;
                self.line_length = 0;
                return;
            }
            out(b"\r");
        }
        let ends_line = text.ends_with(b"\n");
        if ends_line {
            text = trim_line_end(text);
        } else if let Some(rest) = text.strip_suffix(b"\r") {
            self.held_cr = true;
            text = rest;
        }
        out(text);
        self.line_length += text.len();
        self.long_line |= self.line_length > super::requote::MAX_LINE;
        self.eight_bit |= !text.is_ascii();
        if ends_line {
            out(b"\r\n");
            self.line_length = 0;
        }
        self.mid_line = !ends_line;
    }

    /// The header section with what it lacks, and the empty line.
    fn close_header(&mut self, missing: &dyn Fn() -> Missing) -> Vec<u8> {
        self.in_header = false;
        let mut header = std::mem::take(&mut self.header);
        // A field cut off by the end of input still ends its line.
        if !header.is_empty() && !header.ends_with(b"\n") {
            header.extend_from_slice(b"\r\n");
        }
        let missing = missing();
        for (seen, field) in [
            (self.seen_from, &missing.from),
            (self.seen_date, &missing.date),
            (self.seen_message_id, &missing.message_id),
        ] {
            if !seen {
                header.extend_from_slice(field.as_bytes());
            }
        }
        header.extend_from_slice(b"\r\n");
        header
    }

    /// The input ended (a lone dot, or its end): the header section if it
    /// is still held.
    pub fn end(&mut self, missing: &dyn Fn() -> Missing, out: &mut impl FnMut(&[u8])) -> Step {
        if self.held_cr {
            self.held_cr = false;
            out(b"\r");
        }
        self.ended = true;
        if self.in_header {
            let header = self.close_header(missing);
            return Step::Header(header, self.recipients.addresses_seen());
        }
        Step::End
    }

    /// Whether the message has ended (a lone dot was read).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The final dot, after a line end if the body's last line has none.
    pub fn finish(&self, out: &mut impl FnMut(&[u8])) {
        if self.mid_line {
            out(b"\r\n");
        }
        out(b".\r\n");
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The name of the user running this process, for the sender's address.
pub fn login_name() -> String {
    // SAFETY: getuid cannot fail; getpwuid's answer is copied out at once
    // (a command line tool, one thread).
    unsafe {
        let uid = libc::getuid();
        let entry = libc::getpwuid(uid);
        if entry.is_null() || (*entry).pw_name.is_null() {
            return format!("uid{uid}");
        }
        std::ffi::CStr::from_ptr((*entry).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// The envelope sender: a member's address given with `-f`, else the
/// local user's name at the box's own domain.
fn sender(config: &Config, options: &Options, login: &str) -> Result<String, String> {
    let own = format!("{login}@{}", config.default_domain());
    let Some(from) = &options.from else {
        return Ok(own);
    };
    let address = Address::parse_path(from.trim_matches(['<', '>']))
        .map_err(|_| format!("-f {from}: not an address"))?;
    if address.as_str().eq_ignore_ascii_case(&own) {
        return Ok(own);
    }
    let list = users::load_or_report(config.mail_dir())?;
    match list.find(address.local(), address.domain()) {
        Some(_) => Ok(address.as_str().to_string()),
        None => Err(format!("-f {from}: not a member's address")),
    }
}

/// A recipient as given, a bare name meaning one at the box's domain.
fn full_address(config: &Config, rcpt: &str) -> Result<String, String> {
    let rcpt = rcpt.trim().trim_matches(['<', '>']);
    let text = match rcpt.contains('@') {
        true => rcpt.to_string(),
        false => format!("{rcpt}@{}", config.default_domain()),
    };
    Address::parse_path(&text)
        .map(|a| a.as_str().to_string())
        .map_err(|_| format!("{rcpt}: not an address"))
}

/// What was dropped: the file's name and whether the server was told.
pub struct Dropped {
    pub name: String,
    pub server_running: bool,
}

/// Reads the message from `input` and makes it durable in the maildrop;
/// then tells the running server, if any, to look.
pub fn drop_message(
    config: &Config,
    options: &Options,
    login: &str,
    input: impl BufRead,
) -> Result<Dropped, String> {
    if !config.data_dir.is_dir() {
        return Err(format!(
            "no data directory {} (check --data or the config)",
            config.data_dir.display()
        ));
    }
    let sender = sender(config, options, login)?;
    let mut recipients = options
        .recipients
        .iter()
        .map(|r| full_address(config, r))
        .collect::<Result<Vec<_>, _>>()?;
    let disk = disk::system();
    let drop_dir = config.data_dir.join(MAILDROP_DIR);
    for sub in ["tmp", "new"] {
        create_dir_durable(&**disk, &drop_dir.join(sub))
            .map_err(|e| format!("cannot write in {}: {e}", drop_dir.display()))?;
    }
    let name = maildir::NameMaker::new(&config.hostname).next();
    let tmp = drop_dir.join("tmp").join(&name);
    let now = std::time::SystemTime::now();
    let missing = || Missing {
        from: match &options.full_name {
            Some(full) => format!("From: \"{}\" <{sender}>\r\n", full.replace(['"', '\\'], "")),
            None => format!("From: <{sender}>\r\n"),
        },
        date: format!("Date: {}\r\n", crate::ops::clock::rfc5322_date(now)),
        message_id: format!("Message-ID: <{name}@{}>\r\n", config.hostname),
    };
    let written = write_drop(
        config,
        options,
        &mut Dropping {
            path: &tmp,
            login,
            sender: &sender,
            recipients: &mut recipients,
            missing: &missing,
        },
        input,
    );
    let written = written.and_then(|w| match w.long_line {
        true => requote(&tmp, &w),
        false => Ok(()),
    });
    if let Err(e) = written {
        let _ = disk.unlink(&tmp);
        return Err(e);
    }
    let new = drop_dir.join("new");
    disk.rename(&tmp, &new.join(&name))
        .and_then(|()| disk.sync_dir(&new))
        .map_err(|e| format!("cannot write in {}: {e}", new.display()))?;
    let server_running = crate::ops::status::nudge_queue(&config.data_dir).unwrap_or(false);
    Ok(Dropped {
        name,
        server_running,
    })
}

/// Where and what a maildrop file is written with.
struct Dropping<'a> {
    path: &'a Path,
    login: &'a str,
    sender: &'a str,
    recipients: &'a mut Vec<String>,
    missing: &'a dyn Fn() -> Missing,
}

/// What [`write_drop`] wrote: the envelope and header section, and
/// whether a body line was over 998 octets (and the body 8-bit).
struct Written {
    envelope: String,
    header: Vec<u8>,
    long_line: bool,
    eight_bit: bool,
}

/// Writes the maildrop file: envelope, header, body, final dot; synced.
fn write_drop(
    config: &Config,
    options: &Options,
    drop: &mut Dropping<'_>,
    input: impl BufRead,
) -> Result<Written, String> {
    let cannot_write = |e: std::io::Error| format!("cannot write {}: {e}", drop.path.display());
    let disk = disk::system();
    let mut file = disk.create_new(drop.path, 0o600).map_err(cannot_write)?;
    let mut composer = Composer::new(options);
    let mut pieces = Pieces::new(input);
    let mut buffer: Vec<u8> = Vec::with_capacity(crate::limits::WRITE_CHUNK);
    let mut written = None;
    let write = |file: &mut disk::Handle, bytes: &[u8]| disk.write(file, bytes);
    loop {
        let step = match pieces
            .next_piece()
            .map_err(|e| format!("cannot read the message: {e}"))?
        {
            Some((piece, starts_line)) => {
                let mut emit = |b: &[u8]| buffer.extend_from_slice(b);
                composer.piece(piece, starts_line, drop.missing, &mut emit)?
            }
            None => composer.end(drop.missing, &mut |b| buffer.extend_from_slice(b)),
        };
        if let Step::Header(header, found) = step {
            if options.extract {
                for address in found {
                    let address = full_address(config, &address)?;
                    if !drop
                        .recipients
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(&address))
                    {
                        drop.recipients.push(address);
                    }
                }
            }
            if drop.recipients.is_empty() {
                return Err("no recipients (give them, or -t to take them from the header)".into());
            }
            let head = envelope(drop.login, drop.sender, drop.recipients);
            write(&mut file, head.as_bytes()).map_err(cannot_write)?;
            write(&mut file, &header).map_err(cannot_write)?;
            written = Some((head, header));
        }
        if written.is_some() && (buffer.len() >= crate::limits::WRITE_CHUNK || composer.is_ended())
        {
            write(&mut file, &buffer).map_err(cannot_write)?;
            buffer.clear();
        }
        if composer.is_ended() {
            break;
        }
    }
    let mut tail = Vec::new();
    composer.finish(&mut |b| tail.extend_from_slice(b));
    write(&mut file, &tail).map_err(cannot_write)?;
    disk.sync(&file).map_err(cannot_write)?;
    let (envelope, header) = written.expect("the header is written before the input ends");
    let (long_line, eight_bit) = composer.long_line();
    Ok(Written {
        envelope,
        header,
        long_line,
        eight_bit,
    })
}

/// Rewrites the maildrop file at `path` with its body quoted-printable
/// ([`super::requote`]): read back in pieces, written beside it, synced,
/// renamed over it.
fn requote(path: &Path, written: &Written) -> Result<(), String> {
    use std::io::Read;
    let header = super::requote::header(&written.header, written.eight_bit)?;
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let disk = disk::system();
    let mut source = std::fs::File::open(path).map_err(cannot)?;
    let skip = (written.envelope.len() + written.header.len()) as u64;
    std::io::copy(&mut (&mut source).take(skip), &mut std::io::sink()).map_err(cannot)?;
    let mut name = path.as_os_str().to_owned();
    name.push(".qp");
    let encoded = PathBuf::from(name);
    let done = (|| {
        let mut file = disk.create_new(&encoded, 0o600)?;
        disk.write(&mut file, written.envelope.as_bytes())?;
        disk.write(&mut file, &header)?;
        let mut encoder = super::requote::Encoder::new();
        let mut piece = vec![0; crate::limits::MAILIO_PIECE];
        let mut out = Vec::with_capacity(crate::limits::MAILIO_PIECE * 3);
        while !encoder.ended() {
            let n = source.read(&mut piece)?;
            if n == 0 {
                return Err(std::io::Error::other("the maildrop file ended early"));
            }
            out.clear();
            encoder.feed(&piece[..n], &mut out);
            disk.write(&mut file, &out)?;
        }
        disk.sync(&file)?;
        disk.rename(&encoded, path)
    })();
    if done.is_err() {
        let _ = disk.unlink(&encoded);
    }
    done.map_err(cannot)
}

/// The maildrop's folder of messages ready for the server.
pub fn ready_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(MAILDROP_DIR).join("new")
}

/// The envelope lines of a maildrop file.
pub fn envelope(user: &str, sender: &str, recipients: &[String]) -> String {
    let mut text = format!("{FORMAT_LINE}\nuser {user}\nsender {sender}\n");
    for rcpt in recipients {
        text.push_str(&format!("rcpt {rcpt}\n"));
    }
    text.push('\n');
    text
}

/// A maildrop file's envelope, read back by the server.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope {
    pub user: String,
    pub sender: String,
    pub recipients: Vec<String>,
}

impl Envelope {
    /// Reads the envelope lines (up to the empty line, not included).
    pub fn parse(lines: &[String]) -> Result<Envelope, String> {
        let mut lines = lines.iter();
        if lines.next().map(String::as_str) != Some(FORMAT_LINE) {
            return Err("not a maildrop file of this version".into());
        }
        let mut envelope = Envelope {
            user: String::new(),
            sender: String::new(),
            recipients: Vec::new(),
        };
        for line in lines {
            match line.split_once(' ') {
                Some(("user", user)) => envelope.user = user.to_string(),
                Some(("sender", sender)) => envelope.sender = sender.to_string(),
                Some(("rcpt", rcpt)) => envelope.recipients.push(rcpt.to_string()),
                _ => return Err(format!("unknown envelope line {line:?}")),
            }
        }
        if envelope.recipients.is_empty() {
            return Err("no recipients".into());
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> Missing {
        Missing {
            from: "From: <root@box.test>\r\n".into(),
            date: "Date: now\r\n".into(),
            message_id: "Message-ID: <1@box.test>\r\n".into(),
        }
    }

    /// The message as the maildrop gets it, and the header's addresses.
    fn compose(input: &[u8], options: &Options) -> (Vec<u8>, Vec<String>) {
        let mut composer = Composer::new(options);
        let mut body = Vec::new();
        let mut header = Vec::new();
        let mut addresses = Vec::new();
        let mut take = |step: Step| {
            if let Step::Header(h, found) = step {
                header = h;
                addresses = found;
            }
        };
        for line in input.split_inclusive(|b| *b == b'\n') {
            let mut emit = |b: &[u8]| body.extend_from_slice(b);
            take(composer.piece(line, true, &missing, &mut emit).unwrap());
            if composer.is_ended() {
                break;
            }
        }
        if !composer.is_ended() {
            take(composer.end(&missing, &mut |b| body.extend_from_slice(b)));
        }
        composer.finish(&mut |b| body.extend_from_slice(b));
        header.extend_from_slice(&body);
        (header, addresses)
    }

    #[test]
    fn a_lone_dot_ends_the_message_unless_told_otherwise() {
        let input = b"Subject: x\n\n.hidden\n.\nafter\n";
        let (out, _) = compose(input, &Options::default());
        assert_eq!(
            out,
            b"Subject: x\r\nFrom: <root@box.test>\r\nDate: now\r\nMessage-ID: <1@box.test>\r\n\r\n..hidden\r\n.\r\n"
        );
        let options = Options {
            ignore_dots: true,
            ..Options::default()
        };
        let (out, _) = compose(input, &options);
        assert!(
            out.ends_with(b"\r\n..hidden\r\n..\r\nafter\r\n.\r\n"),
            "{out:?}"
        );
    }

    #[test]
    fn recipients_come_from_the_header_and_bcc_goes() {
        let options = Options {
            extract: true,
            ..Options::default()
        };
        let input = b"From: a@x\nTo: b@x,\n  c@x\nBcc: secret@x,\n hidden@x\nCc: d@x\nDate: d\nMessage-ID: <m>\n\nbody";
        let (out, addresses) = compose(input, &options);
        assert_eq!(addresses, ["b@x", "c@x", "secret@x", "hidden@x", "d@x"]);
        assert_eq!(
            out,
            b"From: a@x\r\nTo: b@x,\r\n  c@x\r\nCc: d@x\r\nDate: d\r\nMessage-ID: <m>\r\n\r\nbody\r\n.\r\n"
        );
    }

    #[test]
    fn text_without_a_header_gets_one() {
        let (out, _) = compose(b"just text\n", &Options::default());
        assert!(out.starts_with(b"From: <root@box.test>\r\n"));
        assert!(out.ends_with(b"Message-ID: <1@box.test>\r\n\r\njust text\r\n.\r\n"));
    }

    #[test]
    fn options_as_programs_give_them() {
        let args: Vec<OsString> = ["-oi", "-t", "-fbob@x", "-F", "Bob B", "-odi", "-oem", "a@x"]
            .iter()
            .map(OsString::from)
            .collect();
        let options = parse_options(&args).unwrap();
        assert!(options.ignore_dots && options.extract);
        assert_eq!(options.from.as_deref(), Some("bob@x"));
        assert_eq!(options.full_name.as_deref(), Some("Bob B"));
        assert_eq!(options.recipients, ["a@x"]);
        assert!(parse_options(&[OsString::from("-bs")]).is_err());
        assert!(parse_options(&[OsString::from("-f")]).is_err());
    }

    #[test]
    fn envelope_round_trip() {
        let text = envelope("root", "root@box.test", &["a@x".into(), "b@y".into()]);
        let lines: Vec<String> = text
            .lines()
            .take_while(|l| !l.is_empty())
            .map(String::from)
            .collect();
        let back = Envelope::parse(&lines).unwrap();
        assert_eq!(back.sender, "root@box.test");
        assert_eq!(back.recipients, ["a@x", "b@y"]);
        assert!(Envelope::parse(&lines[..3]).is_err(), "no recipients");
    }
}
