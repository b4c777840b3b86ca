//! The kinds of work the durable queue holds, by the names the store keeps
//! (`queue` runs them; `server` queues and cancels them).

/// What a job does. Stored by name; one job per (merchant, kind, subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Sends the invoice named by the subject (`on-invoice-finalized`).
    Finalize,
    /// Catches the merchant up on missed webhooks (`on-sync`); no subject.
    Sync,
    /// Sends the outbox's email whose id is the subject to the SMTP relay.
    Email,
    /// Wakes the plugin for an invoice at the time it asked
    /// (`on-collection-due`: a dunning retry, or collection resumed after
    /// an account restriction); the subject is `{invoice}@{due ms}`.
    Collect,
}

impl JobKind {
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Finalize => "finalize",
            JobKind::Sync => "sync",
            JobKind::Email => crate::db::EMAIL_JOB,
            JobKind::Collect => crate::db::COLLECT_JOB,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            JobKind::Finalize,
            JobKind::Sync,
            JobKind::Email,
            JobKind::Collect,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}
