//! Catching up on missed webhooks from Stripe's events, once or periodically.

use super::*;

impl App {
    /// Catches up on missed webhooks for every connected merchant, one at a
    /// time. A merchant whose sync fails does not hold up the others: if a
    /// retry can help, its sync is queued; if not, it is logged. Returns the
    /// events read and applied.
    pub fn sync(&self) -> anyhow::Result<(u32, u32)> {
        let (mut read, mut applied) = (0, 0);
        for scope in self.connected_scopes()? {
            match self.sync_one(&scope)? {
                Ok((r, a)) => (read, applied) = (read + r, applied + a),
                Err(e) if e.retryable() => self.queue(&scope, JobKind::Sync, "", &e)?,
                Err(e) => {
                    tracing::error!(merchant = %scope.id, error = %e.message(), "sync failed")
                }
            }
        }
        Ok((read, applied))
    }

    /// Every merchant that can use Stripe yet, in id order.
    pub(crate) fn connected_scopes(&self) -> anyhow::Result<Vec<Scope>> {
        let mut out = Vec::new();
        for id in self.merchants().ids()? {
            if let Some(scope) = self.scope(&id)?
                && scope.connected(&self.platform)
            {
                out.push(scope);
            }
        }
        Ok(out)
    }

    /// Calls `on-sync` for the merchant from its stored cursor until Stripe
    /// has nothing more, storing each call's transitions with its cursor.
    /// The outer error is the store's; the inner one the plugin's.
    pub(crate) fn sync_one(
        &self,
        scope: &Scope,
    ) -> anyhow::Result<Result<(u32, u32), PluginError>> {
        let key = scope.id.clone();
        let (mut read, mut applied) = (0, 0);
        for _ in 0..100 {
            let cursor = self.records(scope).sync_cursor(&key)?;
            let out = match self
                .runtime
                .on_sync(&scope.id, &scope.merchant, cursor.as_deref())?
            {
                Ok(out) => out,
                Err(e) => return Ok(Err(e)),
            };
            (read, applied) = (read + out.read, applied + out.applied);
            self.records(scope)
                .apply_synced(&key, &out.next_cursor, &out.transitions)
                .map_err(|e| anyhow::anyhow!("storing a sync: {e}"))?;
            self.journal_lines(scope, "sync", &out.transitions);
            if !out.more {
                break;
            }
        }
        Ok(Ok((read, applied)))
    }

    /// Syncs every merchant itself at start (catching up on what came while
    /// it was down), then every `every` for as long as the process: by
    /// queueing each merchant's sync once a period for the whole fleet
    /// (`queue_syncs`), or, on a worker without queue runners, by running
    /// every merchant's sync itself.
    pub fn sync_periodically(self: &Arc<Self>, every: std::time::Duration, by: SyncBy) {
        let app = self.clone();
        std::thread::spawn(move || {
            let mut now_by = SyncBy::ThisWorker;
            loop {
                let done = match now_by {
                    SyncBy::Queue => app.queue_syncs(every).map(|()| {
                        tracing::info!("sync: this period's syncs queued");
                    }),
                    SyncBy::ThisWorker => app.sync().map(|(read, applied)| {
                        tracing::info!(
                            read,
                            applied,
                            "sync: events read, and applied that no webhook had brought"
                        );
                    }),
                };
                if let Err(e) = done {
                    tracing::warn!(error = %format!("{e:#}"), "sync failed; will try again");
                }
                now_by = by;
                std::thread::sleep(every);
            }
        });
    }
}
