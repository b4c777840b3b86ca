//! One module per export, and the shared steps they are made of.

pub mod card_page;
pub mod collect;
pub mod customer;
pub mod due;
pub mod health;
pub mod invoice;
pub mod onboarding;
pub mod paylink;
pub mod refund;
pub mod settle;
pub mod sync;
pub mod update;
pub mod webhook;

use crate::contract::{Customer, PluginError};

/// kv key of the Stripe customer linked to a platform customer.
pub(crate) fn link_key(customer_id: &str) -> String {
    format!("stripe-customer:{customer_id}")
}

/// The `cus_...` the merchant supplied as the external id `Stripe`, if any.
pub(crate) fn stripe_external_id(c: &Customer) -> Option<&str> {
    c.external_ids
        .iter()
        .find(|e| e.key.eq_ignore_ascii_case("stripe"))
        .map(|e| e.value.trim())
        .filter(|v| !v.is_empty())
}

pub(crate) fn invalid(e: impl core::fmt::Display) -> PluginError {
    PluginError::InvalidInput(e.to_string())
}
