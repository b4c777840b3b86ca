//! Stripe events read straight from the raw bytes into lean structs (the
//! envelope and its object in one pass, no JSON tree, never re-serialized).

use crate::stripe::objects::{Obj, parse};

#[derive(Debug, miniserde::Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub account: Option<String>,
    pub livemode: Option<bool>,
    /// When Stripe made the event (Unix seconds).
    pub created: Option<u64>,
    pub data: Data,
}

/// A page of `/v1/events`, newest first.
#[derive(Debug, miniserde::Deserialize)]
pub struct EventPage {
    pub data: Vec<Event>,
    pub has_more: Option<bool>,
}

#[derive(Debug, miniserde::Deserialize)]
pub struct Data {
    pub object: Obj,
    /// What an update changed (e.g. the customer a card was detached from).
    pub previous_attributes: Option<Obj>,
}

impl Event {
    pub fn parse(body: &[u8]) -> Option<Self> {
        parse(body).ok()
    }

    pub fn object(&self) -> &Obj {
        &self.data.object
    }

    pub fn livemode(&self) -> bool {
        self.livemode.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_envelope_and_its_object() {
        let body = br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded","account":"acct_1",
            "livemode":false,"data":{"object":{"id":"pi_1","amount_received":500,"currency":"jpy",
            "metadata":{"billing_stripe_plugin_invoice":"inv_9"}}},"request":{"id":null}}"#;
        let e = Event::parse(body).unwrap();
        assert_eq!(
            (e.id.as_str(), e.kind.as_str(), e.account.as_deref()),
            ("evt_1", "payment_intent.succeeded", Some("acct_1"))
        );
        let pi = e.object();
        assert_eq!(
            (Obj::amount_of(&pi.amount_received), pi.invoice_id()),
            (Some(500), Some("inv_9"))
        );
        assert!(e.data.previous_attributes.is_none());
        assert!(Event::parse(b"{\"id\":\"evt_1\"}").is_none());
    }
}
