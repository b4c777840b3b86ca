//! `mac`: HMAC-SHA256 under a merchant's keys, computed here; the plugin
//! names a key (purpose, index) and never receives a secret. Webhook-signing
//! keys only verify (security review S8): the platform's Connect endpoint
//! secret serves every merchant, and a MAC under it would be a forged event.

use super::HostState;
use crate::bindings::billing::stripe_plugin::mac::{Host, KeyPurpose, MacError};
use crate::mac_tags::{hmac_sha256, verify};

impl Host for HostState {
    fn key_count(&mut self, purpose: KeyPurpose) -> u32 {
        let n = crate::keys::read(&*self.env.keys, &self.namespace, |k| k.of(purpose).len());
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn verify_hmac_sha256(
        &mut self,
        purpose: KeyPurpose,
        message: Vec<u8>,
        tags: Vec<Vec<u8>>,
    ) -> Result<bool, MacError> {
        crate::keys::read(&*self.env.keys, &self.namespace, |keys| {
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
        crate::keys::read(&*self.env.keys, &self.namespace, |keys| {
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
