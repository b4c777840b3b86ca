//! `kv`: entries of the store's `kv` table, namespaced by merchant.
//! Compare-and-swap is atomic against every writer of the database (see each
//! backend). Time spent here is off the guest's clock (see
//! `HostState::off_the_clock`).
//!
//! Reads between two of a call's compare-and-swaps or Stripe requests see
//! one snapshot: a key is read from the store once there, and the call's own
//! sets and deletes are read back. A compare-and-swap (won or lost) or a
//! request empties it, so a decision taken after one (under a lease just
//! taken, after Stripe answered) reads the store afresh; `kv.wit` says so.

use super::{HostState, Use};
use crate::bindings::billing::stripe_plugin::kv::{Host, KvError};
use crate::ports::StoreError;

/// Expired entries are removed now and then (every `PURGE_EVERY` writes with an expiry).
const PURGE_EVERY: u64 = 256;

fn failure(e: StoreError) -> KvError {
    match e {
        StoreError::Unavailable(m) => KvError::Unavailable(m),
        StoreError::Failed(m) => KvError::Other(m),
    }
}

/// The error a kv call over its caps gets (the call fails as a whole).
fn over(cap: super::Cap) -> KvError {
    KvError::Other(format!("over this call's cap of {}", cap.name()))
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        self.take(Use::KvRead).map_err(over)?;
        if let Some(seen) = self.snapshot.get(&key) {
            return Ok(seen.clone());
        }
        let value = self.off_the_clock(|host| {
            let db = &host.env.store;
            db.kv_get(&host.namespace, &key, now(host)).map_err(failure)
        })?;
        self.snapshot.insert(key, value.clone());
        Ok(value)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), KvError> {
        self.take(Use::KvWrite(key.len() + value.len()))
            .map_err(over)?;
        self.snapshot.remove(&key);
        self.off_the_clock(|host| {
            let expires = expiry(host, ttl_ms);
            host.env
                .store
                .kv_set(&host.namespace, &key, &value, expires)
                .map_err(failure)?;
            purge_now_and_then(host, ttl_ms)
        })?;
        self.snapshot.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: String) -> Result<(), KvError> {
        self.take(Use::KvWrite(key.len())).map_err(over)?;
        self.snapshot.remove(&key);
        self.off_the_clock(|host| {
            host.env
                .store
                .kv_delete(&host.namespace, &key)
                .map_err(failure)
        })?;
        self.snapshot.insert(key, None);
        Ok(())
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<bool, KvError> {
        self.take(Use::KvWrite(key.len() + new.len()))
            .map_err(over)?;
        // Whatever it finds, what this call read before may be stale now.
        self.snapshot.clear();
        self.off_the_clock(|host| {
            let swapped = host
                .env
                .store
                .kv_compare_and_swap(
                    &host.namespace,
                    &key,
                    expected.as_deref(),
                    &new,
                    expiry(host, ttl_ms),
                    now(host),
                )
                .map_err(failure)?;
            if swapped {
                purge_now_and_then(host, ttl_ms)?;
            }
            Ok(swapped)
        })
    }
}

fn now(host: &HostState) -> i64 {
    i64::try_from(host.env.clock.now_ms()).unwrap_or(i64::MAX)
}

/// When an entry written now with `ttl_ms` expires (None: never).
fn expiry(host: &HostState, ttl_ms: Option<u64>) -> Option<i64> {
    ttl_ms.map(|t| now(host).saturating_add(i64::try_from(t).unwrap_or(i64::MAX)))
}

fn purge_now_and_then(host: &HostState, ttl_ms: Option<u64>) -> Result<(), KvError> {
    if ttl_ms.is_some() && host.env.expiring_write().is_multiple_of(PURGE_EVERY) {
        host.env
            .store
            .kv_purge_expired(now(host))
            .map_err(failure)?;
    }
    Ok(())
}
