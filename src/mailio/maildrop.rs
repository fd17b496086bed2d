//! The server's side of the maildrop: messages `postbox sendmail` left in
//! `DATA/maildrop/new` go, one at a time, through an SMTP session of the
//! server's own over a socket pair, as a trusted client's: local
//! recipients (aliases, forwards) get them, remote ones through the queue,
//! DKIM-signed; quotas and every other rule apply as to any message.
//! A file is removed once the session said 250 (or refused it for good);
//! a crash before that sends it again at start, so a message may arrive
//! twice, never not at all.

use super::sendmail::{ready_dir, Envelope};
use crate::conn::seat::Place;
use crate::conn::{Seat, Service, Stream};
use crate::smtp::server::Context;
use crate::store::disk::{self, Disk, Kind};
use smol::channel::Receiver;
use smol::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use smol::net::unix::UnixStream;
use std::io::{self, BufRead};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Picks up the maildrop at start, at each `wake` (`postbox sendmail`
/// signals the server) and every [`crate::limits::MAILDROP_POLL`].
pub async fn run(smtp: Rc<Context>, wake: Receiver<()>, session_id: Rc<dyn Fn() -> u64>) {
    sweep_tmp(&smtp.config.data_dir).await;
    loop {
        pick_up(&smtp, &*session_id).await;
        let woken = async {
            let _ = wake.recv().await;
        };
        let polled = async {
            smol::Timer::after(crate::limits::MAILDROP_POLL).await;
        };
        let stopped = async {
            smtp.shutdown.requested().await;
        };
        smol::future::or(stopped, smol::future::or(woken, polled)).await;
        if smtp.shutdown.is_requested() {
            return;
        }
    }
}

/// Removes what a `sendmail` that died while writing left in
/// `maildrop/tmp`: files older than [`crate::limits::MAILDIR_TMP_GRACE`]
/// (younger ones may still be being written).
async fn sweep_tmp(data_dir: &Path) {
    let tmp = data_dir.join(super::sendmail::MAILDROP_DIR).join("tmp");
    smol::unblock(move || {
        let disk = disk::system();
        let now = std::time::SystemTime::now();
        for entry in disk.list(&tmp).into_iter().flatten() {
            let path = tmp.join(&entry.name);
            let old = disk.metadata(&path).is_ok_and(|m| {
                now.duration_since(m.modified).unwrap_or_default()
                    > crate::limits::MAILDIR_TMP_GRACE
            });
            if entry.kind == Kind::File && old {
                let _ = disk.unlink(&path);
            }
        }
    })
    .await
}

/// Hands every waiting message to a session; a message the server cannot
/// take now stays for the next round.
async fn pick_up(smtp: &Rc<Context>, session_id: &dyn Fn() -> u64) {
    let dir = ready_dir(&smtp.config.data_dir);
    let listed = {
        let dir = dir.clone();
        smol::unblock(move || disk::system().list(&dir)).await
    };
    let mut names: Vec<String> = match listed {
        Ok(entries) => entries
            .into_iter()
            .filter(|e| e.kind == Kind::File)
            .filter_map(|e| e.name.into_string().ok())
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            log::error!("maildrop: cannot read {}: {e}", dir.display());
            return;
        }
    };
    names.sort_by(|a, b| {
        crate::store::maildir::made_order(a).cmp(&crate::store::maildir::made_order(b))
    });
    for name in names {
        if smtp.shutdown.is_requested() {
            return;
        }
        let path = dir.join(&name);
        match hand_over(smtp, &path, session_id()).await {
            Handed::Done => remove(&path).await,
            Handed::Refused(why) => {
                log::error!("maildrop {name} refused, dropped: {why}");
                remove(&path).await;
            }
            Handed::Later(why) => {
                log::warn!("maildrop {name} waits: {why}");
                return;
            }
        }
    }
}

enum Handed {
    Done,
    /// Refused for good: it would be refused again.
    Refused(String),
    /// Not now (a full disk, a shutdown): tried again later.
    Later(String),
}

async fn remove(path: &Path) {
    let path = path.to_path_buf();
    smol::unblock(move || {
        let disk = disk::system();
        let removed = disk::unlink_surely(&**disk, &path);
        let synced = path.parent().map(|dir| disk.sync_dir(dir));
        if let Err(e) = removed.and(synced.unwrap_or(Ok(()))) {
            log::error!("maildrop: cannot remove {}: {e}", path.display());
        }
    })
    .await
}

/// Reads a maildrop file's envelope; the file comes back positioned at
/// the message.
fn open_envelope(
    path: &Path,
) -> io::Result<(Result<Envelope, String>, io::BufReader<std::fs::File>)> {
    let mut reader = io::BufReader::new(std::fs::File::open(path)?);
    let mut lines = Vec::new();
    let mut read = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok((Err("the file ends in its envelope".into()), reader));
        }
        read += line.len();
        if read > crate::limits::MAILIO_PIECE {
            return Ok((Err("the envelope is too long".into()), reader));
        }
        let line = line.trim_end_matches('\n');
        if line.is_empty() {
            return Ok((Envelope::parse(&lines), reader));
        }
        lines.push(line.to_string());
    }
}

/// Runs one message through a session of the server's own.
async fn hand_over(smtp: &Rc<Context>, path: &Path, id: u64) -> Handed {
    let opened = {
        let path: PathBuf = path.to_path_buf();
        smol::unblock(move || open_envelope(&path)).await
    };
    let (envelope, message) = match opened {
        Ok((Ok(envelope), message)) => (envelope, message),
        Ok((Err(why), _)) => return Handed::Refused(why),
        Err(e) => return Handed::Later(format!("cannot read it: {e}")),
    };
    let (ours, theirs) = match UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => return Handed::Later(format!("no socket pair: {e}")),
    };
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let who = format!("smtp#{id} maildrop");
    log::info!(
        "maildrop {} from local user {} sender=<{}>",
        path.file_name().unwrap_or_default().to_string_lossy(),
        envelope.user,
        envelope.sender
    );
    let seat = Seat::new(Place::new(who), |_| {});
    let session = crate::smtp::server::serve_connection(
        smtp.clone(),
        Stream::Local(theirs),
        peer,
        Service::Smtp,
        id,
        seat,
    );
    let client = async {
        let handed = speak(ours.clone(), &envelope, message).await;
        let _ = ours.shutdown(std::net::Shutdown::Both);
        handed
    };
    let (_, handed) = smol::future::zip(session, client).await;
    handed
}

/// The client's side of the session: the envelope, then the message,
/// which the maildrop file holds ready for DATA (dot-stuffed, with its
/// final dot).
async fn speak(
    socket: UnixStream,
    envelope: &Envelope,
    message: io::BufReader<std::fs::File>,
) -> Handed {
    let mut replies = BufReader::new(socket.clone());
    let mut socket = socket;
    let outcome: io::Result<Handed> = async {
        let (code, text) = read_reply(&mut replies).await?;
        if code != 220 {
            return Ok(Handed::Later(format!("greeted with {code} {text}")));
        }
        command(&mut socket, &mut replies, "EHLO localhost").await?;
        let (code, text) = command(
            &mut socket,
            &mut replies,
            format!("MAIL FROM:<{}>", envelope.sender),
        )
        .await?;
        if code >= 300 {
            return Ok(later_or_refused(code, format!("sender: {code} {text}")));
        }
        let mut taken = 0;
        let mut refused = Vec::new();
        for rcpt in &envelope.recipients {
            let (code, text) =
                command(&mut socket, &mut replies, format!("RCPT TO:<{rcpt}>")).await?;
            match code {
                200..=299 => taken += 1,
                _ => refused.push(format!("<{rcpt}>: {code} {text}")),
            }
        }
        if taken == 0 {
            let why = refused.join("; ");
            let temporary = refused.iter().all(|r| r.contains(": 4"));
            return Ok(match temporary {
                true => Handed::Later(why),
                false => Handed::Refused(why),
            });
        }
        let (code, text) = command(&mut socket, &mut replies, "DATA").await?;
        if code != 354 {
            return Ok(later_or_refused(code, format!("DATA: {code} {text}")));
        }
        let mut body = smol::Unblock::new(message);
        smol::io::copy(&mut body, &mut socket).await?;
        let (code, text) = read_reply(&mut replies).await?;
        // The session ends when it has said goodbye.
        let _ = command(&mut socket, &mut replies, "QUIT").await;
        if code >= 300 {
            return Ok(later_or_refused(code, format!("message: {code} {text}")));
        }
        for why in &refused {
            log::warn!("maildrop: recipient refused for good: {why}");
        }
        Ok(Handed::Done)
    }
    .await;
    outcome.unwrap_or_else(|e| Handed::Later(format!("session failed: {e}")))
}

/// Sends one command line; its reply.
async fn command(
    socket: &mut UnixStream,
    replies: &mut BufReader<UnixStream>,
    line: impl AsRef<str>,
) -> io::Result<(u16, String)> {
    socket
        .write_all(format!("{}\r\n", line.as_ref()).as_bytes())
        .await?;
    read_reply(replies).await
}

fn later_or_refused(code: u16, why: String) -> Handed {
    match code {
        400..=499 => Handed::Later(why),
        _ => Handed::Refused(why),
    }
}

/// One SMTP reply: its code and the text of its last line.
async fn read_reply(replies: &mut BufReader<UnixStream>) -> io::Result<(u16, String)> {
    loop {
        let mut line = String::new();
        // The server's replies are short lines it wrote itself.
        if replies.read_line(&mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the session closed",
            ));
        }
        let line = line.trim_end();
        let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, line.get(4..).unwrap_or("").to_string()));
        }
    }
}
