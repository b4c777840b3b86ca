//! Merchants are data: each one's settings live in the `merchants` table,
//! set by `PUT /merchants/{id}`. The default merchant is seeded from the
//! config file at start, so single-merchant use keeps working.

use crate::db::Db;
use anyhow::Result;
use rusqlite::{OptionalExtension, params};
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
}

fn on() -> bool {
    true
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

impl MerchantSettings {
    /// Reads settings from a request body, with a message fit for the caller.
    pub fn parse(body: &[u8]) -> Result<Self, PutError> {
        let settings: Self = serde_json::from_slice(body)
            .map_err(|e| PutError::Invalid(format!("invalid merchant settings: {e}")))?;
        if let Some(a) = &settings.account_id
            && !(a.starts_with("acct_") && a.len() <= 255)
        {
            return Err(PutError::Invalid(
                "accountId must be a connected account id, acct_...".into(),
            ));
        }
        Ok(settings)
    }

    /// The connected account, if there is one.
    pub fn account(&self) -> Option<&str> {
        self.account_id.as_deref().filter(|a| !a.is_empty())
    }
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
        let text: Option<String> = self
            .db
            .conn()
            .query_row("SELECT settings FROM merchants WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    }

    /// The merchant whose connected account is `account`.
    pub fn by_account(&self, account: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .conn()
            .query_row(
                "SELECT id FROM merchants WHERE account_id = ?1",
                [account],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Every merchant's id, in order.
    pub fn ids(&self) -> Result<Vec<String>> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare("SELECT id FROM merchants ORDER BY id")?;
        let ids = stmt.query_map([], |r| r.get(0))?;
        Ok(ids.collect::<rusqlite::Result<_>>()?)
    }

    /// Creates or replaces a merchant's settings.
    pub fn put(&self, id: &str, settings: &MerchantSettings) -> Result<(), PutError> {
        if !valid_id(id) {
            return Err(PutError::Invalid(
                "a merchant id is 1 to 64 letters, digits, - or _".into(),
            ));
        }
        let text = serde_json::to_string(settings).map_err(|e| PutError::Storage(e.into()))?;
        let result = self.db.conn().execute(
            "INSERT INTO merchants (id, account_id, settings) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id,
             settings = excluded.settings",
            params![id, settings.account(), text],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Err(PutError::AccountTaken(format!(
                    "account {} belongs to another merchant",
                    settings.account().unwrap_or_default()
                )))
            }
            Err(e) => Err(PutError::Storage(e.into())),
        }
    }
}
