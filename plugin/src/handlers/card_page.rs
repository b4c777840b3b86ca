//! The customer's card page: a stable link per Stripe customer, made like
//! the pay links (a MAC under the merchant's pay-link key, held by the
//! host). The host serves the page and checks the link itself; "Replace
//! your card" comes here through on-pay-link-opened with `{cus}/{tag}`, and
//! opens a Checkout Session in `setup` mode. The card saved there becomes
//! the customer's default when Stripe says so (`setup_intent.succeeded`,
//! in `webhook`), and the host then collects the customer's failed invoices.

use crate::bindings::billing::stripe_plugin::mac::KeyPurpose;
use crate::contract::{Merchant, PayLinkOutcome, PayPage, PluginError};
use crate::imports::{self, HostKeys};
use crate::signature::{Keys, Verified};
use crate::stripe::request;

/// What the link's MAC covers: the merchant's account and the customer.
fn message(m: &Merchant, stripe_customer: &str) -> String {
    format!("cardpage.{}/{stripe_customer}", m.account_id)
}

/// `{pay-link-base}/billing/{cus}/{tag}`: the customer's card page.
pub fn url(m: &Merchant, stripe_customer: &str) -> Result<String, PluginError> {
    let tag = imports::pay_link_mac(message(m, stripe_customer).as_bytes())?;
    Ok(format!(
        "{}/billing/{stripe_customer}/{}",
        m.pay_link_base.trim_end_matches('/'),
        hex::encode(tag)
    ))
}

/// "Replace your card", asked through the page's link (`{cus}/{tag}`): a
/// setup-mode Checkout for that customer, or "not found" for a link that is
/// not one of this merchant's.
pub fn replace_card(m: &Merchant, link: &str) -> Result<PayLinkOutcome, PluginError> {
    let page = |page| {
        Ok(PayLinkOutcome {
            page,
            transitions: Vec::new(),
        })
    };
    let Some((customer, Ok(tag))) = link
        .split_once('/')
        .map(|(c, t)| (c, <[u8; 32]>::try_from(hex::decode(t).unwrap_or_default())))
    else {
        return page(PayPage::NotFound);
    };
    match HostKeys(KeyPurpose::PayLink).verify(message(m, customer).as_bytes(), &[tag]) {
        Verified::Valid => {}
        Verified::Invalid => return page(PayPage::NotFound),
        Verified::Unavailable => {
            return Err(PluginError::HostUnavailable(
                "the host's keys are unavailable".into(),
            ));
        }
    }
    if super::health::restricted(m)? {
        return page(PayPage::Unavailable(String::new()));
    }
    let back = url(m, customer)?;
    let session = imports::stripe(
        m,
        &request::create_card_setup_session(customer, &back, imports::now_ms()),
    )?;
    match session.url {
        Some(u) => page(PayPage::Redirect(u)),
        None => page(PayPage::NotFound),
    }
}
