//! The emulator's objects, each owned by one account ("" is the platform),
//! and the reads and writes every resource shares.

use crate::Emulator;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One stored object, the account that owns it, and when it was made
/// (a sequence number: lists are newest first).
#[derive(Debug, Clone)]
pub struct Stored {
    pub account: String,
    pub seq: u64,
    pub object: Value,
}

#[derive(Default)]
pub struct Store {
    /// The last number given to an id.
    ids: u64,
    /// The last place given in lists.
    seq: u64,
    objects: BTreeMap<String, Stored>,
    /// Each account's objects of each kind, by their place in lists: a list
    /// reads its own kind, not every object (objects are never removed).
    by_kind: HashMap<(String, String), BTreeMap<u64, String>>,
    /// (expires_at, session id) of Checkout Sessions, soonest first.
    expiring: BTreeSet<(i64, String)>,
}

impl Store {
    pub fn next_id_number(&mut self) -> u64 {
        self.ids += 1;
        self.ids
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Inserts or replaces `object`; a replaced object keeps its place in lists.
    pub fn put(&mut self, account: &str, object: Value) {
        let id = object["id"].as_str().unwrap_or_default().to_string();
        let seq = match self.objects.get(&id) {
            // Replaced: the same account, kind and place in lists, so its
            // entry in the index stands.
            Some(s) => s.seq,
            None => {
                let seq = self.next_seq();
                let listed = (account.to_string(), kind_of(&object));
                self.by_kind
                    .entry(listed)
                    .or_default()
                    .insert(seq, id.clone());
                seq
            }
        };
        self.objects.insert(
            id,
            Stored {
                account: account.to_string(),
                seq,
                object,
            },
        );
    }

    /// Remembers when a Checkout Session expires.
    pub fn expires(&mut self, at: i64, id: &str) {
        self.expiring.insert((at, id.to_string()));
    }

    /// The sessions whose time is up at `now`, forgotten once returned.
    pub fn due(&mut self, now: i64) -> Vec<String> {
        let later = self.expiring.split_off(&(now + 1, String::new()));
        let due = std::mem::replace(&mut self.expiring, later);
        due.into_iter().map(|(_, id)| id).collect()
    }

    pub fn stored(&self, id: &str) -> Option<&Stored> {
        self.objects.get(id)
    }

    /// Objects of one kind of one account, newest first.
    pub fn of_kind<'a>(
        &'a self,
        account: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a Stored> + 'a {
        let listed = self.by_kind.get(&(account.to_string(), kind.to_string()));
        listed
            .into_iter()
            .flat_map(|by_seq| by_seq.values().rev())
            .filter_map(|id| self.objects.get(id))
    }

    /// Every object of one kind, across accounts, oldest first.
    pub fn everywhere(&self, kind: &str) -> Vec<Value> {
        let mut all: Vec<&Stored> = self
            .by_kind
            .iter()
            .filter(|((_, k), _)| k == kind)
            .flat_map(|(_, by_seq)| by_seq.values())
            .filter_map(|id| self.objects.get(id))
            .collect();
        all.sort_by_key(|s| s.seq);
        all.into_iter().map(|s| s.object.clone()).collect()
    }
}

fn kind_of(object: &Value) -> String {
    object["object"].as_str().unwrap_or_default().to_string()
}

impl Emulator {
    pub(crate) fn get(&self, account: &str, kind: &str, id: &str) -> Option<Value> {
        self.store()
            .stored(id)
            .filter(|s| s.account == account && s.object["object"] == kind)
            .map(|s| s.object.clone())
    }

    pub(crate) fn put(&self, account: &str, object: Value) {
        self.store().put(account, object);
    }

    /// The owner and the object, whatever the account (test routes only).
    pub(crate) fn owner_of(&self, id: &str) -> Option<(String, Value)> {
        self.store()
            .stored(id)
            .map(|s| (s.account.clone(), s.object.clone()))
    }

    /// Whether `id` is a customer of `account` that has not been deleted.
    pub(crate) fn live_customer(&self, account: &str, id: &str) -> bool {
        self.get(account, "customer", id)
            .is_some_and(|c| c["deleted"] != true)
    }
}
