//! Each `[[fetch]]` entry runs on the server's executor in a task of its
//! own: at start, then every `every` after the last run ended, and at
//! once when `postbox fetch now` asks (a request file in
//! `DATA/fetch/now/`, then SIGUSR1, as `postbox sendmail` wakes the
//! maildrop). One task per entry: never two runs of an entry at once.
//! Without a running server, `fetch now` runs the entries itself, holding
//! the data directory's lock meanwhile (so no server starts alongside).

use super::state::{self, EntryState, FETCH_DIR};
use crate::config::{Config, FetchEntry};
use crate::conn::Shutdown;
use crate::route::Router;
use crate::store::Mailstore;
use smol::channel::{Receiver, Sender};
use smol::{future, LocalExecutor, Timer};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a run uses of the server.
pub struct Context {
    pub config: Rc<Config>,
    pub router: Rc<Router>,
    pub store: Rc<Mailstore>,
    pub shutdown: Rc<Shutdown>,
    pub books: Rc<crate::spam::AddressBooks>,
}

const REQUESTS: &str = "now";

fn requests_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(FETCH_DIR).join(REQUESTS)
}

/// `postbox fetch now [USER]`: asks the running server to run the
/// entries (of USER) now.
pub fn request_now(config: &Config, user: Option<&str>) -> Result<String, String> {
    let user = user.map(str::to_ascii_lowercase);
    if let Some(user) = &user {
        if !config.fetch.iter().any(|e| e.user == *user) {
            return Err(format!("no [[fetch]] entry for {user}"));
        }
    } else if config.fetch.is_empty() {
        return Err("no [[fetch]] entries in the config".into());
    }
    let data_dir = &config.data_dir;
    if !crate::ops::status::serve_lock_held(data_dir) {
        return run_here(config, user.as_deref());
    }
    let dir = requests_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let name = format!("{nanos}.{}", std::process::id());
    let (temporary, path) = (dir.join(format!(".{name}")), dir.join(name));
    let text = user.clone().unwrap_or_default();
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    crate::ops::status::nudge_queue(data_dir)?;
    Ok(match user {
        Some(user) => format!("the running server fetches for {user} now"),
        None => "the running server fetches for every entry now".into(),
    })
}

/// Runs the entries (of `user`) once in this process, as the server
/// would; what each run did, a line each.
fn run_here(config: &Config, user: Option<&str>) -> Result<String, String> {
    let data_dir = &config.data_dir;
    if !data_dir.is_dir() {
        return Err(format!("no data directory {}", data_dir.display()));
    }
    let _lock = crate::ops::status::lock_data_dir(data_dir)?;
    let disk = crate::store::disk::system();
    let node_dir = config.node_dir();
    crate::store::maildir::clear_spool(&**disk, &node_dir)
        .map_err(|e| format!("cannot prepare the spool in {}: {e}", node_dir.display()))?;
    let config = Rc::new(config.clone());
    let (mail_dir, host) = (config.mail_dir(), config.unique_host());
    let users = Rc::new(crate::store::users::UserCache::open(disk, mail_dir));
    let store = Rc::new(Mailstore::open(disk.clone(), mail_dir, &node_dir, &host));
    let router = Rc::new(Router::open(config.clone(), users, store.clone())?);
    let (shutdown, _trigger) = Shutdown::new();
    let ctx = Context {
        config: config.clone(),
        router,
        store,
        shutdown: Rc::new(shutdown),
        books: Rc::default(),
    };
    let entries = config.fetch.iter();
    let chosen = entries.filter(|e| user.is_none_or(|u| u == e.user));
    let results = smol::block_on(async {
        let mut results = Vec::new();
        for entry in chosen {
            let result = run_once(&ctx, entry).await;
            results.push(format!("{} {}: {result}", entry.user, entry.upstream));
        }
        results
    });
    // What the runs taught the address books, as the server saves it.
    let (_, saved) = crate::spam::book::save(data_dir, ctx.books.take_changes());
    if let Err(e) = saved {
        log::error!("cannot save address books: {e}");
    }
    Ok(results.join("\n"))
}

/// The requests waiting, each taken away: `None` asks for every entry.
fn take_requests(data_dir: &Path) -> Vec<Option<String>> {
    let dir = requests_dir(data_dir);
    let mut requests = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = dir.join(&name);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let user = text.trim().to_string();
            requests.push((!user.is_empty()).then_some(user));
        }
        let _ = std::fs::remove_file(&path);
    }
    requests
}

/// Runs every entry on its schedule until shutdown; `wake` says a
/// request may be waiting.
pub async fn run(ctx: Rc<Context>, executor: Rc<LocalExecutor<'static>>, wake: Receiver<()>) {
    let mut wakers: Vec<Sender<()>> = Vec::new();
    let mut tasks = Vec::new();
    for index in 0..ctx.config.fetch.len() {
        let (waker, woken) = smol::channel::bounded(1);
        wakers.push(waker);
        tasks.push(executor.spawn(entry_loop(ctx.clone(), index, woken)));
    }
    let data_dir = ctx.config.data_dir.clone();
    loop {
        let dir = data_dir.clone();
        let requests = smol::unblock(move || take_requests(&dir)).await;
        for user in requests {
            let entries = ctx.config.fetch.iter().zip(&wakers);
            for (entry, waker) in entries {
                if user.as_ref().is_none_or(|u| *u == entry.user) {
                    let _ = waker.try_send(());
                }
            }
        }
        let woken = async {
            let _ = wake.recv().await;
        };
        future::or(woken, ctx.shutdown.requested()).await;
        if ctx.shutdown.is_requested() {
            return;
        }
    }
}

async fn entry_loop(ctx: Rc<Context>, index: usize, woken: Receiver<()>) {
    let entry = &ctx.config.fetch[index];
    loop {
        let _ = run_once(&ctx, entry).await;
        let wait = async {
            let timer = async {
                Timer::after(entry.every).await;
            };
            let asked = async {
                let _ = woken.recv().await;
            };
            future::or(timer, asked).await
        };
        future::or(wait, ctx.shutdown.requested()).await;
        if ctx.shutdown.is_requested() {
            return;
        }
    }
}

/// One run of an entry, its outcome logged and recorded (and returned).
async fn run_once(ctx: &Context, entry: &FetchEntry) -> String {
    let data_dir = ctx.config.data_dir.clone();
    let loaded = {
        let (data_dir, entry) = (data_dir.clone(), entry.clone());
        smol::unblock(move || state::load(&data_dir, &entry))
    };
    let mut record: EntryState = loaded.await;
    log::info!("fetch {} for {}: started", entry.upstream, entry.user);
    let ran = async { Some(super::client::run(ctx, entry, &mut record).await) };
    let stopped = async {
        ctx.shutdown.requested().await;
        None
    };
    let outcome = future::or(ran, stopped).await;
    let result = match outcome {
        None => "stopped by shutdown".to_string(),
        Some(Ok(ran)) => {
            let mut said = format!("ok, {} fetched", ran.fetched);
            if ran.deleted > 0 {
                said.push_str(&format!(", {} deleted upstream", ran.deleted));
            }
            if ran.over_quota > 0 {
                said.push_str(&format!(
                    ", {} left upstream (mailbox full)",
                    ran.over_quota
                ));
            }
            log::info!("fetch {} for {}: {said}", entry.upstream, entry.user);
            said
        }
        Some(Err(e)) => {
            log::error!("fetch {} for {} failed: {e}", entry.upstream, entry.user);
            format!("failed: {e}")
        }
    };
    record.last_run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    record.last_result = result.clone();
    if let Err(e) = state::save_off_thread(&data_dir, entry, &record).await {
        log::error!(
            "fetch {} for {}: cannot save its record: {e}",
            entry.upstream,
            entry.user
        );
    }
    result
}
