//! One run of one `[[fetch]]` entry: connect (bounded in time), TLS as
//! the URL says (verified against the built-in roots and the entry's
//! `ca`), then the POP3 or IMAP conversation, each message spooled in
//! fixed chunks as it comes and delivered durably before the upstream is
//! told to delete it or the record says it was fetched.

use super::deliver::{self, Member, Message, Stored};
use super::imap::Imap;
use super::pop3::Pop3;
use super::schedule::Context;
use super::state::{self, EntryState};
use super::{Conversation, Step};
use crate::config::{FetchEntry, Protocol};
use crate::conn::read_ahead::{Read, ReadAhead};
use crate::conn::Stream;
use crate::limits::{
    FETCH_READ_TIMEOUT, OUTBOUND_CONNECT_TIMEOUT, OUTBOUND_READ_BUFFER, TLS_HANDSHAKE_TIMEOUT,
};
use crate::wire::address::Address;
use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use smol::future;
use smol::io::AsyncWriteExt;
use smol::net::TcpStream;
use smol::Timer;
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// What one run did.
#[derive(Debug, Default)]
pub struct Ran {
    pub fetched: u64,
    pub deleted: u64,
    /// Left upstream: the member's mailbox had no room.
    pub over_quota: u64,
}

async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, String> {
    future::or(
        async { f.await.map_err(|e| format!("{what}: {e}")) },
        async {
            Timer::after(limit).await;
            Err(format!("{what}: timed out"))
        },
    )
    .await
}

/// Runs `entry` once; `state` is its record, brought up to date (and
/// saved after each message kept upstream).
pub async fn run(ctx: &Context, entry: &FetchEntry, state: &mut EntryState) -> Result<Ran, String> {
    let config = &ctx.config;
    let (local, domain) = crate::store::users::split_name(&entry.user, config.default_domain())?;
    let account = Address::new(&local, &domain).map_err(|e| format!("user {}: {e}", entry.user))?;
    if !ctx.router.is_user(&account) {
        return Err(format!("no such user {account}"));
    }
    let dir = ctx.store.mailbox_dir(&account);
    let known = deliver::known(&ctx.store, dir.clone())
        .await
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let member = Member {
        account,
        dir,
        store: &ctx.store,
        router: &ctx.router,
        books: &ctx.books,
        spam: &config.spam,
    };
    let upstream = &entry.upstream;
    let addr = address(ctx, &upstream.host, upstream.port).await?;
    let tcp = within(
        OUTBOUND_CONNECT_TIMEOUT,
        "connect",
        TcpStream::connect(addr),
    )
    .await?;
    let _ = tcp.set_nodelay(true);
    let mut conversation: Box<dyn Conversation> = match upstream.protocol {
        Protocol::Pop3s => Box::new(Pop3::new(&upstream.name, &entry.password, true, false)),
        Protocol::Pop3 { stls } => {
            Box::new(Pop3::new(&upstream.name, &entry.password, false, stls))
        }
        Protocol::Imaps => Box::new(Imap::new(&upstream.name, &entry.password, &upstream.folder)),
    };
    let mut shell = Shell {
        ctx,
        entry,
        member,
        known,
        stream: Stream::Plain(tcp),
        input: ReadAhead::new(OUTBOUND_READ_BUFFER),
        ran: Ran::default(),
    };
    let outcome = shell.converse(&mut *conversation, state).await;
    outcome.map(|()| shell.ran)
}

/// The upstream's address: an IP literal as it is, a name through the
/// configured resolver (as every name Postbox looks up).
async fn address(ctx: &Context, host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    // RFC 6761 §6.3: never asked of a DNS server.
    if host == "localhost" {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let resolver = ctx
        .config
        .dns_resolver
        .or_else(crate::dns::system_resolver)
        .ok_or("no DNS resolver configured")?;
    let found = crate::dns::host_addresses(resolver, host).await?;
    Ok(SocketAddr::new(found[0], port))
}

struct Shell<'a> {
    ctx: &'a Context,
    entry: &'a FetchEntry,
    member: Member<'a>,
    /// The hashes in the member's mailbox: what is here already.
    known: HashSet<String>,
    stream: Stream,
    input: ReadAhead,
    ran: Ran,
}

impl Shell<'_> {
    async fn converse(
        &mut self,
        conversation: &mut dyn Conversation,
        state: &mut EntryState,
    ) -> Result<(), String> {
        let mut message: Option<(String, Message)> = None;
        let mut body = Vec::with_capacity(crate::limits::WRITE_CHUNK);
        let outcome = loop {
            match conversation.poll(Instant::now()) {
                Step::Send(bytes) => {
                    let sent = write_all(&mut self.stream, &bytes);
                    if let Err(e) = within(FETCH_READ_TIMEOUT, "sending", sent).await {
                        conversation.failed(e);
                    }
                }
                Step::StartTls => match self.start_tls().await {
                    Ok(()) => conversation.tls_started(),
                    Err(e) => conversation.failed(e),
                },
                Step::Receive(deadline) => {
                    self.receive(conversation, deadline, &mut body).await;
                    if let Some((id, spooled)) = message.take() {
                        let (spooled, written) = spooled.write(&mut body).await;
                        if let Err(e) = written {
                            conversation.failed(format!("cannot spool the message: {e}"));
                        }
                        message = Some((id, spooled));
                    }
                }
                Step::Listed(ids) => {
                    let (fetch, delete) = self.choose(&ids, state);
                    conversation.choose(fetch, delete);
                }
                Step::MessageStart(id) => {
                    match Message::begin(&self.ctx.store, self.received()).await {
                        Ok(spooled) => message = Some((id, spooled)),
                        Err(e) => conversation.failed(format!("cannot spool the message: {e}")),
                    }
                }
                Step::MessageEnd => {
                    let (id, spooled) = message.take().expect("a message was started");
                    let (spooled, written) = spooled.write(&mut body).await;
                    if let Err(e) = written {
                        spooled.abandon().await;
                        conversation.failed(format!("cannot spool the message: {e}"));
                        continue;
                    }
                    match self.store(spooled, &id, state).await {
                        Ok(delete) => conversation.stored(delete),
                        Err(e) => conversation.failed(e),
                    }
                }
                Step::Done(outcome) => break outcome,
            }
        };
        if let Some((_, spooled)) = message {
            spooled.abandon().await;
        }
        outcome
    }

    /// What to fetch (not here, not fetched before when kept) and what to
    /// delete (here already, when not kept). Forgets ids no longer listed.
    fn choose(&self, ids: &[String], state: &mut EntryState) -> (Vec<String>, Vec<String>) {
        let upstream = self.entry.upstream.to_string();
        let listed: HashSet<&str> = ids.iter().map(String::as_str).collect();
        state.seen.retain(|id| listed.contains(id.as_str()));
        let seen: HashSet<&str> = state.seen.iter().map(String::as_str).collect();
        let (mut fetch, mut delete) = (Vec::new(), Vec::new());
        for id in ids {
            let here = self.known.contains(&deliver::tag(&upstream, id));
            match (here, self.entry.keep) {
                (false, false) => fetch.push(id.clone()),
                (false, true) if !seen.contains(id.as_str()) => fetch.push(id.clone()),
                (true, false) => delete.push(id.clone()),
                _ => {}
            }
        }
        (fetch, delete)
    }

    /// Delivers a whole message; whether to delete it upstream.
    async fn store(
        &mut self,
        spooled: Message,
        id: &str,
        state: &mut EntryState,
    ) -> Result<bool, String> {
        let upstream = self.entry.upstream.to_string();
        let tag = deliver::tag(&upstream, id);
        let stored = spooled
            .finish(&self.member, &tag)
            .await
            .map_err(|e| format!("cannot store a message for {}: {e}", self.member.account))?;
        if stored == Stored::OverQuota {
            self.ran.over_quota += 1;
            log::warn!(
                "fetch {} for {}: the mailbox is full, message {id} left upstream",
                upstream,
                self.member.account
            );
            return Ok(false);
        }
        self.known.insert(tag);
        self.ran.fetched += 1;
        state.fetched += 1;
        log::info!(
            "fetch {} for {}: message {id} stored",
            upstream,
            self.member.account
        );
        if !self.entry.keep {
            self.ran.deleted += 1;
            return Ok(true);
        }
        state.seen.push(id.to_string());
        let data_dir = &self.ctx.config.data_dir;
        state::save_off_thread(data_dir, self.entry, state)
            .await
            .map_err(|e| format!("cannot record what was fetched: {e}"))?;
        Ok(false)
    }

    /// Our trace field, naming the source.
    fn received(&self) -> String {
        let upstream = &self.entry.upstream;
        format!(
            "Received: from {} by {} with {} (fetch for {});\r\n\t{}\r\n",
            upstream.host,
            self.ctx.config.hostname,
            upstream.protocol.name(),
            self.member.account,
            crate::ops::clock::rfc5322_date(SystemTime::now())
        )
    }

    /// Hands the conversation what is left of the last read, or reads
    /// more (until `deadline`: then the conversation notices the time).
    async fn receive(
        &mut self,
        conversation: &mut dyn Conversation,
        deadline: Instant,
        body: &mut Vec<u8>,
    ) {
        match self.input.next(&mut self.stream, deadline).await {
            Ok(Read::Bytes(bytes)) => {
                let used = conversation.receive(bytes, Instant::now(), body);
                self.input.used(used);
            }
            Ok(Read::Closed) => conversation.failed("the server closed the connection".into()),
            Ok(Read::TimedOut) => {}
            Err(e) => conversation.failed(format!("reading: {e}")),
        }
    }

    async fn start_tls(&mut self) -> Result<(), String> {
        let host = &self.entry.upstream.host;
        let config = crate::outbound::tls::verified_config(self.entry.ca.as_deref())?;
        let name = ServerName::try_from(host.clone())
            .map_err(|_| format!("{host:?} is not a valid TLS server name"))?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Broken) else {
            return Err("TLS already started".into());
        };
        let tls = within(
            TLS_HANDSHAKE_TIMEOUT,
            "TLS handshake",
            TlsConnector::from(config).connect(name, tcp),
        )
        .await?;
        self.stream = Stream::ClientTls(Box::new(tls));
        self.input.clear();
        Ok(())
    }
}

async fn write_all(stream: &mut Stream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    // TLS holds written records until flushed.
    stream.flush().await
}
