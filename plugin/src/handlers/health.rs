//! Connect account health: what the last `account.updated` of the
//! merchant's account said, kept in kv. While the account is restricted
//! (charges disabled, or requirements past due) nothing is charged and no
//! Checkout is opened: Stripe would refuse both. The merchant is emailed
//! once per restriction, with a fresh Account Link. An invoice whose
//! collection waits is handed to the host (`collection-scheduled`, reason
//! `account-restored`), which wakes it when charges are enabled again.
//! https://docs.stripe.com/connect/handling-api-verification

use crate::contract::{CollectionReason, CollectionScheduled, Merchant, PluginError, Transition};
use crate::host::kv;
use crate::imports::kv_failure;

fn key(account: &str) -> String {
    format!("account-health:{account}")
}

/// What is stored: restricted or not, and how many restrictions began
/// (each one's email has its own key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stored {
    restricted: bool,
    episode: u32,
}

impl Stored {
    fn encode(self) -> String {
        let word = if self.restricted {
            "restricted"
        } else {
            "enabled"
        };
        format!("{word} {}", self.episode)
    }

    fn decode(raw: &[u8]) -> Self {
        let text = std::str::from_utf8(raw).unwrap_or_default();
        let (word, episode) = text.split_once(' ').unwrap_or((text, "0"));
        Stored {
            restricted: word == "restricted",
            episode: episode.parse().unwrap_or(0),
        }
    }
}

/// Whether Stripe says the account can take payments now: charges enabled
/// and nothing past due.
pub fn restricted_by(charges_enabled: bool, past_due: &[String]) -> bool {
    !charges_enabled || !past_due.is_empty()
}

/// Whether the merchant's account is restricted now (never for the
/// platform's own account, or one never reported on).
pub fn restricted(m: &Merchant) -> Result<bool, PluginError> {
    if m.account_id.is_empty() {
        return Ok(false);
    }
    Ok(kv::get(&key(&m.account_id))
        .map_err(kv_failure)?
        .is_some_and(|raw| Stored::decode(&raw).restricted))
}

/// What an `account.updated` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// A restriction began (its number).
    Restricted(u32),
    Restored,
    Same,
}

/// Records what Stripe said of `account`. `on_restricted` runs before a new
/// restriction is stored (to email the merchant, under a key of its
/// number): should the call fail after it, a redelivery runs it again,
/// and the outbox drops the repeat.
pub fn note(
    account: &str,
    restricted: bool,
    on_restricted: &mut dyn FnMut(u32) -> Result<(), PluginError>,
) -> Result<Moved, PluginError> {
    let key = key(account);
    for _ in 0..8 {
        let raw = kv::get(&key).map_err(kv_failure)?;
        let before = raw.as_deref().map(Stored::decode).unwrap_or_default();
        if before.restricted == restricted {
            return Ok(Moved::Same);
        }
        let after = Stored {
            restricted,
            episode: before.episode + u32::from(restricted),
        };
        if restricted {
            on_restricted(after.episode)?;
        }
        let stored = kv::compare_and_swap(&key, raw.as_deref(), after.encode().as_bytes(), None)
            .map_err(kv_failure)?;
        if stored {
            return Ok(if restricted {
                Moved::Restricted(after.episode)
            } else {
                Moved::Restored
            });
        }
    }
    Err(PluginError::HostUnavailable(
        "account health kept changing; retry".into(),
    ))
}

/// Collection of `invoice_id` waits for the account to be restored: the
/// host keeps the wake-up parked in its queue until an `account-updated`
/// says the account is no longer restricted.
pub fn held(invoice_id: &str) -> Transition {
    Transition::CollectionScheduled(CollectionScheduled {
        invoice_id: invoice_id.into(),
        due_at_ms: 0,
        reason: CollectionReason::AccountRestored,
        retries_left: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_survives_its_encoding() {
        for s in [
            Stored::default(),
            Stored {
                restricted: true,
                episode: 3,
            },
        ] {
            assert_eq!(Stored::decode(s.encode().as_bytes()), s);
        }
        assert!(restricted_by(false, &[]));
        assert!(restricted_by(true, &["external_account".into()]));
        assert!(!restricted_by(true, &[]));
    }
}
