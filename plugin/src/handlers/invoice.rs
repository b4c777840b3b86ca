//! on-invoice-finalized: link the customer and attach a Checkout payment link.

use super::{customer, invalid};
use crate::bindings::billing::stripe_plugin::types::{
    Invoice, Merchant, PaymentLink, PaymentOption, PluginError, Transition,
};
use crate::stripe::{objects, request};
use crate::{imports, money};

pub fn on_invoice_finalized(m: &Merchant, inv: &Invoice) -> Result<Vec<Transition>, PluginError> {
    if !inv.payment_options.iter().any(|o| matches!(o, PaymentOption::Stripe)) {
        return Ok(Vec::new());
    }
    // A bad amount is refused before anything is sent to Stripe.
    let minor = money::to_minor(&inv.currency, &inv.amount_due).map_err(invalid)?;
    if minor == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let stripe_customer = customer::ensure_linked(m, &inv.customer, &mut out)?;
    if m.show_payment_link {
        let success_url = format!("{}/pay/success?session_id={{CHECKOUT_SESSION_ID}}", m.pay_link_base.trim_end_matches('/'));
        let req = request::create_checkout_session(inv, &stripe_customer, minor, &success_url, 1);
        let session: objects::CheckoutSession = imports::stripe(m, &req)?;
        let url = session
            .url
            .ok_or_else(|| PluginError::HostUnavailable(format!("Checkout Session {} came back without a url", session.id)))?;
        out.push(Transition::PaymentLinkAttached(PaymentLink {
            invoice_id: inv.id.clone(),
            url,
            checkout_session_id: session.id,
            expires_at: session.expires_at.unwrap_or(0),
        }));
    }
    Ok(out)
}
