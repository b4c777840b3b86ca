//! `mac`: HMAC-SHA256 under a merchant's keys, computed here; the plugin
//! names a key (purpose, index) and never receives a secret.

use super::HostState;
use crate::runtime::billing::stripe_plugin::mac::{Host, KeyPurpose, MacError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::RwLock;

/// One merchant's secrets, newest first in each list.
#[derive(Debug, Clone, Default)]
pub struct MerchantKeys {
    /// Stripe's webhook signing secrets (`whsec_...`), all valid now.
    pub webhook_signing: Vec<String>,
    /// Keys of the pay-link tokens; the first makes new links.
    pub pay_link: Vec<String>,
}

impl MerchantKeys {
    fn of(&self, purpose: KeyPurpose) -> &[String] {
        match purpose {
            KeyPurpose::WebhookSigning => &self.webhook_signing,
            KeyPurpose::PayLink => &self.pay_link,
        }
    }

    /// Every secret, for checks that none leaked.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.webhook_signing.iter().chain(&self.pay_link)
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
        let keys = self.env.keys.get(&self.namespace);
        u32::try_from(keys.of(purpose).len()).unwrap_or(u32::MAX)
    }

    fn hmac_sha256(
        &mut self,
        purpose: KeyPurpose,
        index: u32,
        message: Vec<u8>,
    ) -> Result<Vec<u8>, MacError> {
        let keys = self.env.keys.get(&self.namespace);
        let secret = keys.of(purpose).get(index as usize).ok_or(MacError::NoSuchKey)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|e| MacError::Unavailable(e.to_string()))?;
        mac.update(&message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}
