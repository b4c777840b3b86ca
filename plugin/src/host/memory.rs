//! An in-memory host for the plugin built natively: kv with expiry, a clock
//! the caller sets, each purpose's keys, emails kept, and no network (every
//! request fails with `connection`). The native benchmark runs on it.

use super::native::Host;
use crate::bindings::billing::stripe_plugin as wit;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct MemoryHost {
    /// key -> (value, expires at, in clock ms)
    pub kv: BTreeMap<String, (Vec<u8>, Option<u64>)>,
    pub now_ms: u64,
    pub webhook_signing: Vec<String>,
    pub pay_link: Vec<String>,
    pub emails: Vec<wit::email::Message>,
}

impl MemoryHost {
    fn live(&self, key: &str) -> Option<&Vec<u8>> {
        match self.kv.get(key)? {
            (_, Some(at)) if *at <= self.now_ms => None,
            (v, _) => Some(v),
        }
    }

    fn keys(&self, purpose: wit::mac::KeyPurpose) -> &[String] {
        match purpose {
            wit::mac::KeyPurpose::WebhookSigning => &self.webhook_signing,
            wit::mac::KeyPurpose::PayLink => &self.pay_link,
        }
    }
}

impl Host for MemoryHost {
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, wit::kv::KvError> {
        Ok(self.live(key).cloned())
    }

    fn kv_set(
        &mut self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<(), wit::kv::KvError> {
        let expires = ttl_ms.map(|t| self.now_ms.saturating_add(t));
        self.kv.insert(key.to_string(), (value.to_vec(), expires));
        Ok(())
    }

    fn kv_delete(&mut self, key: &str) -> Result<(), wit::kv::KvError> {
        self.kv.remove(key);
        Ok(())
    }

    fn kv_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, wit::kv::KvError> {
        if self.live(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        self.kv_set(key, new, ttl_ms)?;
        Ok(true)
    }

    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }

    fn fetch(
        &mut self,
        req: &wit::http::Request,
    ) -> Result<wit::http::Response, wit::http::HttpError> {
        Err(wit::http::HttpError::Connection(format!(
            "no network natively: {}",
            req.url
        )))
    }

    fn key_count(&mut self, purpose: wit::mac::KeyPurpose) -> u32 {
        u32::try_from(self.keys(purpose).len()).unwrap_or(u32::MAX)
    }

    fn hmac_sha256(
        &mut self,
        purpose: wit::mac::KeyPurpose,
        index: u32,
        message: &[u8],
    ) -> Result<Vec<u8>, wit::mac::MacError> {
        if purpose == wit::mac::KeyPurpose::WebhookSigning {
            return Err(wit::mac::MacError::VerifyOnly);
        }
        let secret = self
            .keys(purpose)
            .get(index as usize)
            .ok_or(wit::mac::MacError::NoSuchKey)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|e| wit::mac::MacError::Unavailable(e.to_string()))?;
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    fn verify_hmac_sha256(
        &mut self,
        purpose: wit::mac::KeyPurpose,
        message: &[u8],
        tags: &[Vec<u8>],
    ) -> Result<bool, wit::mac::MacError> {
        let tags: Vec<[u8; 32]> = tags
            .iter()
            .filter_map(|t| t.as_slice().try_into().ok())
            .collect();
        Ok(
            crate::signature::Keys::verify(self.keys(purpose), message, &tags)
                == crate::signature::Verified::Valid,
        )
    }

    fn send_email(
        &mut self,
        msg: &wit::email::Message,
    ) -> Result<wit::email::Delivery, wit::email::EmailError> {
        self.emails.push(msg.clone());
        Ok(wit::email::Delivery::Sent)
    }
}
