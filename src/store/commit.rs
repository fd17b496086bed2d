//! Group commit: messages that finish arriving while a commit runs are
//! made durable together by the next one, with two `syncfs` calls for the
//! whole batch (file data, then the links into new/) instead of two
//! fsyncs per message; on ext4's ordered journal, links first and then
//! each file's sync, of which the first commits the batch. A lone message
//! takes the per-file path, which is cheaper when the filesystem is shared
//! with other writers.
//!
//! Any waiting caller may lead the next batch, and a batch, once taken,
//! runs to the end on the blocking pool whatever becomes of its leader: a
//! client that goes away mid-commit (its future dropped) never leaves the
//! others waiting for a commit nobody runs.

use super::maildir::{unlink_all, Delivered, Incoming};
use smol::channel::{bounded, Sender};
use smol::lock::Mutex;
use std::cell::{Cell, RefCell};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

struct Job {
    incoming: Incoming,
    mailboxes: Vec<PathBuf>,
    done: Sender<(Incoming, io::Result<Delivered>)>,
}

#[derive(Default)]
pub struct GroupCommit {
    pending: RefCell<Vec<Job>>,
    /// Held by the batch being committed, until it is on stable storage.
    leading: Arc<Mutex<()>>,
    /// Messages committed together with others (for statistics).
    grouped: Cell<u64>,
}

impl GroupCommit {
    /// Delivers `incoming` into `mailboxes` durably; resolves once it is on
    /// stable storage in those that took it (see [`Incoming::deliver`]).
    /// The message comes back with its spool name, for the caller to queue
    /// for the others or to discard.
    pub async fn deliver(
        &self,
        incoming: Incoming,
        mailboxes: Vec<PathBuf>,
    ) -> (Incoming, io::Result<Delivered>) {
        let (done, result) = bounded(1);
        self.pending.borrow_mut().push(Job {
            incoming,
            mailboxes,
            done,
        });
        // Every job is answered: `commit` sends on each path.
        let answered = async { result.recv().await.expect("commit answers every job") };
        // Answered first when both are ready, so a caller whose message
        // is committed leaves rather than leading yet another batch.
        smol::future::or(answered, self.lead()).await
    }

    /// Commits the waiting messages whenever no batch is under way; never
    /// returns (the caller stops when its own answer comes).
    async fn lead(&self) -> (Incoming, io::Result<Delivered>) {
        loop {
            let leading = self.leading.lock_arc().await;
            let batch = std::mem::take(&mut *self.pending.borrow_mut());
            if batch.is_empty() {
                // Ours is in a batch under way: its answer is coming.
                drop(leading);
                return smol::future::pending().await;
            }
            if batch.len() > 1 {
                self.grouped.set(self.grouped.get() + batch.len() as u64);
            }
            let (finished, wait) = bounded::<()>(1);
            // Detached: the batch is committed and answered even if this
            // caller goes away; the lock is released only when it is done.
            smol::unblock(move || {
                commit(batch);
                drop(leading);
                drop(finished);
            })
            .detach();
            let _ = wait.recv().await;
        }
    }
}

impl GroupCommit {
    /// How many messages shared a round of syncs with others so far.
    pub fn grouped(&self) -> u64 {
        self.grouped.get()
    }
}

/// Blocking: makes a batch durable and answers every job in it.
fn commit(batch: Vec<Job>) {
    if batch.len() == 1 {
        let job = batch.into_iter().next().unwrap();
        let result = job.incoming.deliver(&job.mailboxes);
        answer(job, result);
        return;
    }
    // Every message of a batch is spooled on the same disk.
    let disk = batch[0].incoming.disk().clone();
    let names_with_data = disk.sync_keeps_names(batch[0].incoming.file());
    if !names_with_data {
        if let Err(e) = disk.syncfs(batch[0].incoming.file()) {
            return fail_all(batch, &e);
        }
    }
    let mut linked = Vec::with_capacity(batch.len());
    for job in batch {
        let result = job.incoming.link_into(&job.mailboxes);
        linked.push((job, result));
    }
    // On an ordered journal each file's sync takes its names along, and
    // the first commits what the others then find done (a whole-disk
    // sync there would write a full journal commit instead).
    let synced = if names_with_data {
        linked
            .iter()
            .try_for_each(|(job, _)| disk.sync(job.incoming.file()))
    } else {
        disk.syncfs(linked[0].0.incoming.file())
    };
    if let Err(e) = synced {
        for (job, result) in linked {
            if let Ok((_, links, _)) = &result {
                unlink_all(&*disk, links);
            }
            answer(job, Err(io::Error::new(e.kind(), e.to_string())));
        }
        return;
    }
    for (job, result) in linked {
        answer(
            job,
            result.map(|(name, _, failed)| Delivered { name, failed }),
        );
    }
}

/// Gives the message back with its result; if its caller went away, the
/// spooled message is ended here.
fn answer(job: Job, result: io::Result<Delivered>) {
    if let Err(unsent) = job.done.try_send((job.incoming, result)) {
        unsent.into_inner().0.discard();
    }
}

fn fail_all(batch: Vec<Job>, e: &io::Error) {
    for job in batch {
        answer(job, Err(io::Error::new(e.kind(), e.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk::{Disk, Fs};
    use crate::store::maildir::{scan_mailbox, Incoming};

    #[test]
    fn concurrent_deliveries_all_land_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::create_dir_all(data.join("tmp")).unwrap();
        let (a, b) = (data.join("mail/a"), data.join("mail/b"));
        let fs: Arc<dyn Disk> = Arc::new(Fs);
        let commits = GroupCommit::default();
        let executor = smol::LocalExecutor::new();
        let results = smol::block_on(executor.run(async {
            // Spawned, so all are waiting while the first commit runs.
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    let mut m =
                        Incoming::create(&fs, data, format!("1700000000.M{i}P1Q{i}.test")).unwrap();
                    m.write(format!("Subject: {i}\r\n\r\nbody\r\n").as_bytes())
                        .unwrap();
                    let boxes = if i % 2 == 0 {
                        vec![a.clone()]
                    } else {
                        vec![a.clone(), b.clone()]
                    };
                    executor.spawn(commits.deliver(m, boxes))
                })
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                let (message, result) = task.await;
                message.discard();
                results.push(result);
            }
            results
        }));
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        assert_eq!(scan_mailbox(&Fs, &a).unwrap().len(), 20);
        assert_eq!(scan_mailbox(&Fs, &b).unwrap().len(), 10);
        assert_eq!(std::fs::read_dir(data.join("tmp")).unwrap().count(), 0);
        assert!(commits.grouped() >= 2, "no batch was committed together");
    }

    #[test]
    fn a_dropped_leader_does_not_stall_later_commits() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::create_dir_all(data.join("tmp")).unwrap();
        let mailbox = data.join("mail/a");
        let fs: Arc<dyn Disk> = Arc::new(Fs);
        let commits = GroupCommit::default();
        let executor = smol::LocalExecutor::new();
        let message = |i: u32| {
            let mut m = Incoming::create(&fs, data, format!("1700000000.M{i}P1Q{i}.test")).unwrap();
            m.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
            m
        };
        let leader = executor.spawn(commits.deliver(message(1), vec![mailbox.clone()]));
        // The leader starts its commit; the second waits for it.
        assert!(executor.try_tick());
        let follower = executor.spawn(commits.deliver(message(2), vec![mailbox.clone()]));
        assert!(executor.try_tick());
        // The leader's client goes away mid-commit.
        drop(leader);
        let finished = smol::block_on(executor.run(smol::future::or(
            async { Some(follower.await) },
            async {
                smol::Timer::after(std::time::Duration::from_secs(30)).await;
                None
            },
        )));
        let (second, result) = finished.expect("the commit after a dropped leader never finished");
        second.discard();
        assert!(result.is_ok(), "{result:?}");
        // And later deliveries still go through.
        let (third, later) =
            smol::block_on(executor.run(commits.deliver(message(3), vec![mailbox.clone()])));
        third.discard();
        assert!(later.is_ok(), "{later:?}");
        // The dropped leader's message was ended too.
        assert_eq!(std::fs::read_dir(data.join("tmp")).unwrap().count(), 0);
    }

    /// Three messages, the first committed alone and the other two
    /// together (one round of `syncfs`), with the power cut after each number of changes in turn:
    /// after the restart each acknowledged message is there whole exactly
    /// once, and no other message is there in part.
    #[test]
    fn a_power_cut_anywhere_in_a_group_commit_loses_nothing_acknowledged() {
        use crate::store::maildir::{clear_spool, create_mailbox};
        use crate::store::memory::Memory;
        let data = std::path::Path::new("/data");
        let mailbox = data.join("mail/test/a");
        let text = |i: usize| format!("Subject: {i}\r\n\r\nbody of {i}\r\n");
        // The filesystem model and ext4's ordered journal (one sync).
        for make in [Memory::new, Memory::journaled] {
            for cut in 0.. {
                let memory = Arc::new(make());
                let disk: Arc<dyn Disk> = memory.clone();
                clear_spool(&*disk, data).unwrap();
                create_mailbox(&*disk, &mailbox).unwrap();
                memory.cut_power_after(cut);
                let commits = GroupCommit::default();
                let executor = smol::LocalExecutor::new();
                let spool = |i: usize| {
                    let name = format!("1700000000.M{i}P1Q{i}.test");
                    let mut m = Incoming::create(&disk, data, name).ok()?;
                    m.write(text(i).as_bytes()).ok()?;
                    Some(m)
                };
                let acknowledged = smol::block_on(executor.run(async {
                    let mut acknowledged = Vec::new();
                    if let Some(m) = spool(0) {
                        let (message, result) = commits.deliver(m, vec![mailbox.clone()]).await;
                        message.discard();
                        if result.is_ok() {
                            acknowledged.push(0);
                        }
                    }
                    // The other two arrive while a commit is under way.
                    let under_way = commits.leading.lock_arc().await;
                    let tasks: Vec<_> = (1..3)
                        .filter_map(|i| {
                            let m = spool(i)?;
                            Some((i, executor.spawn(commits.deliver(m, vec![mailbox.clone()]))))
                        })
                        .collect();
                    smol::future::yield_now().await;
                    drop(under_way);
                    for (i, task) in tasks {
                        let (message, result) = task.await;
                        message.discard();
                        if result.is_ok() {
                            acknowledged.push(i);
                        }
                    }
                    acknowledged
                }));
                let finished = !memory.power_was_cut();
                memory.crash();
                let stored = scan_mailbox(&*disk, &mailbox).unwrap();
                let mut found = Vec::new();
                for message in &stored {
                    let bytes = disk.read(&mailbox.join(&*message.name)).unwrap();
                    let i = (0..3).find(|i| text(*i).as_bytes() == bytes);
                    found.push(i.unwrap_or_else(|| {
                        panic!("power cut after {cut} changes: partial message {bytes:?}")
                    }));
                }
                for i in 0..3 {
                    let copies = found.iter().filter(|f| **f == i).count();
                    let expected = if acknowledged.contains(&i) {
                        1..=1
                    } else {
                        0..=1
                    };
                    assert!(
                        expected.contains(&copies),
                        "power cut after {cut} changes: message {i} stored {copies} times"
                    );
                }
                if finished {
                    assert_eq!(acknowledged, [0, 1, 2]);
                    assert!(commits.grouped() >= 2, "no batch was committed together");
                    break;
                }
            }
        }
    }
}
