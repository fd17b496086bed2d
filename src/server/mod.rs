//! `postbox serve`: one single-threaded executor running every SMTP and
//! POP3 session and the queue, and orderly shutdown on SIGTERM or SIGINT
//! (stop accepting, let messages in flight finish, exit 0).
//!
//! This is the one place that wires the parts together: it opens the
//! handles (the router, the authenticator, the mailstore, the counters,
//! the queue), gives each kind of session a context with what it uses,
//! admits connections, and raises shutdown.

pub mod admission;
pub mod clients;
pub mod sessions;

use crate::ops::status;
pub use status::{nudge_queue, request_stats, running_status, save_status, ServerStatus};

use crate::appliance::system::{self, Account};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::conn::shutdown::Trigger;
use crate::conn::{Seat, Service, Shutdown, Stream};
use crate::limits::BLOCKING_THREADS;
use crate::ops::stats::Counters;
use crate::route::Router;
use crate::spam::AddressBooks;
use crate::store::disk::{self, Disk};
use crate::store::{maildir, users, Mailstore};
use crate::tls::Tls;
use admission::{Admission, Admitted};
use clients::AddressSlot;
use smol::net::TcpListener;
use smol::{future, LocalExecutor, Timer};
use std::cell::RefCell;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Each served domain without DKIM keys gets them, before the executor
/// runs (an RSA key takes a board's CPU a while, once). Mail still flows
/// without: it leaves unsigned, said in the log.
fn make_dkim_keys(config: &Config) {
    if !config.dkim.sign {
        return;
    }
    let made = crate::dkim::keys::ensure(
        disk::system(),
        &config.data_dir,
        &config.domains,
        config.dkim.selector.as_deref(),
        SystemTime::now(),
    );
    match made {
        Ok(made) => {
            for key in made {
                log::info!("made {key}; `postbox dns records` shows the record to publish");
            }
        }
        Err(e) => log::error!("cannot make DKIM keys (mail leaves unsigned): {e}"),
    }
}

/// The mailboxes (shared in a cluster) and this node's spool.
fn open_mailstore(config: &Config) -> Rc<Mailstore> {
    let (mail_dir, host) = (config.mail_dir(), config.unique_host());
    let store = Mailstore::open(disk::system().clone(), mail_dir, &config.node_dir(), &host);
    Rc::new(match &config.cluster {
        Some(cluster) => store.with_leases(&cluster.node, cluster.lease),
        None => store,
    })
}

/// In a cluster, keeps this node's POP3 locks from expiring.
fn spawn_lease_renewal(
    executor: &Rc<smol::LocalExecutor<'static>>,
    store: &Rc<Mailstore>,
) -> Option<smol::Task<()>> {
    let every = store.lease_renewal()?;
    let store = store.clone();
    Some(executor.spawn(async move {
        loop {
            Timer::after(every).await;
            store.renew_leases().await;
        }
    }))
}

/// Everything the server runs with, opened once at start.
struct Server {
    config: Rc<Config>,
    admission: Admission,
    shutdown: Rc<Shutdown>,
    counters: Rc<Counters>,
    books: Rc<AddressBooks>,
    queue: Rc<crate::queue::Queue>,
    smtp: Rc<crate::smtp::server::Context>,
    pop3: Rc<crate::pop3::server::Context>,
    queue_runner: Rc<crate::queue::Context>,
    web: Rc<crate::web::server::Context>,
    acme: Rc<crate::acme::renewal::Context>,
    /// Wakes the maildrop pickup (`postbox sendmail` signals the server).
    maildrop_wake: Wake,
    /// Wakes the fetching from upstream mailboxes (`postbox fetch now`).
    fetch_wake: Wake,
}

/// A task's wake-up: the sender for signals, the receiver for the task.
type Wake = (smol::channel::Sender<()>, smol::channel::Receiver<()>);

impl Server {
    /// Opens every handle on the prepared data directory.
    fn open(
        config: Config,
        https_port: Option<u16>,
        http_on: bool,
    ) -> Result<(Server, Trigger), String> {
        let config = Rc::new(config);
        let users = Rc::new(users::UserCache::open(disk::system(), config.mail_dir()));
        let tls = Rc::new(Tls::open(&config)?);
        make_dkim_keys(&config);
        let counters = Rc::new(Counters::open(&config.data_dir));
        let ((shutdown, trigger), store) = (Shutdown::new(), open_mailstore(&config));
        let shutdown = Rc::new(shutdown);
        let auth = Rc::new(Authenticator::new(
            config.clone(),
            users.clone(),
            counters.clone(),
        )?);
        let queue = Rc::new(crate::queue::Queue::open(
            &config.node_dir(),
            &config.queue,
        )?);
        let router = Rc::new(Router::open(config.clone(), users, store.clone())?);
        let handles = crate::web::visit::Handles {
            auth: auth.clone(),
            router: router.clone(),
            store: store.clone(),
            queue: queue.clone(),
            counters: counters.clone(),
            sessions: Default::default(),
        };
        let books = Rc::new(AddressBooks::default());
        let resolver = Rc::new(crate::dns::Resolver::new(config.dns_resolver));
        let answers = Rc::new(crate::acme::Answers::default());
        let acme = Rc::new(crate::acme::renewal::Context {
            config: config.clone(),
            tls: tls.clone(),
            resolver: resolver.clone(),
            answers: answers.clone(),
            renew_now: Rc::default(),
            http01: http_on,
            tls_alpn01: https_port.is_some(),
        });
        let smtp = Rc::new(crate::smtp::server::Context {
            resolver,
            config: config.clone(),
            tls: tls.clone(),
            shutdown: shutdown.clone(),
            router: router.clone(),
            auth: auth.clone(),
            store: store.clone(),
            counters: counters.clone(),
            queue: queue.clone(),
            books: books.clone(),
            greylist: config
                .greylist
                .clone()
                .map(|g| RefCell::new(crate::policy::greylist::Greylist::new(g))),
        });
        let web = Rc::new(crate::web::server::Context {
            config: config.clone(),
            tls: tls.clone(),
            shutdown: shutdown.clone(),
            https_port,
            handles,
            acme: answers,
        });
        let pop3 = Rc::new(crate::pop3::server::Context {
            config: config.clone(),
            tls,
            shutdown: shutdown.clone(),
            auth: auth.clone(),
            store: store.clone(),
            counters: counters.clone(),
        });
        let queue_runner = Rc::new(crate::queue::Context {
            config: config.clone(),
            queue: queue.clone(),
            router,
            store,
            counters: counters.clone(),
            shutdown: shutdown.clone(),
        });
        let server = Server {
            fetch_wake: smol::channel::bounded(1),
            admission: Admission::new(&config, auth, counters.clone()),
            config,
            shutdown,
            counters,
            books,
            queue,
            smtp,
            pop3,
            queue_runner,
            web,
            acme,
            maildrop_wake: smol::channel::bounded(1),
        };
        Ok((server, trigger))
    }

    /// Writes what is kept in RAM between rare saves: counters and
    /// address books (off the executor thread).
    async fn save_rarely(&self) {
        self.counters.save(false).await;
        let changes = self.books.take_changes();
        if !changes.is_empty() {
            let data_dir = self.config.data_dir.clone();
            let (saved, result) =
                smol::unblock(move || crate::spam::book::save(&data_dir, changes)).await;
            self.books.saved(saved);
            if let Err(e) = result {
                log::error!("cannot save address books: {e}");
            }
        }
    }
}

/// As root, for `--user`: makes a missing data directory (and parents)
/// for the service user. One that exists is left as it is: the ownership
/// check refuses it, after the drop, if it is not that user's.
fn make_data_dir_for(data_dir: &Path, account: Account) -> Result<(), String> {
    let cannot =
        |e: std::io::Error| format!("cannot create data directory {}: {e}", data_dir.display());
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)
        .map_err(cannot)?;
    match std::fs::DirBuilder::new().mode(0o700).create(data_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(cannot(e)),
    }
    // lchown: should the new directory be swapped for a link, only the
    // link changes hands.
    std::os::unix::fs::lchown(data_dir, Some(account.uid), Some(account.gid)).map_err(cannot)?;
    disk::system().sync_dir(parent).map_err(cannot)
}

/// A bound listener: what it speaks, the socket, and its address.
type Listener = (Service, TcpListener, SocketAddr);

/// Every configured listener, bound (ports below 1024 need root).
fn bind_listeners(config: &Config) -> Result<Vec<Listener>, String> {
    let wanted = [
        (Service::Smtp, Some(config.smtp.listen)),
        (Service::Pop3, Some(config.pop3.listen)),
        (Service::Submission, config.submission),
        (Service::Submissions, config.submissions),
        (Service::Pop3s, config.pop3s),
        (Service::Web, config.web.listen),
        (Service::Http, config.web.http_listen),
    ];
    let mut listeners = Vec::new();
    for (service, addr) in wanted {
        let Some(addr) = addr else { continue };
        let cannot =
            |e: std::io::Error| format!("cannot listen on {addr} for {}: {e}", service.name());
        let listener = std::net::TcpListener::bind(addr)
            .and_then(TcpListener::try_from)
            .map_err(cannot)?;
        let bound = listener.local_addr().map_err(cannot)?;
        listeners.push((service, listener, bound));
    }
    Ok(listeners)
}

/// The addresses really listened on (a port asked as 0 is chosen by the
/// system), so what the server tells mail programs names them.
fn use_bound_addresses(config: &mut Config, listeners: &[Listener]) {
    for (service, _, bound) in listeners {
        let slot = match service {
            Service::Smtp => Some(&mut config.smtp.listen),
            Service::Pop3 => Some(&mut config.pop3.listen),
            Service::Submission => config.submission.as_mut(),
            Service::Submissions => config.submissions.as_mut(),
            Service::Pop3s => config.pop3s.as_mut(),
            Service::Web => config.web.listen.as_mut(),
            Service::Http => config.web.http_listen.as_mut(),
        };
        if let Some(slot) = slot {
            *slot = *bound;
        }
    }
}

/// Bounds what the threads behind the executor may hold. The blocking
/// pool reads its size from the environment when first used (an operator
/// may still set `BLOCKING_MAX_THREADS`). glibc keeps freed large blocks
/// in per-thread arenas once its dynamic mmap threshold has risen, so
/// every pool thread that checked a password would hold ~19 MiB forever:
/// a fixed threshold returns them, and two arenas serve all threads (the
/// executor thread allocates nearly everything).
fn bound_the_runtime() {
    if std::env::var_os("BLOCKING_MAX_THREADS").is_none() {
        std::env::set_var("BLOCKING_MAX_THREADS", BLOCKING_THREADS.to_string());
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

pub fn run(mut config: Config) -> Result<(), String> {
    bound_the_runtime();
    let data_dir = config.data_dir.clone();
    let (listeners, _lock) = take_data_dir(&config)?;
    use_bound_addresses(&mut config, &listeners);
    let https_port = listeners
        .iter()
        .find(|(service, _, _)| *service == Service::Web)
        .map(|(_, _, addr)| addr.port());
    let http_on = listeners
        .iter()
        .any(|(service, _, _)| *service == Service::Http);
    let (server, trigger) = Server::open(config, https_port, http_on)?;
    let executor = Rc::new(LocalExecutor::new());
    let server = Rc::new(server);
    let result = smol::block_on(executor.run(serve(executor.clone(), server, listeners, trigger)));
    let _ = std::fs::remove_file(data_dir.join(status::STATUS_FILE));
    result
}

/// Binds the listeners (as root, if need be), gives up root, and takes the
/// data directory: locked for this process, with what an earlier crash
/// left behind cleared away.
fn take_data_dir(config: &Config) -> Result<(Vec<Listener>, File), String> {
    let data_dir = &config.data_dir;
    // With --user, root only binds the ports (and makes a missing data
    // directory): everything in the data directory is done as the service
    // user, so links it planted there lead nowhere it could not go itself.
    let run_as = match &config.run_as {
        Some(name) => Some((name, system::account(name)?)),
        None => None,
    };
    if let Some((_, account)) = run_as {
        make_data_dir_for(data_dir, account)?;
    }
    let listeners =
        bind_listeners(config).map_err(|e| match status::serve_lock_held(data_dir) {
            true => status::already_serving(data_dir),
            false => e,
        })?;
    if let Some((name, account)) = run_as {
        system::drop_root(account)?;
        log::info!("running as user {name}");
    }
    crate::store::durable::create_dir_durable(disk::system(), data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    crate::store::owner::check(data_dir, unsafe { libc::geteuid() })?;
    let lock = status::lock_data_dir(data_dir)?;
    // Left by a server that did not stop cleanly: its PID is no longer
    // ours to signal.
    let _ = std::fs::remove_file(data_dir.join(status::STATUS_FILE));
    prepare_node_dir(config)?;
    clear_leftovers(config)?;
    Ok((listeners, lock))
}

/// A cluster node's directories on the shared filesystem.
fn prepare_node_dir(config: &Config) -> Result<(), String> {
    if config.cluster.is_none() {
        return Ok(());
    }
    let node_dir = config.node_dir();
    crate::store::durable::create_dir_durable(disk::system(), &node_dir)
        .map_err(|e| format!("cannot create node directory {}: {e}", node_dir.display()))
}

/// Partial messages in the spool and abandoned files in mailboxes' tmp/.
fn clear_leftovers(config: &Config) -> Result<(), String> {
    let node_dir = config.node_dir();
    let cleared = maildir::clear_spool(disk::system(), &node_dir)
        .map_err(|e| format!("cannot prepare spool in {}: {e}", node_dir.display()))?;
    if cleared > 0 {
        log::warn!("removed {cleared} partial messages left in the spool by an earlier crash");
    }
    let grace = crate::limits::MAILDIR_TMP_GRACE;
    match maildir::sweep_mailbox_tmp(disk::system(), config.mail_dir(), grace) {
        Ok(0) => {}
        Ok(swept) => log::warn!("removed {swept} abandoned files from mailboxes' tmp/"),
        Err(e) => log::warn!("cannot sweep mailboxes' tmp/: {e}"),
    }
    Ok(())
}

/// Records the status and says in the log what is served where.
fn announce(server: &Server, listeners: &[Listener]) -> Result<(), String> {
    let config = &server.config;
    let status = ServerStatus {
        pid: std::process::id(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        listeners: listeners
            .iter()
            .map(|(service, _, addr)| (service.name().to_string(), addr.to_string()))
            .collect(),
        domains: config.domains.clone(),
    };
    save_status(&config.data_dir, &status).map_err(|e| format!("cannot write status file: {e}"))?;
    let described: Vec<String> = listeners
        .iter()
        .map(|(service, _, addr)| format!("{} {addr}", service.name()))
        .collect();
    log::info!(
        "postbox {} serving {} on {}, data in {}",
        env!("CARGO_PKG_VERSION"),
        config.domains.join(", "),
        described.join(" "),
        config.data_dir.display()
    );
    log::info!(
        "TLS certificate SHA-256 {}",
        server.smtp.tls.info().fingerprint
    );
    Ok(())
}

async fn serve(
    executor: Rc<LocalExecutor<'static>>,
    server: Rc<Server>,
    listeners: Vec<Listener>,
    trigger: Trigger,
) -> Result<(), String> {
    let signals = async_signal::Signals::new([
        async_signal::Signal::Term,
        async_signal::Signal::Int,
        async_signal::Signal::Usr1,
        async_signal::Signal::Usr2,
        async_signal::Signal::Hup,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    announce(&server, &listeners)?;
    crate::store::faults::arm();

    let accept_loops: Vec<_> = listeners
        .into_iter()
        .map(|(service, listener, _)| {
            executor.spawn(accept_loop(
                executor.clone(),
                listener,
                server.clone(),
                service,
            ))
        })
        .collect();

    // Counters and address books reach flash at most once a minute (and
    // at shutdown).
    let saver = {
        let server = server.clone();
        executor.spawn(async move {
            loop {
                Timer::after(crate::limits::STATS_SAVE_INTERVAL).await;
                server.save_rarely().await;
            }
        })
    };

    let _renewer = spawn_lease_renewal(&executor, &server.pop3.store);
    let queue_runner = crate::queue::run(server.queue_runner.clone(), executor.clone());
    let queue_runner = executor.spawn(queue_runner);
    let maildrop = {
        let ids = server.clone();
        let session_id: Rc<dyn Fn() -> u64> = Rc::new(move || ids.admission.session_id());
        let woken = server.maildrop_wake.1.clone();
        executor.spawn(crate::mailio::maildrop::run(
            server.smtp.clone(),
            woken,
            session_id,
        ))
    };
    let fetch = {
        let runner = &server.queue_runner;
        let context = crate::fetch::schedule::Context {
            config: runner.config.clone(),
            router: runner.router.clone(),
            store: runner.store.clone(),
            shutdown: runner.shutdown.clone(),
            books: server.books.clone(),
        };
        let woken = server.fetch_wake.1.clone();
        executor.spawn(crate::fetch::schedule::run(
            Rc::new(context),
            executor.clone(),
            woken,
        ))
    };
    let acme = server
        .config
        .acme
        .enabled
        .then(|| executor.spawn(crate::acme::renewal::run(server.acme.clone())));

    until_stopped(&server, signals).await;
    trigger.raise(&server.shutdown);
    drop(accept_loops);

    // Sessions in DATA may run out their grace; everyone else leaves at once.
    let deadline = Instant::now() + crate::limits::SHUTDOWN_GRACE + crate::limits::SHUTDOWN_SLACK;
    future::or(server.admission.open.all_closed(), async {
        Timer::at(deadline).await;
    })
    .await;
    drop(saver);
    drop(queue_runner);
    drop(maildrop);
    drop(fetch);
    drop(acme);
    server.save_rarely().await;
    log::info!("stopped");
    Ok(())
}

/// Answers signals until SIGTERM or SIGINT asks to stop.
async fn until_stopped(server: &Server, mut signals: async_signal::Signals) {
    use smol::stream::StreamExt;
    while let Some(signal) = signals.next().await {
        match signal {
            // `postbox queue flush` (and `delete`): look again, try now.
            Ok(async_signal::Signal::Usr1) => {
                log::info!("queue flush requested");
                // `postbox sendmail` too: a message waits in the maildrop;
                // and `postbox import`: mailboxes grew behind our back.
                let _ = server.maildrop_wake.0.try_send(());
                // And `postbox fetch now`: a request waits.
                let _ = server.fetch_wake.0.try_send(());
                server.queue.flush().await;
                server.smtp.store.recount_known().await;
            }
            // `postbox stats` and the console's `stats`: live figures.
            Ok(async_signal::Signal::Usr2) => server.counters.save(true).await,
            // `postbox tls renew`: a new certificate now.
            Ok(async_signal::Signal::Hup) => match server.config.acme.enabled {
                true => server.acme.renew_now.request(),
                false => log::warn!("certificate renewal asked, but [acme] is not enabled"),
            },
            Ok(signal) => {
                let name = match signal {
                    async_signal::Signal::Int => "SIGINT",
                    _ => "SIGTERM",
                };
                log::info!("received {name}: no new connections, finishing sessions");
                return;
            }
            Err(_) => {}
        }
    }
}

async fn accept_loop(
    executor: Rc<LocalExecutor<'static>>,
    listener: TcpListener,
    server: Rc<Server>,
    service: Service,
) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            server.shutdown.requested().await;
            None
        })
        .await;
        let (stream, peer): (_, SocketAddr) = match accepted {
            None => return,
            Some(Ok(conn)) => conn,
            Some(Err(e)) => {
                // Out of descriptors and the like: pause instead of spinning.
                log::error!("{} accept failed: {e}", service.name());
                Timer::after(crate::limits::ACCEPT_RETRY_PAUSE).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let name = service.name().to_string();
        server
            .counters
            .count(|s| *s.connections.entry(name).or_insert(0) += 1);
        let stream = Stream::Plain(stream);
        let server = server.clone();
        // One task type per protocol: a task is as big as the largest
        // session it may run.
        let task = match service {
            Service::Smtp | Service::Submission | Service::Submissions => {
                executor.spawn(async move {
                    let Some((id, stream, peer, seat, _address)) =
                        admit(&server, stream, peer, service).await
                    else {
                        return;
                    };
                    let context = server.smtp.clone();
                    crate::smtp::server::serve_connection(context, stream, peer, service, id, seat)
                        .await
                })
            }
            Service::Pop3 | Service::Pop3s => executor.spawn(async move {
                let Some((id, stream, peer, seat, _address)) =
                    admit(&server, stream, peer, service).await
                else {
                    return;
                };
                let context = server.pop3.clone();
                crate::pop3::server::serve_connection(context, stream, peer, service, id, seat)
                    .await
            }),
            Service::Web | Service::Http => executor.spawn(async move {
                let Some((id, stream, peer, seat, _address)) =
                    admit(&server, stream, peer, service).await
                else {
                    return;
                };
                let context = server.web.clone();
                crate::web::server::serve_connection(context, stream, peer, service, id, seat).await
            }),
        };
        task.detach();
    }
}

/// Admits a connection: its session's number, the stream, the client's
/// address (behind a proxy, the one its PROXY header names), its place on
/// the listener and its address's slot (held until the session ends).
async fn admit(
    server: &Server,
    mut stream: Stream,
    peer: SocketAddr,
    service: Service,
) -> Option<(u64, Stream, SocketAddr, Seat, AddressSlot)> {
    let id = server.admission.session_id();
    let (protocol, gate) = match service {
        Service::Smtp | Service::Submission | Service::Submissions => {
            ("smtp", crate::smtp::server::GATE)
        }
        Service::Pop3 | Service::Pop3s => ("pop3", crate::pop3::server::GATE),
        Service::Web => ("web", crate::web::server::GATE),
        Service::Http => ("http", crate::web::server::GATE),
    };
    let who = format!("{protocol}#{id} {peer}");
    let admission = &server.admission;
    if !behind_proxy(&server.config, service) {
        let admitted = admission
            .admit(&mut stream, peer.ip(), service, gate, &who)
            .await;
        let Admitted { seat, address } = admitted?;
        return Some((id, stream, peer, seat, address));
    }
    // Only the proxies may say who the client is; anyone else is closed
    // unanswered, as a proxy's connection without a header is.
    let proxy = &server.config.proxy;
    if !proxy.from.iter().any(|net| net.contains(peer.ip())) {
        log::warn!("{who} refused: not in proxy_from");
        return None;
    }
    // The listener's places bound the connections waiting for a header;
    // the address's share is the client's, known from the header.
    let seat = admission.seat(&mut stream, service, gate, &who).await?;
    let timeout = header_timeout(&server.config, service);
    let header = crate::conn::proxy::read_header(&mut stream, timeout, &server.shutdown, &seat);
    let client = match header.await {
        Ok(header) => {
            let client = header.client(peer);
            log::info!("{who} PROXY header: {}", describe(&header, client));
            client
        }
        Err(why) => {
            log::warn!("{who} closed: {why}");
            return None;
        }
    };
    let who = format!("{protocol}#{id} {client}");
    let address = admission
        .address(&mut stream, client.ip(), service, gate, &who)
        .await?;
    admission.trust(&seat, client.ip());
    Some((id, stream, client, seat, address))
}

/// Whether `service`'s connections come through a proxy that sends the
/// PROXY header first.
fn behind_proxy(config: &Config, service: Service) -> bool {
    let proxy = &config.proxy;
    match service {
        Service::Smtp => proxy.smtp,
        Service::Submission => proxy.submission,
        Service::Submissions => proxy.submissions,
        Service::Pop3 => proxy.pop3,
        Service::Pop3s => proxy.pop3s,
        Service::Web | Service::Http => proxy.web,
    }
}

/// How long a proxy has to send the header: the listener's wait for a
/// command.
fn header_timeout(config: &Config, service: Service) -> std::time::Duration {
    match service {
        Service::Smtp | Service::Submission | Service::Submissions => config.smtp.command_timeout,
        Service::Pop3 | Service::Pop3s => config.pop3.timeout,
        Service::Web | Service::Http => crate::limits::HTTP_REQUEST_TIMEOUT,
    }
}

/// A header for the log.
fn describe(header: &crate::wire::proxy::Header, client: SocketAddr) -> String {
    use crate::wire::proxy::Header;
    match header {
        Header::Proxied {
            version,
            destination,
            ..
        } => format!("v{version} client {client} to {destination}"),
        Header::Local => "v2 LOCAL, the proxy's own connection".to_string(),
        Header::Unknown { version } => {
            format!("v{version} without an address, the proxy's own used")
        }
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future an async fn of six arguments returns.
    fn future_size<A, B, C, D, E, G, F>(_: fn(A, B, C, D, E, G) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every connection's task is one of these futures for its whole
    /// life: what only some sessions need for a moment (a TLS handshake's
    /// state, DATA, a login) is boxed rather than carried by every idle one.
    #[test]
    fn session_futures_carry_no_rare_state() {
        // What each needs all along: its core's state (buffers of a
        // command line and of replies, the session) and the connection.
        let sizes = [
            (
                "smtp",
                future_size(crate::smtp::server::serve_connection),
                7,
            ),
            (
                "pop3",
                future_size(crate::pop3::server::serve_connection),
                9,
            ),
            ("web", future_size(crate::web::server::serve_connection), 4),
        ];
        for (kind, size, kib) in sizes {
            assert!(size <= kib * 1024, "{kind}: {size} bytes");
        }
    }
}
