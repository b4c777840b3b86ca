//! start-onboarding: a connected account for a merchant without one, and an
//! Account Link to finish Stripe's onboarding. `account.updated` later says
//! when charges are enabled.

use super::invalid;
use crate::contract::{Merchant, Onboarding, OnboardingRequest, PluginError};
use crate::imports;
use crate::stripe::request;

pub fn start_onboarding(m: &Merchant, r: &OnboardingRequest) -> Result<Onboarding, PluginError> {
    if r.merchant_ref.is_empty() || r.country.len() != 2 || !r.email.contains('@') {
        return Err(invalid(
            "onboarding needs a merchant ref, a two-letter country and an email",
        ));
    }
    // Accounts are created on the platform itself: no Stripe-Account header.
    let platform = Merchant {
        account_id: String::new(),
        ..m.clone()
    };
    let account = if m.account_id.is_empty() {
        imports::stripe(&platform, &request::create_account(r))?
            .id()
            .to_string()
    } else {
        // Already connected: only a fresh link to finish onboarding is needed.
        m.account_id.clone()
    };
    let (url, expires_at) = link_with(&platform, &account, r)?;
    Ok(Onboarding {
        account_id: account,
        url,
        expires_at,
    })
}

/// An Account Link for `account` to finish (or bring up to date) what
/// Stripe asks, returning to `{back}/done` (`{back}/refresh` when it has
/// expired): its URL and when it expires.
pub fn account_link(m: &Merchant, account: &str, back: &str) -> Result<(String, u64), PluginError> {
    let r = OnboardingRequest {
        merchant_ref: String::new(),
        email: String::new(),
        country: String::new(),
        refresh_url: format!("{back}/refresh"),
        return_url: format!("{back}/done"),
    };
    let platform = Merchant {
        account_id: String::new(),
        ..m.clone()
    };
    link_with(&platform, account, &r)
}

fn link_with(
    platform: &Merchant,
    account: &str,
    r: &OnboardingRequest,
) -> Result<(String, u64), PluginError> {
    let minute = imports::now_secs() / 60;
    let link = imports::stripe(platform, &request::create_account_link(account, r, minute))?;
    let expires_at = link.expires_at();
    let url = link.url.ok_or_else(|| {
        PluginError::HostUnavailable("Account Link came back without a url".into())
    })?;
    Ok((url, expires_at))
}
