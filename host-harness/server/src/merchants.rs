//! Merchants are data: each one's settings live in the `merchants` table,
//! set by `PUT /merchants/{id}`. The default merchant is seeded from the
//! config file at start, so single-merchant use keeps working.

use crate::db::{Db, MerchantPutError};
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// What the platform sets for one merchant (`PUT /merchants/{id}`, JSON).
/// Unknown fields are refused, so a misspelt setting is an error, not a no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MerchantSettings {
    /// The merchant's connected account, `acct_...`; absent until onboarding.
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default = "on")]
    pub auto_charge: bool,
    #[serde(default = "on")]
    pub show_payment_link: bool,
    #[serde(default)]
    pub stripe_receipts: bool,
    #[serde(default)]
    pub notification_email: String,
    #[serde(default)]
    pub livemode: bool,
    /// The name the merchant's customers see on its pages.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Dunning: days after a soft-declined auto-charge on which it is
    /// retried; `[]` turns retries off.
    #[serde(default = "default_retry_days")]
    pub retry_days: Vec<u32>,
}

fn on() -> bool {
    true
}

/// Four retries, at days 1, 3, 5 and 7 after the first decline.
pub fn default_retry_days() -> Vec<u32> {
    vec![1, 3, 5, 7]
}

/// A retry schedule as a merchant may set it: days after the first
/// decline, growing, at most 10 retries within 60 days.
pub fn check_retry_days(days: &[u32]) -> Result<(), String> {
    if days.len() > 10 {
        return Err("retryDays: at most 10 retries".into());
    }
    if days.iter().any(|d| *d == 0 || *d > 60) {
        return Err("retryDays: each retry is 1 to 60 days after the first decline".into());
    }
    if days.windows(2).any(|w| w[0] >= w[1]) {
        return Err("retryDays must grow, e.g. [1, 3, 5, 7]".into());
    }
    Ok(())
}

/// Why settings were not stored.
#[derive(Debug)]
pub enum PutError {
    /// The id or a setting is not acceptable; the message says which.
    Invalid(String),
    /// Another merchant already has this connected account.
    AccountTaken(String),
    Storage(anyhow::Error),
}

impl std::fmt::Display for PutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PutError::Invalid(m) | PutError::AccountTaken(m) => f.write_str(m),
            PutError::Storage(e) => write!(f, "storage: {e:#}"),
        }
    }
}

impl std::error::Error for PutError {}

impl MerchantSettings {
    /// Reads settings from a request body, with a message fit for the caller.
    pub fn parse(body: &[u8]) -> Result<Self, PutError> {
        let settings: Self = serde_json::from_slice(body)
            .map_err(|e| PutError::Invalid(format!("invalid merchant settings: {e}")))?;
        if let Some(a) = &settings.account_id
            && !a.is_empty()
            && !valid_account_id(a)
        {
            return Err(PutError::Invalid(
                "accountId must be a connected account id: acct_ and letters or digits".into(),
            ));
        }
        check_retry_days(&settings.retry_days).map_err(PutError::Invalid)?;
        Ok(settings)
    }

    /// The connected account, if there is one.
    pub fn account(&self) -> Option<&str> {
        self.account_id.as_deref().filter(|a| !a.is_empty())
    }
}

/// A connected account id as Stripe makes them: `acct_` and 1 to 250
/// letters or digits. Nothing else reaches a log line, a header or a key.
pub fn valid_account_id(id: &str) -> bool {
    id.strip_prefix("acct_").is_some_and(|rest| {
        (1..=250).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// A merchant id is the platform's: 1 to 64 letters, digits, `-` or `_`, so
/// that it sits in a URL path as is.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `merchants` table.
pub struct Merchants<'a> {
    db: &'a Db,
}

impl<'a> Merchants<'a> {
    pub fn new(db: &'a Db) -> Self {
        Self { db }
    }

    pub fn get(&self, id: &str) -> Result<Option<MerchantSettings>> {
        let text = self.db.merchant_settings(id)?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    }

    /// The merchant whose connected account is `account`, and its settings.
    pub fn by_account(&self, account: &str) -> Result<Option<(String, MerchantSettings)>> {
        let Some((id, text)) = self.db.merchant_by_account(account)? else {
            return Ok(None);
        };
        Ok(Some((id, serde_json::from_str(&text)?)))
    }

    /// Every merchant's id, in order.
    pub fn ids(&self) -> Result<Vec<String>> {
        Ok(self.db.merchant_ids()?)
    }

    /// Creates or replaces a merchant's settings.
    pub fn put(&self, id: &str, settings: &MerchantSettings) -> Result<(), PutError> {
        if !valid_id(id) {
            return Err(PutError::Invalid(
                "a merchant id is 1 to 64 letters, digits, - or _".into(),
            ));
        }
        let text = serde_json::to_string(settings).map_err(|e| PutError::Storage(e.into()))?;
        match self.db.put_merchant(id, settings.account(), &text) {
            Ok(()) => Ok(()),
            Err(MerchantPutError::AccountTaken) => Err(PutError::AccountTaken(format!(
                "account {} belongs to another merchant",
                settings.account().unwrap_or_default()
            ))),
            Err(MerchantPutError::Store(e)) => Err(PutError::Storage(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Security review S16: an account id is written into logs and
    /// headers; only Stripe's own shape is taken.
    #[test]
    fn an_account_id_is_acct_and_letters_and_digits_only() {
        for bad in [
            "acct_a\nFORGED",
            "acct_a\r\nX-Injected: 1",
            "acct_a b",
            "acct_",
            "acct_a_b",
            "cus_123",
        ] {
            let body = serde_json::json!({ "accountId": bad }).to_string();
            assert!(
                matches!(
                    MerchantSettings::parse(body.as_bytes()),
                    Err(PutError::Invalid(_))
                ),
                "{bad:?} was taken"
            );
        }
        let ok = serde_json::json!({ "accountId": "acct_1Nv0FGQ9RKHgCVdK" }).to_string();
        assert!(MerchantSettings::parse(ok.as_bytes()).is_ok());
    }
}
