//! Who is calling: the API key, and the connected account it acts for.

use crate::error::{Kind, stripe_error};
use crate::{Emulator, Reply};
use base64::Engine;

/// The secret key from `Authorization`, as Stripe accepts it: a bearer token,
/// or HTTP Basic with the key as the user name and no password (Stripe's own
/// curl examples: `curl -u sk_test_...:`). Test mode only.
/// https://docs.stripe.com/api/authentication
pub fn api_key(authorization: Option<&str>) -> Result<String, Reply> {
    let key = authorization.and_then(|a| {
        if let Some(token) = a.strip_prefix("Bearer ") {
            return Some(token.trim().to_string());
        }
        let encoded = a.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        Some(
            text.split_once(':')
                .map_or(text.as_str(), |(u, _)| u)
                .to_string(),
        )
    });
    match key {
        Some(k) if k.starts_with("sk_test_") || k.starts_with("rk_test_") => Ok(k),
        _ => Err(stripe_error(
            401,
            Kind::InvalidRequest,
            None,
            "You did not provide a valid test API key (sk_test_...). You can find your API keys in the Dashboard.",
            None,
        )),
    }
}

impl Emulator {
    /// A merchant connects an existing Stripe account to the platform (as
    /// through OAuth or an onboarding done elsewhere).
    pub fn connect_existing(&self, id: &str, business_name: &str) {
        let account = crate::resources::accounts::new_account(self, id, business_name);
        self.put("", account);
    }

    /// `Stripe-Account` must name an account connected to this platform: an
    /// unknown account, or one whose access was revoked, is refused with 403.
    /// https://docs.stripe.com/connect/authentication
    /// https://docs.stripe.com/error-codes#account-invalid
    pub(crate) fn acting_for(&self, key: &str, account: &str) -> Result<(), Reply> {
        let connected = self
            .get("", "account", account)
            .is_some_and(|a| a["_deauthorized"] != true);
        if connected {
            return Ok(());
        }
        let shown = format!(
            "{}***{}",
            &key[..8.min(key.len())],
            &key[key.len().saturating_sub(4)..]
        );
        Err(stripe_error(
            403,
            Kind::InvalidRequest,
            Some("account_invalid"),
            &format!(
                "The provided key '{shown}' does not have access to account '{account}' (or that account does not exist). Application access may have been revoked."
            ),
            None,
        ))
    }
}
