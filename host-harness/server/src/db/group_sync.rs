//! Group commit: many writers' commits made durable by one sync.
//!
//! SQLite in WAL mode with `synchronous = NORMAL` commits without syncing
//! the WAL; [`GroupSync`] then syncs it for every writer that asks, one
//! sync covering every commit that finished before it started. A writer
//! asks before anything leaves the process (an answer, a Stripe request, an
//! email), so nothing is said outside that a crash or power loss could
//! take back. Pure: it knows commits only as a counter that grows, and the
//! sync as a function.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Where the syncs stand, in the store's own commit counter.
#[derive(Default)]
struct Progress {
    /// Every commit counted up to here is durable.
    synced: u64,
    /// The highest count a writer has asked to be made durable.
    wanted: u64,
    /// A sync is running (its leader has let go of the lock).
    running: bool,
}

/// One sync at a time; the writers that arrive meanwhile wait for the next
/// one, which covers them all.
#[derive(Default)]
pub struct GroupSync {
    progress: Mutex<Progress>,
    done: Condvar,
}

impl GroupSync {
    /// Returns once every commit counted up to `target` is durable. `target`
    /// is read after the caller's commit returned, so a sync that starts
    /// later covers it. The caller that finds no sync running runs `sync`
    /// (with the lock released); a failed sync is every waiter's error, and
    /// the next caller tries again.
    pub fn durable(
        &self,
        target: u64,
        sync: impl FnOnce() -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut progress = self.lock();
        progress.wanted = progress.wanted.max(target);
        let mut sync = Some(sync);
        loop {
            if progress.synced >= target {
                return Ok(());
            }
            if progress.running {
                progress = self.done.wait(progress).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let covers = progress.wanted;
            progress.running = true;
            drop(progress);
            let result = sync.take().map_or(Ok(()), |f| f());
            progress = self.lock();
            progress.running = false;
            if result.is_ok() {
                progress.synced = progress.synced.max(covers);
            }
            self.done.notify_all();
            result?;
            // A sync this caller led covers its own target (`covers` is
            // at least `target`); the loop's first test returns.
        }
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::GroupSync;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn a_count_already_synced_needs_no_sync() {
        let g = GroupSync::default();
        g.durable(3, || Ok(())).unwrap();
        g.durable(2, || panic!("synced again")).unwrap();
        g.durable(3, || panic!("synced again")).unwrap();
        let mut ran = false;
        g.durable(4, || {
            ran = true;
            Ok(())
        })
        .unwrap();
        assert!(ran);
    }

    #[test]
    fn a_failed_sync_is_the_callers_error_and_the_next_caller_syncs_again() {
        let g = GroupSync::default();
        let err = g
            .durable(1, || Err(std::io::Error::other("disk gone")))
            .unwrap_err();
        assert_eq!(err.to_string(), "disk gone");
        let mut ran = false;
        g.durable(1, || {
            ran = true;
            Ok(())
        })
        .unwrap();
        assert!(ran, "a failed sync made nothing durable");
    }

    /// Writers commit (the counter grows) and ask for durability at once;
    /// each must return only after a sync that started after its commit
    /// finished, and one sync serves several writers.
    #[test]
    fn every_writer_returns_after_a_sync_that_covers_its_commit_and_syncs_are_shared() {
        let g = Arc::new(GroupSync::default());
        let commits = Arc::new(AtomicU64::new(0));
        // The commit count each finished sync saw when it started.
        let covered = Arc::new(AtomicU64::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (g, commits, covered, syncs) =
                    (g.clone(), commits.clone(), covered.clone(), syncs.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let mine = commits.fetch_add(1, Ordering::SeqCst) + 1;
                        g.durable(mine, || {
                            let seen = commits.load(Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_micros(300));
                            covered.fetch_max(seen, Ordering::SeqCst);
                            syncs.fetch_add(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .unwrap();
                        assert!(
                            covered.load(Ordering::SeqCst) >= mine,
                            "commit {mine} was answered before a sync covered it"
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let syncs = syncs.load(Ordering::SeqCst);
        assert!(
            syncs < 400,
            "{syncs} syncs for 400 commits: none was shared"
        );
    }
}
