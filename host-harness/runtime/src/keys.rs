//! Each merchant's secrets, kept by the host: the plugin uses them only
//! through the `mac` import, by purpose and index, and never receives one.

use crate::bindings::billing::stripe_plugin::mac::KeyPurpose;
use std::collections::HashMap;
use std::sync::RwLock;

/// Each merchant's secrets, held by the host: the `mac` import computes and
/// verifies with them, and the plugin only names them (purpose, index).
/// `keys::KeyRing` keeps them in memory.
pub trait KeyStore: Send + Sync {
    /// Calls `f` once with the keys of the merchant `namespace` (empty ones
    /// when it has none), without copying them.
    fn with_keys(&self, namespace: &str, f: &mut dyn FnMut(&MerchantKeys));
}

/// One merchant's secrets, newest first in each list.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MerchantKeys {
    /// Stripe's webhook signing secrets (`whsec_...`), all valid now.
    pub webhook_signing: Vec<String>,
    /// Keys of the pay-link tokens; the first makes new links.
    pub pay_link: Vec<String>,
}

impl MerchantKeys {
    pub fn of(&self, purpose: KeyPurpose) -> &[String] {
        match purpose {
            KeyPurpose::WebhookSigning => &self.webhook_signing,
            KeyPurpose::PayLink => &self.pay_link,
        }
    }
}

/// Every merchant's keys, by the merchant's namespace (its account).
#[derive(Default)]
pub struct KeyRing(RwLock<HashMap<String, MerchantKeys>>);

impl KeyRing {
    pub fn set(&self, namespace: &str, keys: MerchantKeys) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(namespace.to_string(), keys);
    }

    /// Makes `keys` the namespace's, writing only when they differ.
    pub fn ensure(&self, namespace: &str, keys: MerchantKeys) {
        let same = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace)
            .is_some_and(|k| *k == keys);
        if !same {
            self.set(namespace, keys);
        }
    }

    pub fn get(&self, namespace: &str) -> MerchantKeys {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }
}

impl KeyStore for KeyRing {
    fn with_keys(&self, namespace: &str, f: &mut dyn FnMut(&MerchantKeys)) {
        let ring = self.0.read().unwrap_or_else(|p| p.into_inner());
        match ring.get(namespace) {
            Some(keys) => f(keys),
            None => f(&MerchantKeys::default()),
        }
    }
}

/// `f` of the merchant's keys in `store`, without copying them (the webhook
/// path); of empty keys if the store never calls back.
pub(crate) fn read<T>(
    store: &dyn KeyStore,
    namespace: &str,
    mut f: impl FnMut(&MerchantKeys) -> T,
) -> T {
    let mut out = None;
    store.with_keys(namespace, &mut |keys| {
        if out.is_none() {
            out = Some(f(keys));
        }
    });
    out.unwrap_or_else(|| f(&MerchantKeys::default()))
}

/// The message a customer's card-page link is the MAC of: the merchant's
/// account and the Stripe customer (the plugin makes the same one).
pub fn card_page_message(account: &str, stripe_customer: &str) -> Vec<u8> {
    format!("cardpage.{account}/{stripe_customer}").into_bytes()
}

/// Whether `tag` is the MAC of `message` under any of the merchant's
/// pay-link keys (a rotated one too), compared in constant time: how the host
/// checks a card-page link before it shows anything.
pub fn pay_link_tag_valid(
    store: &dyn KeyStore,
    namespace: &str,
    message: &[u8],
    tag: &[u8],
) -> bool {
    read(store, namespace, |keys| {
        crate::mac_tags::verify(&keys.pay_link, message, &[tag.to_vec()]).unwrap_or(false)
    })
}
