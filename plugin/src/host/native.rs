//! The imports built natively: each function has the signature of its WIT
//! binding and calls the [`Host`] installed on the current thread.

use crate::bindings::billing::stripe_plugin as wit;
use std::cell::RefCell;

/// What a native stand-in for the host provides: the five imports.
pub trait Host {
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, wit::kv::KvError>;
    fn kv_set(
        &mut self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<(), wit::kv::KvError>;
    fn kv_delete(&mut self, key: &str) -> Result<(), wit::kv::KvError>;
    fn kv_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, wit::kv::KvError>;
    fn now_ms(&mut self) -> u64;
    fn fetch(
        &mut self,
        req: &wit::http::Request,
    ) -> Result<wit::http::Response, wit::http::HttpError>;
    fn key_count(&mut self, purpose: wit::mac::KeyPurpose) -> u32;
    fn hmac_sha256(
        &mut self,
        purpose: wit::mac::KeyPurpose,
        index: u32,
        message: &[u8],
    ) -> Result<Vec<u8>, wit::mac::MacError>;
    fn verify_hmac_sha256(
        &mut self,
        purpose: wit::mac::KeyPurpose,
        message: &[u8],
        tags: &[Vec<u8>],
    ) -> Result<bool, wit::mac::MacError>;
    fn send_email(
        &mut self,
        msg: &wit::email::Message,
    ) -> Result<wit::email::Delivery, wit::email::EmailError>;
}

thread_local! {
    static HOST: RefCell<Option<Box<dyn Host>>> = const { RefCell::new(None) };
}

/// Installs `host` for the plugin's calls on this thread; returns the previous one.
pub fn install(host: Box<dyn Host>) -> Option<Box<dyn Host>> {
    HOST.with_borrow_mut(|h| h.replace(host))
}

fn with<T>(f: impl FnOnce(&mut dyn Host) -> T) -> T {
    HOST.with_borrow_mut(|h| match h.as_deref_mut() {
        Some(host) => f(host),
        None => panic!("no native host installed on this thread (host::native::install)"),
    })
}

pub mod kv {
    pub use crate::bindings::billing::stripe_plugin::kv::KvError;

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        super::with(|h| h.kv_get(key))
    }
    pub fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), KvError> {
        super::with(|h| h.kv_set(key, value, ttl_ms))
    }
    pub fn delete(key: &str) -> Result<(), KvError> {
        super::with(|h| h.kv_delete(key))
    }
    pub fn compare_and_swap(
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, KvError> {
        super::with(|h| h.kv_compare_and_swap(key, expected, new, ttl_ms))
    }
}

pub mod clock {
    pub fn now_ms() -> u64 {
        super::with(|h| h.now_ms())
    }
}

pub mod http {
    pub use crate::bindings::billing::stripe_plugin::http::{HttpError, Method, Request, Response};

    pub fn fetch(req: &Request) -> Result<Response, HttpError> {
        super::with(|h| h.fetch(req))
    }
}

pub mod mac {
    pub use crate::bindings::billing::stripe_plugin::mac::{KeyPurpose, MacError};

    pub fn key_count(purpose: KeyPurpose) -> u32 {
        super::with(|h| h.key_count(purpose))
    }
    pub fn hmac_sha256(
        purpose: KeyPurpose,
        index: u32,
        message: &[u8],
    ) -> Result<Vec<u8>, MacError> {
        super::with(|h| h.hmac_sha256(purpose, index, message))
    }
    pub fn verify_hmac_sha256(
        purpose: KeyPurpose,
        message: &[u8],
        tags: &[Vec<u8>],
    ) -> Result<bool, MacError> {
        super::with(|h| h.verify_hmac_sha256(purpose, message, tags))
    }
}

pub mod email {
    pub use crate::bindings::billing::stripe_plugin::email::{Delivery, EmailError, Message};

    pub fn send(msg: &Message) -> Result<Delivery, EmailError> {
        super::with(|h| h.send_email(msg))
    }
}
