//! The platform's API tokens: `spt_` and 64 hex digits (256 bits from the
//! OS). Made by `host-harness token create`, which prints the token once;
//! the store keeps only its SHA-256, and so may the config file
//! (`platform.token_sha256`). A presented token is hashed and compared with
//! every valid hash in constant time, so its timing says nothing of how
//! much of it matched. Several are valid at once (rotation: create the new
//! one, move the callers, revoke the old one); a token is either the whole
//! platform's or one merchant's.

use crate::access::Grant;
use crate::db::{Db, TokenRow};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token's text starts with, so that a scanner can find a leaked one.
const PREFIX: &str = "spt_";

/// The platform's tokens: those in the store, and the hashes configured.
pub struct Tokens<'a> {
    db: &'a Db,
    configured: &'a [String],
}

/// A token just made: the only time its text exists outside its holder.
pub struct NewToken {
    pub id: String,
    pub token: String,
}

impl<'a> Tokens<'a> {
    /// `configured` are SHA-256 hashes (hex) of platform-wide tokens.
    pub fn new(db: &'a Db, configured: &'a [String]) -> Self {
        Self { db, configured }
    }

    /// Makes a token for the whole platform, or for one merchant.
    pub fn create(&self, merchant: Option<&str>, label: &str, now_ms: i64) -> Result<NewToken> {
        let token = format!("{PREFIX}{}", hex::encode(random_bytes::<32>()?));
        let id = format!("tok_{}", hex::encode(random_bytes::<8>()?));
        self.db.put_token(&TokenRow {
            id: id.clone(),
            sha256: sha256_hex(&token),
            merchant: merchant.map(str::to_string),
            label: label.to_string(),
            created_ms: now_ms,
            revoked_ms: None,
        })?;
        Ok(NewToken { id, token })
    }

    pub fn list(&self) -> Result<Vec<TokenRow>> {
        Ok(self.db.tokens()?)
    }

    /// Whether any token at all can be valid (else every platform request
    /// is refused, which `serve` warns of at start).
    pub fn any_valid(&self) -> Result<bool> {
        Ok(!self.configured.is_empty() || self.db.tokens()?.iter().any(|t| t.revoked_ms.is_none()))
    }

    pub fn revoke(&self, id: &str, now_ms: i64) -> Result<bool> {
        Ok(self.db.revoke_token(id, now_ms)?)
    }

    /// What `presented` may do, if it is a valid token. Every valid hash is
    /// compared, whatever matched before it.
    pub fn verify(&self, presented: &str) -> Result<Option<Grant>> {
        let hash = Sha256::digest(presented.as_bytes());
        let stored = self.db.tokens()?;
        let valid = stored
            .iter()
            .filter(|t| t.revoked_ms.is_none())
            .map(|t| (t.sha256.as_str(), t.merchant.clone()))
            .chain(self.configured.iter().map(|h| (h.as_str(), None)));
        let mut grant = None;
        for (hex_hash, merchant) in valid {
            let Ok(expected) = hex::decode(hex_hash) else {
                continue;
            };
            if bool::from(expected.as_slice().ct_eq(hash.as_slice())) {
                grant = Some(merchant.map_or(Grant::Platform, Grant::Merchant));
            }
        }
        Ok(grant)
    }
}

/// The SHA-256 of a token, in hex: what the store and the config file keep.
pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).context("reading the operating system's random generator")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_until_it_is_revoked_and_only_its_hash_is_kept() {
        let db = Db::in_memory().unwrap();
        let configured = vec![sha256_hex("spt_configured")];
        let tokens = Tokens::new(&db, &configured);
        let made = tokens.create(None, "ci", 1).unwrap();
        let alpha = tokens.create(Some("alpha"), "alpha's", 2).unwrap();
        assert!(made.token.starts_with("spt_") && made.token.len() == 68);
        assert_eq!(tokens.verify(&made.token).unwrap(), Some(Grant::Platform));
        assert_eq!(
            tokens.verify(&alpha.token).unwrap(),
            Some(Grant::Merchant("alpha".into()))
        );
        assert_eq!(
            tokens.verify("spt_configured").unwrap(),
            Some(Grant::Platform)
        );
        assert_eq!(tokens.verify("spt_wrong").unwrap(), None);
        let kept = format!("{:?}", db.tokens().unwrap());
        assert!(
            !kept.contains(&made.token[4..]),
            "the token itself is stored"
        );
        assert!(tokens.revoke(&made.id, 3).unwrap());
        assert!(!tokens.revoke(&made.id, 4).unwrap());
        assert_eq!(tokens.verify(&made.token).unwrap(), None);
        assert_eq!(tokens.list().unwrap().len(), 2);
    }
}
