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
/// take now stays for the next round (and is not in the others' way).
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
        let (handed, refused) = hand_over(smtp, &path, session_id()).await;
        match handed {
            Handed::Done => {}
            Handed::Refused(why) => log::error!("maildrop {name} refused: {why}"),
            // The others may still go.
            Handed::Later(why) => {
                log::warn!("maildrop {name} waits: {why}");
                continue;
            }
        }
        if let Some((sender, refused)) = refused.filter(|(_, r)| !r.is_empty()) {
            report(smtp, &path, &name, &sender, refused).await;
        }
        remove(&path).await;
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

/// Recipients the session refused for good: whom, and its reply.
type Refusals = Vec<(String, String)>;

/// Tells the sender which recipients were refused for good, as the
/// queue's failure reports do (with the original's header section).
async fn report(smtp: &Rc<Context>, path: &Path, name: &str, sender: &str, refused: Refusals) {
    if crate::queue::dsn::must_not_bounce(sender) {
        return;
    }
    let recipients: Vec<crate::queue::dsn::RecipientStatus> = refused
        .into_iter()
        .map(|(recipient, reply)| crate::queue::dsn::RecipientStatus {
            recipient,
            status: crate::queue::status_of(&reply, true),
            diagnostic: Some(reply),
            remote_mta: None,
        })
        .collect();
    let report_name = smtp.store.names.next();
    let (hostname, queue_id, to) = (
        smtp.config.hostname.clone(),
        name.to_string(),
        sender.to_string(),
    );
    let (path, message_id) = (path.to_path_buf(), report_name.clone());
    let written = smol::unblock(move || {
        let (_, mut original) = open_envelope(&path)?;
        let now = std::time::SystemTime::now();
        let report = crate::queue::dsn::Report {
            kind: crate::queue::dsn::Kind::Failed,
            hostname: &hostname,
            queue_id: &queue_id,
            sender: &to,
            arrival: now,
            retry_until: None,
            recipients: &recipients,
            message_id: &message_id,
            now,
        };
        let mut text = Vec::new();
        crate::queue::dsn::write(&report, &mut original, &mut text).map(|()| text)
    })
    .await;
    let text = match written {
        Ok(text) => text,
        Err(e) => return log::error!("maildrop {name}: cannot write the report: {e}"),
    };
    let mailer_daemon = format!("MAILER-DAEMON@{}", smtp.config.hostname);
    let outbox = smtp.outbox();
    match crate::queue::deliver_report(&outbox, &mailer_daemon, sender, report_name, text).await {
        Ok(()) => log::info!("maildrop {name}: failure report sent to <{sender}>"),
        Err(e) => log::error!("maildrop {name}: cannot send the failure report to <{sender}>: {e}"),
    }
}

/// Runs one message through a session of the server's own; with the
/// sender and the recipients refused for good, once it got that far.
async fn hand_over(
    smtp: &Rc<Context>,
    path: &Path,
    id: u64,
) -> (Handed, Option<(String, Refusals)>) {
    let opened = {
        let path: PathBuf = path.to_path_buf();
        smol::unblock(move || open_envelope(&path)).await
    };
    let (envelope, message) = match opened {
        Ok((Ok(envelope), message)) => (envelope, message),
        Ok((Err(why), _)) => return (Handed::Refused(why), None),
        Err(e) => return (Handed::Later(format!("cannot read it: {e}")), None),
    };
    let (ours, theirs) = match UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => return (Handed::Later(format!("no socket pair: {e}")), None),
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
    let (_, (handed, refused)) = smol::future::zip(session, client).await;
    (handed, Some((envelope.sender.clone(), refused)))
}

/// The client's side of the session: the envelope, then the message,
/// which the maildrop file holds ready for DATA (dot-stuffed, with its
/// final dot).
async fn speak(
    socket: UnixStream,
    envelope: &Envelope,
    message: io::BufReader<std::fs::File>,
) -> (Handed, Refusals) {
    let mut replies = BufReader::new(socket.clone());
    let mut socket = socket;
    let mut refused: Refusals = Vec::new();
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
        let mut waiting = Vec::new();
        for rcpt in &envelope.recipients {
            let (code, text) =
                command(&mut socket, &mut replies, format!("RCPT TO:<{rcpt}>")).await?;
            match code {
                200..=299 => taken += 1,
                400..=499 => waiting.push(format!("<{rcpt}>: {code} {text}")),
                _ => refused.push((rcpt.clone(), format!("{code} {text}"))),
            }
        }
        // A recipient that may take it later: all are tried again then.
        if !waiting.is_empty() {
            refused.clear();
            return Ok(Handed::Later(waiting.join("; ")));
        }
        if taken == 0 {
            return Ok(Handed::Refused("every recipient refused".into()));
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
        if (400..500).contains(&code) {
            return Ok(Handed::Later(format!("message: {code} {text}")));
        }
        if code >= 300 {
            // Refused for every recipient it was offered to.
            let taken = envelope
                .recipients
                .iter()
                .filter(|r| !refused.iter().any(|(x, _)| x == *r));
            let all: Refusals = taken
                .map(|r| (r.clone(), format!("{code} {text}")))
                .collect();
            refused.extend(all);
            return Ok(Handed::Refused(format!("message: {code} {text}")));
        }
        for (rcpt, why) in &refused {
            log::warn!("maildrop: <{rcpt}> refused for good: {why}");
        }
        Ok(Handed::Done)
    }
    .await;
    match outcome {
        Ok(handed) => (handed, refused),
        Err(e) => (Handed::Later(format!("session failed: {e}")), Vec::new()),
    }
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
