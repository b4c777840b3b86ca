//! `mac`: HMAC-SHA256 under a merchant's keys, computed here; the plugin
//! names a key (purpose, index) and never receives a secret. Webhook-signing
//! keys only verify (security review S8): the platform's Connect endpoint
//! secret serves every merchant, and a MAC under it would be a forged event.

use super::HostState;
use crate::bindings::billing::stripe_plugin::mac::{Host, KeyPurpose, MacError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::RwLock;

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

    /// Runs `f` on the merchant's keys without copying them (the webhook path).
    fn with<T>(&self, namespace: &str, f: impl FnOnce(&MerchantKeys) -> T) -> T {
        let ring = self.0.read().unwrap_or_else(|p| p.into_inner());
        match ring.get(namespace) {
            Some(keys) => f(keys),
            None => f(&MerchantKeys::default()),
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

impl Host for HostState {
    fn key_count(&mut self, purpose: KeyPurpose) -> u32 {
        let n = self.env.keys.with(&self.namespace, |k| k.of(purpose).len());
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn verify_hmac_sha256(
        &mut self,
        purpose: KeyPurpose,
        message: Vec<u8>,
        tags: Vec<Vec<u8>>,
    ) -> Result<bool, MacError> {
        self.env.keys.with(&self.namespace, |keys| {
            verify(keys.of(purpose), &message, &tags)
        })
    }

    fn hmac_sha256(
        &mut self,
        purpose: KeyPurpose,
        index: u32,
        message: Vec<u8>,
    ) -> Result<Vec<u8>, MacError> {
        if !signs(purpose) {
            return Err(MacError::VerifyOnly);
        }
        self.env.keys.with(&self.namespace, |keys| {
            let secret = keys
                .of(purpose)
                .get(index as usize)
                .ok_or(MacError::NoSuchKey)?;
            hmac_sha256(secret, &message)
        })
    }
}

/// Whether keys of `purpose` may sign (a pay link) or only verify (a webhook).
pub fn signs(purpose: KeyPurpose) -> bool {
    match purpose {
        KeyPurpose::PayLink => true,
        KeyPurpose::WebhookSigning => false,
    }
}

/// Whether any of `tags` is the MAC of `message` under any of `secrets`,
/// every pair compared in constant time.
pub fn verify(secrets: &[String], message: &[u8], tags: &[Vec<u8>]) -> Result<bool, MacError> {
    use subtle::ConstantTimeEq;
    let mut matched = false;
    for secret in secrets {
        let expected = hmac_sha256(secret, message)?;
        for tag in tags {
            matched |= bool::from(expected.ct_eq(tag));
        }
    }
    Ok(matched)
}

/// HMAC-SHA256 of `message` under `secret`.
pub fn hmac_sha256(secret: &str, message: &[u8]) -> Result<Vec<u8>, MacError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| MacError::Unavailable(e.to_string()))?;
    mac.update(message);
    Ok(mac.finalize().into_bytes().to_vec())
}
