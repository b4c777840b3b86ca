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

/// What an event is news of, parsed once from its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Session(SessionNews),
    PaymentIntent(PaymentNews),
    Refund(RefundNews),
    Dispute(DisputeNews),
    CardOnFile(CardNews),
    Account(AccountNews),
    /// A type the plugin does not handle (acknowledged, counted, ignored).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionNews {
    Completed,
    AsyncPaymentSucceeded,
    AsyncPaymentFailed,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentNews {
    Succeeded,
    Failed,
    Processing,
    RequiresAction,
    Canceled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundNews {
    /// `charge.refunded`: the object is the charge.
    ChargeRefunded,
    /// `charge.refund.updated`: the object is the refund.
    RefundUpdated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeNews {
    Created,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardNews {
    Saved,
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountNews {
    Updated,
    Deauthorized,
}

impl EventKind {
    pub fn parse(kind: &str) -> Self {
        use EventKind::*;
        match kind {
            "checkout.session.completed" => Session(SessionNews::Completed),
            "checkout.session.async_payment_succeeded" => {
                Session(SessionNews::AsyncPaymentSucceeded)
            }
            "checkout.session.async_payment_failed" => Session(SessionNews::AsyncPaymentFailed),
            "checkout.session.expired" => Session(SessionNews::Expired),
            "charge.refunded" => Refund(RefundNews::ChargeRefunded),
            "charge.refund.updated" => Refund(RefundNews::RefundUpdated),
            "charge.dispute.created" => Dispute(DisputeNews::Created),
            "charge.dispute.closed" => Dispute(DisputeNews::Closed),
            "setup_intent.succeeded" => CardOnFile(CardNews::Saved),
            "payment_method.detached" => CardOnFile(CardNews::Removed),
            "account.updated" => Account(AccountNews::Updated),
            "account.application.deauthorized" => Account(AccountNews::Deauthorized),
            other => PaymentNews::parse(other).map_or(Other, PaymentIntent),
        }
    }
}

impl PaymentNews {
    pub fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "payment_intent.succeeded" => PaymentNews::Succeeded,
            "payment_intent.payment_failed" => PaymentNews::Failed,
            "payment_intent.processing" => PaymentNews::Processing,
            "payment_intent.requires_action" => PaymentNews::RequiresAction,
            "payment_intent.canceled" => PaymentNews::Canceled,
            _ => return None,
        })
    }

    /// The event a PaymentIntent in `status` would be news of.
    pub fn of_status(status: &str) -> Option<Self> {
        Some(match status {
            "processing" => PaymentNews::Processing,
            "succeeded" => PaymentNews::Succeeded,
            "canceled" => PaymentNews::Canceled,
            "requires_action" => PaymentNews::RequiresAction,
            "requires_payment_method" => PaymentNews::Failed,
            _ => return None,
        })
    }

    /// Its event type, as Stripe names it.
    pub fn name(self) -> &'static str {
        match self {
            PaymentNews::Succeeded => "payment_intent.succeeded",
            PaymentNews::Failed => "payment_intent.payment_failed",
            PaymentNews::Processing => "payment_intent.processing",
            PaymentNews::RequiresAction => "payment_intent.requires_action",
            PaymentNews::Canceled => "payment_intent.canceled",
        }
    }

    /// Whether this news ends a payment (so may contradict a debit in flight).
    pub fn ends_it(self) -> bool {
        matches!(self, PaymentNews::Failed | PaymentNews::Canceled)
    }
}

impl Event {
    /// What the event is news of.
    pub fn kind(&self) -> EventKind {
        EventKind::parse(&self.kind)
    }

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
    fn event_types_parse_once_into_their_family() {
        assert_eq!(
            EventKind::parse("checkout.session.expired"),
            EventKind::Session(SessionNews::Expired)
        );
        assert_eq!(
            EventKind::parse("payment_intent.payment_failed"),
            EventKind::PaymentIntent(PaymentNews::Failed)
        );
        assert_eq!(EventKind::parse("customer.created"), EventKind::Other);
        for news in [
            PaymentNews::Succeeded,
            PaymentNews::Failed,
            PaymentNews::Processing,
            PaymentNews::RequiresAction,
            PaymentNews::Canceled,
        ] {
            assert_eq!(PaymentNews::parse(news.name()), Some(news));
        }
        assert_eq!(
            PaymentNews::of_status("requires_payment_method"),
            Some(PaymentNews::Failed)
        );
    }

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
