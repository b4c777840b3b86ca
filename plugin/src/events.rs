//! Stripe events read straight from the raw bytes into lean structs: the
//! envelope first, then only the object type the event needs. No JSON trees,
//! no re-serializing.

use crate::bindings::billing::stripe_plugin::types::{Money, Payment, PluginError, Transition};
use crate::money;
use crate::stripe::objects::CheckoutSession;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Deserialize)]
pub struct Event<'a> {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub account: Option<String>,
    #[serde(default)]
    pub livemode: bool,
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Debug, Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    object: &'a RawValue,
}

impl<'a> Event<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    fn object<T: Deserialize<'a>>(&self) -> Result<T, PluginError> {
        serde_json::from_str(self.data.object.get())
            .map_err(|e| PluginError::InvalidInput(format!("{} {}: unexpected object: {e}", self.kind, self.id)))
    }

    /// What this event means for the host's invoices. Events that carry no
    /// invoice of ours, and types not handled, mean nothing.
    pub fn transitions(&self) -> Result<Vec<Transition>, PluginError> {
        match self.kind.as_str() {
            "checkout.session.completed" => {
                let s: CheckoutSession = self.object()?;
                let Some(invoice_id) = s.metadata.invoice_id else { return Ok(Vec::new()) };
                if s.payment_status.as_deref() != Some("paid") {
                    return Ok(Vec::new());
                }
                let currency = s.currency.unwrap_or_default().to_ascii_uppercase();
                let minor = s.amount_total.unwrap_or(0);
                let decimal = money::to_decimal(&currency, minor).map_err(|e| PluginError::InvalidInput(e.to_string()))?;
                Ok(vec![Transition::InvoicePaid(Payment {
                    invoice_id,
                    stripe_ref: s.payment_intent.unwrap_or(s.id),
                    amount: Money { minor, decimal, currency },
                })])
            }
            _ => Ok(Vec::new()),
        }
    }
}
