//! HMAC-SHA256 tags under a merchant's secrets, pure: what the `mac` import
//! computes for the plugin and what the host checks a card-page link with.
//! Only the host's own code calls these; the plugin names a key and never
//! sees a secret.

use crate::bindings::billing::stripe_plugin::mac::MacError;
use hmac::{Hmac, Mac};
use sha2::Sha256;

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
