//! Idempotent requests as Stripe keeps them.
//! https://docs.stripe.com/api/idempotent_requests
//!
//! - Keys are up to 255 characters, per account.
//! - The first result of a request that started executing is saved, 5xx
//!   included, and replayed for the same key and the same parameters; other
//!   parameters are an `idempotency_error`.
//! - Results are not saved if the parameters failed validation, or if the
//!   request conflicted with another one using the same key concurrently
//!   (that one gets 409).
//! - Keys can be removed once they are at least 24 hours old: after that the
//!   same key is a new request.

use crate::error::{Kind, invalid, stripe_error};
use crate::{Emulator, Reply};
use std::collections::{HashMap, HashSet, VecDeque};

pub const MAX_KEY_LEN: usize = 255;
pub const KEPT_SECS: i64 = 24 * 3600;

struct Saved {
    fingerprint: String,
    reply: Reply,
    at: i64,
}

#[derive(Default)]
pub struct Keys {
    saved: HashMap<(String, String), Saved>,
    /// When each saved key was saved, oldest first: forgetting the keys
    /// past 24 hours looks at these only, not at every key.
    saved_at: VecDeque<(i64, (String, String))>,
    in_flight: HashSet<(String, String)>,
}

impl Keys {
    fn save(&mut self, slot: (String, String), saved: Saved) {
        self.saved_at.push_back((saved.at, slot.clone()));
        self.saved.insert(slot, saved);
    }

    /// Forgets the keys saved `KEPT_SECS` or more before `now`.
    fn forget_old(&mut self, now: i64) {
        while let Some((at, _)) = self.saved_at.front()
            && now - at >= KEPT_SECS
        {
            if let Some((at, slot)) = self.saved_at.pop_front()
                && self.saved.get(&slot).is_some_and(|s| s.at == at)
            {
                self.saved.remove(&slot);
            }
        }
    }
}

/// Whether Stripe saves this answer: only requests that started executing.
fn saved_by_stripe(reply: &Reply) -> bool {
    !matches!(reply.status, 400 | 401 | 403 | 404 | 409)
}

enum Seen {
    Replay(Reply),
    New,
}

impl Emulator {
    pub(crate) fn idempotent(
        &self,
        account: &str,
        key: &str,
        path: &str,
        body: &[u8],
        run: impl FnOnce() -> Reply,
    ) -> Reply {
        if key.len() > MAX_KEY_LEN {
            return invalid(
                None,
                &format!(
                    "Invalid Idempotency-Key: keys can be at most {MAX_KEY_LEN} characters long."
                ),
                None,
            );
        }
        let fingerprint = format!("{path}\n{}", String::from_utf8_lossy(body));
        let slot = (account.to_string(), key.to_string());
        match self.look_up(&slot, &fingerprint) {
            Ok(Seen::Replay(r)) => return r,
            Ok(Seen::New) => {}
            Err(refused) => return refused,
        }
        let reply = run();
        let mut st = self.state();
        st.idempotency.in_flight.remove(&slot);
        if saved_by_stripe(&reply) {
            let at = self.now();
            st.idempotency.save(
                slot,
                Saved {
                    fingerprint,
                    reply: reply.clone(),
                    at,
                },
            );
        }
        reply
    }

    fn look_up(&self, slot: &(String, String), fingerprint: &str) -> Result<Seen, Reply> {
        let now = self.now();
        let mut st = self.state();
        let keys = &mut st.idempotency;
        keys.forget_old(now);
        if keys.in_flight.contains(slot) {
            return Err(stripe_error(
                409,
                Kind::Idempotency,
                Some("idempotency_key_in_use"),
                "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through). Please try again later.",
                None,
            ));
        }
        if let Some(saved) = keys.saved.get(slot) {
            if saved.fingerprint != fingerprint {
                return Err(stripe_error(
                    400,
                    Kind::Idempotency,
                    None,
                    &format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{}' if you meant to execute a different request.",
                        slot.1
                    ),
                    None,
                ));
            }
            let mut replay = saved.reply.clone();
            replay
                .headers
                .push(("Idempotent-Replayed".into(), "true".into()));
            return Ok(Seen::Replay(replay));
        }
        keys.in_flight.insert(slot.clone());
        Ok(Seen::New)
    }
}
