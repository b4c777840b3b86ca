//! Customer linking: create on first use, push changes, link a merchant-supplied
//! `cus_...`, relink, unlink. Unlinking deletes nothing in Stripe.

use super::{invalid, link_key, stripe_external_id};
use crate::contract::{Customer, CustomerLink, Merchant, PluginError, Transition};
use crate::imports;
use crate::stripe::request;

/// The Stripe customer for `customer`, creating or linking it on first use.
pub fn ensure_linked(
    m: &Merchant,
    customer: &Customer,
    out: &mut Vec<Transition>,
) -> Result<String, PluginError> {
    if let Some(id) = imports::kv_get_string(&link_key(&customer.id))? {
        return Ok(id);
    }
    let stripe_id = match stripe_external_id(customer) {
        Some(supplied) => verified(m, supplied)?,
        None => imports::stripe(m, &request::create_customer(customer))?
            .id()
            .to_string(),
    };
    link(customer, &stripe_id, out)?;
    Ok(stripe_id)
}

pub fn on_customer_updated(
    m: &Merchant,
    customer: &Customer,
    previous: Option<&Customer>,
) -> Result<Vec<Transition>, PluginError> {
    let mut out = Vec::new();
    let linked = imports::kv_get_string(&link_key(&customer.id))?;
    let supplied = stripe_external_id(customer);
    let supplied_before = previous.and_then(stripe_external_id);
    match (supplied, linked) {
        (Some(new), linked) if linked.as_deref() != Some(new) => {
            let id = verified(m, new)?;
            link(customer, &id, &mut out)?;
        }
        (None, Some(_)) if supplied_before.is_some() => {
            imports::kv_delete(&link_key(&customer.id))?;
            out.push(Transition::CustomerUnlinked(customer.id.clone()));
        }
        (_, Some(id)) => push_details(m, &id, customer, previous)?,
        // Not linked yet: the customer is created in Stripe with its first payment link.
        (_, None) => {}
    }
    Ok(out)
}

/// Sends the customer's changed details to Stripe under the next number of
/// this customer's pushes, counted only once Stripe has applied one.
fn push_details(
    m: &Merchant,
    stripe_id: &str,
    customer: &Customer,
    previous: Option<&Customer>,
) -> Result<(), PluginError> {
    let key = format!("customer-pushes:{}", customer.id);
    let done: u64 = imports::kv_get_string(&key)?
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if let Some(req) = request::update_customer(stripe_id, customer, previous, done + 1) {
        imports::stripe(m, &req)?;
        imports::kv_set(&key, &(done + 1).to_string(), imports::Keep::Always)?;
    }
    Ok(())
}

/// Checks that `cus_...` exists, undeleted, in the merchant's account.
fn verified(m: &Merchant, supplied: &str) -> Result<String, PluginError> {
    if !supplied.starts_with("cus_") {
        return Err(invalid(format!(
            "external id Stripe \"{supplied}\" is not a Stripe customer id (cus_...)"
        )));
    }
    match imports::stripe(m, &request::retrieve_customer(supplied)) {
        Ok(c) if !c.is_deleted() && !c.id().is_empty() => Ok(c.id().to_string()),
        Ok(_) => Err(invalid(format!(
            "Stripe customer {supplied} is deleted; nothing was linked"
        ))),
        Err(PluginError::Stripe(e)) if e.status == 404 => Err(invalid(format!(
            "Stripe customer {supplied} does not exist in account {}; nothing was linked",
            if m.account_id.is_empty() {
                "(platform)"
            } else {
                &m.account_id
            }
        ))),
        Err(e) => Err(e),
    }
}

fn link(
    customer: &Customer,
    stripe_id: &str,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    imports::kv_set(&link_key(&customer.id), stripe_id, imports::Keep::Always)?;
    out.push(Transition::CustomerLinked(CustomerLink {
        customer_id: customer.id.clone(),
        stripe_customer_id: stripe_id.to_string(),
    }));
    Ok(())
}
