//! The renewal task on the server's executor: waits until a certificate
//! is due (or `tls renew` asks), runs an order, keeps the result on flash
//! (key first, then the chain, each replaced durably) and has every
//! listener use it from the next handshake. Failures are logged, recorded
//! in the status file and retried after growing delays; meanwhile the
//! certificate in use stays (an expired ACME one gives way to the `[tls]`
//! or self-signed one).

use super::http::{self, Response};
use super::jws::AccountKey;
use super::order::{Answer, Driver, Settings, Step};
use super::schedule::{self, Held};
use super::status::{self, AcmeStatus};
use super::{Answers, RenewNow, ACCOUNT_KEY_FILE};
use crate::config::Config;
use crate::dns::Resolver;
use crate::store::disk;
use crate::store::durable::{create_dir_durable, replace_file};
use crate::tls::{self, CertPaths, Origin, Tls};
use smol::Timer;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the renewal task uses.
pub struct Context {
    pub config: Rc<Config>,
    pub tls: Rc<Tls>,
    pub resolver: Rc<Resolver>,
    pub answers: Rc<Answers>,
    pub renew_now: Rc<RenewNow>,
    /// The plain HTTP listener is on: http-01 can be answered.
    pub http01: bool,
    /// The HTTPS listener is on: tls-alpn-01 can be answered.
    pub tls_alpn01: bool,
}

/// Runs until dropped.
pub async fn run(ctx: Rc<Context>) {
    if !(ctx.http01 || ctx.tls_alpn01) {
        log::error!("ACME needs [web] http_listen (http-01) or [web] listen (tls-alpn-01): no certificate will be requested");
        return;
    }
    let tls_dir = tls::dir(&ctx.config);
    loop {
        let now = tls::unix_now();
        let held = held(&ctx).await;
        if ctx.tls.origin() == Origin::Acme && held.is_none_or(|h| h.valid_until <= now) {
            match ctx.tls.use_fallback() {
                Ok(_) => log::warn!("ACME certificate expired: serving the fallback certificate"),
                Err(e) => log::error!("ACME certificate expired and no fallback: {e}"),
            }
        }
        let mut record = load_status(&tls_dir).await;
        let at = schedule::next_attempt(held, record.failures, record.last_error_at, now);
        record.next_attempt = Some(at);
        save_status(&tls_dir, &record).await;
        if at > now {
            log::info!(
                "ACME: next certificate attempt in {}",
                describe_wait(at - now)
            );
            // Woken at the expiry of the one in use too, to fall back.
            let wake = match (ctx.tls.origin(), held) {
                (Origin::Acme, Some(held)) => at.min(held.valid_until),
                _ => at,
            };
            let wait = Duration::from_secs((wake - now).max(0) as u64);
            let requested = smol::future::or(
                async {
                    ctx.renew_now.requested().await;
                    true
                },
                async {
                    Timer::after(wait).await;
                    false
                },
            )
            .await;
            if requested {
                log::info!("ACME: renewal requested");
            } else if tls::unix_now() < at {
                continue;
            }
        }
        ctx.renew_now.take();
        let outcome = attempt(&ctx).await;
        let now = tls::unix_now();
        match outcome {
            Ok(info) => {
                log::info!(
                    "ACME: certificate for {} from {} in use, valid until {}",
                    info.names.join(", "),
                    info.issuer,
                    info.not_after
                );
                record.last_success = Some(now);
                record.expires = Some(info.valid_until);
                record.failures = 0;
            }
            Err(e) => {
                log::warn!("ACME: no certificate: {e}");
                record.last_error = Some(e);
                record.last_error_at = Some(now);
                record.failures += 1;
            }
        }
        save_status(&tls_dir, &record).await;
    }
}

/// `3d 04h`, `12m 30s`.
fn describe_wait(seconds: i64) -> String {
    match seconds {
        s if s >= 86_400 => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}m {:02}s", s / 60, s % 60),
    }
}

/// The ACME certificate on flash, for timing; `None` when there is none
/// that fits its key.
async fn held(ctx: &Context) -> Option<Held> {
    let paths = CertPaths::acme(&ctx.config);
    let names = ctx.config.acme_names();
    smol::unblock(move || {
        let info = tls::usable(&paths).ok()?;
        Some(Held {
            valid_from: info.valid_from,
            valid_until: info.valid_until,
            covers: names.iter().all(|n| info.names.contains(n)),
        })
    })
    .await
}

async fn load_status(tls_dir: &std::path::Path) -> AcmeStatus {
    let dir = tls_dir.to_path_buf();
    let (record, damage) = smol::unblock(move || status::load(disk::system(), &dir)).await;
    if let Some(damage) = damage {
        log::warn!("ACME status unreadable, starting afresh: {damage}");
    }
    record
}

async fn save_status(tls_dir: &std::path::Path, record: &AcmeStatus) {
    let dir = tls_dir.to_path_buf();
    let record = record.clone();
    let saved = smol::unblock(move || {
        create_dir_durable(disk::system(), &dir)?;
        status::save(disk::system(), &dir, &record)
    })
    .await;
    if let Err(e) = saved {
        log::error!("cannot save the ACME status: {e}");
    }
}

/// The account key on flash, made on first use.
async fn account_key(config: &Config) -> Result<AccountKey, String> {
    let dir = tls::dir(config);
    smol::unblock(move || {
        let path = dir.join(ACCOUNT_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => return AccountKey::from_pem(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        let key = AccountKey::generate()?;
        let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        create_dir_durable(disk::system(), &dir).map_err(cannot)?;
        replace_file(disk::system(), &path, key.to_pem()?.as_bytes()).map_err(cannot)?;
        log::info!("ACME: made an account key in {}", path.display());
        Ok(key)
    })
    .await
}

/// One order; on success the new certificate is on flash and in use.
async fn attempt(ctx: &Context) -> Result<tls::der::CertInfo, String> {
    let config = &ctx.config;
    let key = account_key(config).await?;
    let client = crate::outbound::tls::verified_config(config.acme.ca.as_deref())
        .map_err(|e| format!("acme.ca: {e}"))?;
    let settings = Settings {
        directory: config.acme.directory.to_string(),
        contact: config.acme.contact.clone(),
        names: config.acme_names(),
        http01: ctx.http01,
        tls_alpn01: ctx.tls_alpn01,
    };
    log::info!(
        "ACME: asking {} for a certificate for {}",
        settings.directory,
        settings.names.join(", ")
    );
    let mut published = Vec::new();
    let outcome = drive(
        ctx,
        &client,
        Driver::new(settings, key, Instant::now()),
        &mut published,
    )
    .await;
    for answer in published {
        match answer {
            Answer::Http01 { token, .. } => ctx.answers.withdraw(&token),
            Answer::TlsAlpn01 { name, .. } => ctx.tls.challenges().remove(&name),
        }
    }
    let (chain, key) = outcome?;
    let paths = CertPaths::acme(config);
    let to_store = paths.clone();
    smol::unblock(move || store(&to_store, &chain, &key)).await?;
    ctx.tls.install(&paths)
}

/// Runs the order to its end, publishing answers as it asks.
async fn drive(
    ctx: &Context,
    client: &Arc<rustls::ClientConfig>,
    mut order: Driver,
    published: &mut Vec<Answer>,
) -> Result<(String, String), String> {
    let mut phase = String::new();
    let mut step = order.start();
    loop {
        if order.phase() != phase && !matches!(step, Step::Done { .. } | Step::Failed(_)) {
            phase = order.phase();
            log::info!("ACME: {phase}");
        }
        step = match step {
            Step::Send(request) => {
                log::debug!("ACME: {} {}", request.method.as_str(), request.url);
                let answer: Result<Response, String> =
                    http::fetch(&ctx.resolver, client, &request).await;
                match answer {
                    Ok(response) => order.receive(response, Instant::now()),
                    Err(e) => order.unreachable(e),
                }
            }
            Step::Publish(answer) => {
                publish(ctx, &answer)?;
                published.push(answer);
                order.resume(Instant::now())
            }
            Step::Wait(wait) => {
                Timer::after(wait).await;
                order.resume(Instant::now())
            }
            Step::Done { chain, key } => return Ok((chain, key)),
            Step::Failed(why) => return Err(why),
        };
    }
}

fn publish(ctx: &Context, answer: &Answer) -> Result<(), String> {
    match answer {
        Answer::Http01 {
            token,
            key_authorization,
        } => {
            log::info!("ACME: answering http-01 at /.well-known/acme-challenge/{token}");
            ctx.answers.publish(token, key_authorization);
        }
        Answer::TlsAlpn01 {
            name,
            key_authorization,
        } => {
            log::info!("ACME: answering tls-alpn-01 for {name}");
            let (cert, key) = super::messages::tls_alpn_certificate(name, key_authorization)?;
            ctx.tls.challenges().insert(name, cert, key)?;
        }
    }
    Ok(())
}

/// Keeps the new key, then the chain: a crash in between leaves a pair
/// that does not fit, which the next start sets aside for the fallback.
fn store(paths: &CertPaths, chain: &str, key: &str) -> Result<(), String> {
    let disk = disk::system();
    if let Some(dir) = paths.cert.parent() {
        create_dir_durable(disk, dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    replace_file(disk, &paths.key, key.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", paths.key.display()))?;
    replace_file(disk, &paths.cert, chain.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", paths.cert.display()))
}
