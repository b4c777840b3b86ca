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

/// A page of `/v1/events`, newest first, each event read on its own: one
/// the plugin cannot read never makes the others unreadable.
#[derive(Debug)]
pub struct EventPage {
    pub data: Vec<Listed>,
    pub has_more: Option<bool>,
}

/// One event of a page.
#[derive(Debug)]
pub enum Listed {
    Event(Box<Event>),
    /// Not readable as an event the plugin knows; what of it could be read.
    Unreadable(Envelope),
}

impl Listed {
    pub fn id(&self) -> Option<&str> {
        match self {
            Listed::Event(e) => Some(&e.id),
            Listed::Unreadable(e) => e.id.as_deref(),
        }
    }

    pub fn created(&self) -> Option<u64> {
        match self {
            Listed::Event(e) => e.created,
            Listed::Unreadable(e) => e.created,
        }
    }
}

/// An event's envelope alone, for an event whose object cannot be read.
#[derive(Debug, miniserde::Deserialize)]
pub struct Envelope {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub created: Option<u64>,
}

#[derive(miniserde::Deserialize)]
struct PageFlags {
    has_more: Option<bool>,
}

impl EventPage {
    pub fn parse(body: &[u8]) -> Option<Self> {
        let flags: PageFlags = parse(body).ok()?;
        let data = crate::json_split::array_under(body, "data")?
            .into_iter()
            .map(|raw| match Event::parse(raw) {
                Some(e) => Listed::Event(Box::new(e)),
                None => Listed::Unreadable(parse(raw).unwrap_or(Envelope {
                    id: None,
                    kind: None,
                    created: None,
                })),
            })
            .collect();
        Some(EventPage {
            data,
            has_more: flags.has_more,
        })
    }
}

/// Every event type the plugin acts on: what a sync lists (`types[]`, at
/// most 20) and what a webhook endpoint is registered for.
pub const HANDLED: [&str; 19] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.canceled",
    "charge.refunded",
    "charge.refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.closed",
    "setup_intent.succeeded",
    "payment_method.detached",
    "payment_method.automatically_updated",
    "account.updated",
    "account.application.deauthorized",
];

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
    /// The card network reissued the card (the card updater): the same
    /// PaymentMethod, with a new number or expiry.
    Renewed,
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
            "charge.refund.updated" | "refund.failed" => Refund(RefundNews::RefundUpdated),
            "charge.dispute.created" => Dispute(DisputeNews::Created),
            "charge.dispute.closed" => Dispute(DisputeNews::Closed),
            "setup_intent.succeeded" => CardOnFile(CardNews::Saved),
            "payment_method.detached" => CardOnFile(CardNews::Removed),
            "payment_method.automatically_updated" => CardOnFile(CardNews::Renewed),
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
    fn every_handled_type_has_its_family_and_nothing_else_does() {
        for kind in HANDLED {
            assert_ne!(EventKind::parse(kind), EventKind::Other, "{kind}");
        }
        assert!(HANDLED.len() <= 20, "Stripe lists at most 20 types[]");
    }

    #[test]
    fn one_unreadable_event_leaves_the_rest_of_its_page_readable() {
        let page = br#"{"object":"list","has_more":false,"data":[
            {"id":"evt_a","type":"invoiceitem.created","created":5,"data":{"object":{"amount":-500,"status":{"x":1}}}},
            {"id":"evt_b","type":"payment_intent.succeeded","created":6,"data":{"object":{"id":"pi_1","amount":-5}}}]}"#;
        let p = EventPage::parse(page).unwrap();
        assert!(matches!(&p.data[0], Listed::Unreadable(e) if e.id.as_deref() == Some("evt_a")));
        assert!(matches!(&p.data[1], Listed::Event(e) if e.id == "evt_b"));
        assert_eq!(p.data[0].created(), Some(5));
    }

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
