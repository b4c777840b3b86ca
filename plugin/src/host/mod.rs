//! The host's imports, in one place. In the component they are the WIT
//! bindings. Built natively (unit tests, the native benchmark), the same
//! functions call a stand-in installed on the current thread
//! ([`native::install`]), so the plugin's whole logic runs without wasm.

#[cfg(target_arch = "wasm32")]
pub use crate::bindings::billing::stripe_plugin::{clock, email, http, kv, mac};

#[cfg(not(target_arch = "wasm32"))]
pub mod memory;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::{clock, email, http, kv, mac};
