//! Group commit: messages that finish arriving while a commit runs are
//! made durable together by the next one, with two `syncfs` calls for the
//! whole batch (file data, then the links into new/) instead of two
//! fsyncs per message. A lone message takes the per-file path, which is
//! cheaper when the filesystem is shared with other writers.

use super::maildir::{unlink_all, Incoming};
use smol::channel::{bounded, Sender};
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

struct Job {
    incoming: Incoming,
    mailboxes: Vec<PathBuf>,
    done: Sender<io::Result<String>>,
}

#[derive(Default)]
pub struct GroupCommit {
    pending: RefCell<Vec<Job>>,
    running: Cell<bool>,
    /// Messages committed together with others (for statistics).
    grouped: Cell<u64>,
}

impl GroupCommit {
    /// Delivers `incoming` into `mailboxes` durably; resolves once it is on
    /// stable storage (or failed, with nothing left visible).
    pub async fn deliver(&self, incoming: Incoming, mailboxes: Vec<PathBuf>) -> io::Result<String> {
        let (done, result) = bounded(1);
        self.pending.borrow_mut().push(Job {
            incoming,
            mailboxes,
            done,
        });
        if !self.running.get() {
            // This caller leads: it commits batches until none are waiting.
            self.running.set(true);
            loop {
                let batch = std::mem::take(&mut *self.pending.borrow_mut());
                if batch.is_empty() {
                    break;
                }
                if batch.len() > 1 {
                    self.grouped.set(self.grouped.get() + batch.len() as u64);
                }
                smol::unblock(move || commit(batch)).await;
            }
            self.running.set(false);
        }
        result
            .recv()
            .await
            .unwrap_or_else(|_| Err(io::Error::other("commit abandoned")))
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
        let _ = job.done.try_send(job.incoming.deliver(&job.mailboxes));
        return;
    }
    let any_file = batch[0].incoming.file().try_clone();
    let outcome = any_file.and_then(|file| {
        syncfs(&file)?;
        Ok(file)
    });
    let file = match outcome {
        Ok(file) => file,
        Err(e) => return fail_all(batch, &e),
    };
    let mut linked = Vec::with_capacity(batch.len());
    for job in batch {
        let result = job.incoming.link_into(&job.mailboxes);
        linked.push((job, result));
    }
    if let Err(e) = syncfs(&file) {
        for (job, result) in linked {
            if let Ok((_, links)) = &result {
                unlink_all(links);
            }
            job.incoming.remove_spool();
            let _ = job
                .done
                .try_send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        return;
    }
    for (job, result) in linked {
        job.incoming.remove_spool();
        let _ = job.done.try_send(result.map(|(name, _)| name));
    }
}

fn fail_all(batch: Vec<Job>, e: &io::Error) {
    for job in batch {
        job.incoming.remove_spool();
        let _ = job
            .done
            .try_send(Err(io::Error::new(e.kind(), e.to_string())));
    }
}

/// Flushes the whole filesystem holding `file` and waits for it.
fn syncfs(file: &File) -> io::Result<()> {
    // SAFETY: syncfs only reads the descriptor, which `file` keeps open.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::maildir::{scan_mailbox, Incoming};

    #[test]
    fn concurrent_deliveries_all_land_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::create_dir_all(data.join("tmp")).unwrap();
        let (a, b) = (data.join("mail/a"), data.join("mail/b"));
        let commits = GroupCommit::default();
        let executor = smol::LocalExecutor::new();
        let results = smol::block_on(executor.run(async {
            // Spawned, so all are waiting while the first commit runs.
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    let mut m =
                        Incoming::create(data, format!("1700000000.M{i}P1Q{i}.test")).unwrap();
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
                results.push(task.await);
            }
            results
        }));
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        assert_eq!(scan_mailbox(&a).unwrap().len(), 20);
        assert_eq!(scan_mailbox(&b).unwrap().len(), 10);
        assert_eq!(std::fs::read_dir(data.join("tmp")).unwrap().count(), 0);
        assert!(commits.grouped() >= 2, "no batch was committed together");
    }
}
