//! Stripe's wire format: requests the plugin builds, the lean objects it reads
//! back, and Stripe's error object. Pure: no host calls here.

pub mod error;
pub mod objects;
pub mod request;
#[cfg(test)]
mod samples;
