//! One lean struct for every Stripe object the plugin reads (customer, Checkout
//! Session, PaymentIntent, charge, refund, dispute, payment method, account,
//! list, error). Parsed with miniserde: no generic monomorphization per type,
//! which keeps the component inside its 256 KiB budget (serde_json cost ~90 KB
//! here). Unknown fields are skipped, every field is optional, and amounts and
//! ids are read in either of the shapes Stripe-compatible servers send.

use miniserde::de::{Deserialize, Map, Visitor};
use miniserde::{Error, Result, make_place};

#[derive(Debug, Default, miniserde::Deserialize)]
pub struct Obj {
    pub id: Option<String>,
    pub object: Option<String>,
    /// A payment method's type (`card`, `sepa_debit` ...).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub deleted: Option<bool>,
    pub url: Option<String>,
    pub expires_at: Option<Amount>,
    pub status: Option<String>,
    pub payment_status: Option<String>,
    pub payment_intent: Option<IdRef>,
    pub customer: Option<IdRef>,
    pub payment_method: Option<IdRef>,
    /// `off_session` when the payment saved its method for later charges.
    pub setup_future_usage: Option<String>,
    pub charge: Option<IdRef>,
    pub amount: Option<Amount>,
    pub amount_total: Option<Amount>,
    pub amount_received: Option<Amount>,
    pub amount_refunded: Option<Amount>,
    pub currency: Option<String>,
    pub metadata: Option<Metadata>,
    pub invoice_settings: Option<InvoiceSettings>,
    pub last_payment_error: Option<StripeErrorBody>,
    /// Set on error answers: `{"error": {...}}`.
    pub error: Option<StripeErrorBody>,
    pub charges_enabled: Option<bool>,
    pub details_submitted: Option<bool>,
    /// An account's: what Stripe needs from it.
    pub requirements: Option<Requirements>,
    pub data: Option<Vec<Obj>>,
    /// A list's: whether another page follows.
    pub has_more: Option<bool>,
}

impl Obj {
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }

    /// The invoice the plugin named when it created this object.
    pub fn invoice_id(&self) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.invoice.as_deref())
    }

    /// The plain `invoice_id` that plugin 0.1 wrote (and merchants' own
    /// integrations may write too): trusted only for invoices the plugin knows.
    pub fn legacy_invoice_id(&self) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.invoice_id.as_deref())
    }

    /// How the plugin's object came to be (`checkout`, `auto_charge`, `card_page`).
    pub fn channel(&self) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.channel.as_deref())
    }

    /// Whether the customer paid on Checkout's page (rather than by auto-charge).
    pub fn via_checkout(&self) -> bool {
        self.channel() == Some("checkout")
    }

    pub fn payment_intent(&self) -> Option<&str> {
        self.payment_intent.as_ref().map(|r| r.0.as_str())
    }

    pub fn customer(&self) -> Option<&str> {
        self.customer.as_ref().map(|r| r.0.as_str())
    }

    pub fn default_payment_method(&self) -> Option<&str> {
        self.invoice_settings
            .as_ref()?
            .default_payment_method
            .as_ref()
            .map(|r| r.0.as_str())
    }

    pub fn amount_of(field: &Option<Amount>) -> Option<u64> {
        field.as_ref().map(|a| a.0)
    }

    pub fn amount(&self) -> Option<u64> {
        Self::amount_of(&self.amount)
    }

    pub fn amount_total(&self) -> u64 {
        Self::amount_of(&self.amount_total).unwrap_or(0)
    }

    pub fn amount_refunded(&self) -> u64 {
        Self::amount_of(&self.amount_refunded).unwrap_or(0)
    }

    /// What a PaymentIntent actually took, else what it asked for.
    pub fn amount_taken(&self) -> Option<u64> {
        Self::amount_of(&self.amount_received)
            .filter(|a| *a > 0)
            .or(self.amount())
    }

    pub fn expires_at(&self) -> u64 {
        Self::amount_of(&self.expires_at).unwrap_or(0)
    }

    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    pub fn payment_status(&self) -> Option<&str> {
        self.payment_status.as_deref()
    }

    pub fn currency(&self) -> &str {
        self.currency.as_deref().unwrap_or("")
    }

    pub fn charge(&self) -> Option<&str> {
        self.charge.as_ref().map(|r| r.0.as_str())
    }

    pub fn payment_method(&self) -> Option<&str> {
        self.payment_method.as_ref().map(|r| r.0.as_str())
    }

    pub fn list(&self) -> &[Obj] {
        self.data.as_deref().unwrap_or(&[])
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted == Some(true)
    }

    /// The PaymentIntent that carries the money, else the object itself.
    pub fn payment_ref(&self) -> String {
        self.payment_intent().unwrap_or(self.id()).to_string()
    }
}

/// The plugin's own metadata on the objects it creates, under keys of its
/// own: a merchant's other integrations often use a plain `invoice_id`.
#[derive(Debug, Default, miniserde::Deserialize)]
pub struct Metadata {
    #[serde(rename = "billing_stripe_plugin_invoice")]
    pub invoice: Option<String>,
    /// How the payment was made: `checkout` or `auto_charge`.
    #[serde(rename = "billing_stripe_plugin_channel")]
    pub channel: Option<String>,
    /// The attempt number of an off-session charge (its idempotency key's).
    #[serde(rename = "billing_stripe_plugin_attempt")]
    pub attempt: Option<String>,
    /// Which dunning retry an off-session charge was.
    #[serde(rename = "billing_stripe_plugin_retry")]
    pub retry: Option<String>,
    /// The platform's id of a refund it asked for.
    #[serde(rename = "billing_stripe_plugin_refund")]
    pub refund: Option<String>,
    /// What plugin 0.1 wrote, before the keys had their own namespace.
    pub invoice_id: Option<String>,
}

/// What Stripe needs from a connected account.
/// https://docs.stripe.com/api/accounts/object#account_object-requirements
#[derive(Debug, Default, miniserde::Deserialize)]
pub struct Requirements {
    /// Needed now: until they are given, charges (or payouts) are disabled.
    pub past_due: Option<Vec<String>>,
}

#[derive(Debug, Default, miniserde::Deserialize)]
pub struct InvoiceSettings {
    pub default_payment_method: Option<IdRef>,
}

/// Stripe's error object (also a PaymentIntent's `last_payment_error`).
#[derive(Debug, Default, miniserde::Deserialize)]
pub struct StripeErrorBody {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub advice_code: Option<String>,
    pub message: Option<String>,
    pub payment_intent: Option<IdRef>,
    pub charge: Option<IdRef>,
}

/// An amount in minor units: a number, or a string holding one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub u64);

/// A reference to another object: its id, or the object itself when expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRef(pub String);

make_place!(Place);

impl Visitor for Place<Amount> {
    fn nonnegative(&mut self, n: u64) -> Result<()> {
        self.out = Some(Amount(n));
        Ok(())
    }

    /// A negative amount (a credit line, a balance adjustment) is on no
    /// object the plugin collects with: read as absent, never an error, so
    /// that such an event never makes a page of events unreadable.
    fn negative(&mut self, _: i64) -> Result<()> {
        Ok(())
    }

    fn string(&mut self, s: &str) -> Result<()> {
        self.out = Some(Amount(s.parse().map_err(|_| Error)?));
        Ok(())
    }
}

impl Deserialize for Amount {
    fn begin(out: &mut Option<Self>) -> &mut dyn Visitor {
        Place::new(out)
    }
}

impl Visitor for Place<IdRef> {
    fn string(&mut self, s: &str) -> Result<()> {
        self.out = Some(IdRef(s.to_string()));
        Ok(())
    }

    fn map(&mut self) -> Result<Box<dyn Map + '_>> {
        Ok(Box::new(ExpandedId {
            out: &mut self.out,
            id: None,
        }))
    }
}

impl Deserialize for IdRef {
    fn begin(out: &mut Option<Self>) -> &mut dyn Visitor {
        Place::new(out)
    }
}

/// An expanded object: only its `id` is kept.
struct ExpandedId<'a> {
    out: &'a mut Option<IdRef>,
    id: Option<String>,
}

impl Map for ExpandedId<'_> {
    fn key(&mut self, k: &str) -> Result<&mut dyn Visitor> {
        if k == "id" {
            Ok(Deserialize::begin(&mut self.id))
        } else {
            Ok(<dyn Visitor>::ignore())
        }
    }

    fn finish(&mut self) -> Result<()> {
        *self.out = self.id.take().map(IdRef);
        Ok(())
    }
}

/// Parses raw bytes as `T`; non-UTF-8 is refused like malformed JSON.
pub fn parse<T: Deserialize>(bytes: &[u8]) -> Result<T> {
    miniserde::json::from_str(core::str::from_utf8(bytes).map_err(|_| Error)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_needs_and_ignores_the_rest() {
        let pi: Obj = parse(
            br#"{"id":"pi_1","object":"payment_intent","amount":"1200","amount_received":1200,"currency":"gbp",
               "metadata":{"billing_stripe_plugin_invoice":"inv_1","other":"x"},"charges":{"data":[{"id":"ch_1"}]},"new_field":{"a":[1,2.5,null]},
               "last_payment_error":null,"customer":{"id":"cus_9","object":"customer"},"latest_charge":"ch_1"}"#,
        )
        .unwrap();
        assert_eq!(
            (
                Obj::amount_of(&pi.amount),
                Obj::amount_of(&pi.amount_received)
            ),
            (Some(1200), Some(1200))
        );
        assert_eq!(
            (pi.invoice_id(), pi.customer()),
            (Some("inv_1"), Some("cus_9"))
        );
        let empty: Obj = parse(br#"{"id":"cus_1"}"#).unwrap();
        assert!(empty.default_payment_method().is_none() && empty.deleted.is_none());
        assert!(parse::<Obj>(b"Internal Server Error").is_err());
    }

    #[derive(miniserde::Deserialize)]
    struct Samples {
        samples: std::collections::BTreeMap<String, String>,
    }

    /// Objects as localstripe (third-party Stripe software) sends them, for
    /// every resource the plugin reads: tests/conformance/sample_objects.py.
    /// tests/run points STRIPE_PLUGIN_SAMPLES at a set made fresh in that run.
    #[test]
    fn reads_localstripes_objects() {
        let text = match std::env::var("STRIPE_PLUGIN_SAMPLES") {
            Ok(path) => std::fs::read_to_string(path).unwrap(),
            Err(_) => include_str!("../../../tests/vectors/localstripe-objects.json").to_string(),
        };
        let s: Samples = miniserde::json::from_str(&text).unwrap();
        let obj = |name: &str| -> Obj {
            let raw = s
                .samples
                .get(name)
                .unwrap_or_else(|| panic!("no sample {name}"));
            parse(raw.as_bytes()).unwrap_or_else(|_| panic!("{name} does not parse"))
        };
        assert!(obj("customer_created").id().starts_with("cus_"));
        let c = obj("customer_with_default_card");
        assert!(
            c.default_payment_method()
                .is_some_and(|p| p.starts_with("pm_"))
        );
        assert!(obj("payment_method_list").list().len() == 1);
        let pi = obj("payment_intent_succeeded");
        assert_eq!(
            (pi.status(), pi.amount_taken(), pi.invoice_id()),
            (Some("succeeded"), Some(120000), Some("inv_1"))
        );
        assert_eq!(
            obj("payment_intent_updated_amount").amount(),
            Some(120000),
            "a string amount is read"
        );
        assert!(obj("refund").charge().is_some_and(|c| c.starts_with("ch_")));
        let ch = obj("charge_partly_refunded");
        assert_eq!(
            (ch.amount_refunded(), ch.payment_intent().is_some()),
            (20000, true)
        );
        let declined = super::super::error::from_response(
            402,
            None,
            s.samples["error_card_declined"].as_bytes(),
        );
        assert!(declined.is_card_error() && declined.charge.is_some());
        assert_eq!(declined.error.code.as_deref(), Some("card_declined"));
        let missing = super::super::error::from_response(
            404,
            None,
            s.samples["error_customer_missing"].as_bytes(),
        );
        assert_eq!(missing.error.message, "Not Found");
        let text =
            super::super::error::from_response(404, None, s.samples["error_plain_text"].as_bytes());
        assert_eq!(
            (text.error.error_type.as_str(), text.error.message.as_str()),
            ("api_error", "404: Not Found")
        );
        for event in [
            "event_payment_intent_succeeded",
            "event_payment_intent_payment_failed",
        ] {
            let e = crate::events::Event::parse(s.samples[event].as_bytes())
                .unwrap_or_else(|| panic!("{event}"));
            assert!(e.object().id().starts_with("pi_"), "{event}");
        }
        let failed = crate::events::Event::parse(
            s.samples["event_payment_intent_payment_failed"].as_bytes(),
        )
        .unwrap();
        let err = failed.object().last_payment_error.as_ref().unwrap();
        assert_eq!(err.code.as_deref(), Some("card_declined"));
    }
}
