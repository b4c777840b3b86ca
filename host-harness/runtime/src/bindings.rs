//! The contract's bindings, in one place: `bindgen!` of the WIT world, the
//! contract's types re-exported under their own names (whichever interface
//! defines them), and what the host adds to them: names on the platform's
//! side, and `Display` for anything a person reads. Nothing user-facing prints
//! a generated type with `{:?}`.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../../wit",
    // The contract's values serialize as data (snapshots, logs), never as
    // Rust's Debug output.
    additional_derives: [serde::Serialize],
});

impl billing::stripe_plugin::http::Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        use billing::stripe_plugin::http::Method;
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

pub use billing::stripe_plugin::errors::{PluginError, StripeError};
pub use billing::stripe_plugin::outcomes::{
    Onboarding, PayLinkOutcome, PayPage, PluginDescription, SyncOutcome, WebhookOutcome,
};
pub use billing::stripe_plugin::payments::{
    AccountStatus, CardOnFile, CollectionReason, CollectionScheduled, CollectionStop,
    CollectionStopped, CustomerAction, CustomerLink, Dispute, DisputeStatus, InvoiceStatus, Money,
    Overpayment, Payment, PaymentFailure, PaymentLink, PaymentStatus, Refund, Transition,
};
pub use billing::stripe_plugin::platform::{
    Address, Customer, ExternalId, Invoice, InvoiceChange, InvoiceUpdate, LineItem, Merchant,
    OnboardingRequest, PaymentOption, RefundReason, RefundRequest, WebhookRequest,
};

/// Why a request got no answer, in words (the bindings' own `Display` is Debug's).
pub fn http_error_text(e: &billing::stripe_plugin::http::HttpError) -> String {
    use billing::stripe_plugin::http::HttpError as E;
    match e {
        E::Timeout => "timed out".into(),
        E::Connection(m) => format!("connection failed: {m}"),
        E::Denied(m) => format!("denied: {m}"),
        E::Other(m) => format!("failed: {m}"),
    }
}

impl CollectionStop {
    /// The platform's name for why collection stopped.
    pub fn name(self) -> &'static str {
        match self {
            CollectionStop::NothingDue => "NOTHING_DUE",
            CollectionStop::StripeRemoved => "STRIPE_REMOVED",
            CollectionStop::Void => "VOID",
            CollectionStop::PaidOutsideStripe => "PAID_OUTSIDE_STRIPE",
            CollectionStop::Uncollectible => "UNCOLLECTIBLE",
        }
    }
}

impl InvoiceChange {
    /// Reads the platform's name of a change (`VOID`, `PAID_OUTSIDE_STRIPE`,
    /// `UNCOLLECTIBLE`, `OPEN`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "OPEN" => InvoiceChange::Open,
            "VOID" => InvoiceChange::Void,
            "PAID_OUTSIDE_STRIPE" => InvoiceChange::PaidOutsideStripe,
            "UNCOLLECTIBLE" => InvoiceChange::Uncollectible,
            _ => return None,
        })
    }
}

impl PluginError {
    /// Whether calling again later can help.
    pub fn retryable(&self) -> bool {
        match self {
            PluginError::InvalidInput(_) => false,
            PluginError::Stripe(e) => e.retryable,
            PluginError::HostUnavailable(_) | PluginError::NotReady(_) => true,
        }
    }

    pub fn message(&self) -> String {
        match self {
            PluginError::InvalidInput(m)
            | PluginError::HostUnavailable(m)
            | PluginError::NotReady(m) => m.clone(),
            PluginError::Stripe(e) => format!(
                "Stripe answered {} {}: {}",
                e.status, e.error_type, e.message
            ),
        }
    }
}

/// The platform's name for a payment status ("open" is a sent, unpaid invoice).
impl PaymentStatus {
    /// The platform's name of the status (`PAID`, `PARTIALLY_REFUNDED` ...).
    pub fn name(self) -> &'static str {
        match self {
            PaymentStatus::Open => "FINAL",
            PaymentStatus::Processing => "PROCESSING",
            PaymentStatus::ActionRequired => "ACTION_REQUIRED",
            PaymentStatus::Failed => "PAYMENT_FAILED",
            PaymentStatus::PartiallyPaid => "PARTIALLY_PAID",
            PaymentStatus::Paid => "PAID",
            PaymentStatus::PartiallyRefunded => "PARTIALLY_REFUNDED",
            PaymentStatus::Refunded => "REFUNDED",
            PaymentStatus::Disputed => "DISPUTED",
            PaymentStatus::DisputeLost => "DISPUTE_LOST",
        }
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One line for the timeline and the log.
impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = match self {
            Transition::PaymentLinkAttached(l) => {
                format!("{}: payment link attached ({})", l.invoice_id, l.url)
            }
            Transition::PaymentProcessing(p) => {
                format!("{}: payment processing ({})", p.invoice_id, p.stripe_ref)
            }
            Transition::InvoicePaid(p) => format!(
                "{}: PAID {} {} ({})",
                p.invoice_id, p.amount.decimal, p.amount.currency, p.stripe_ref
            ),
            Transition::InvoicePartiallyPaid(p) => format!(
                "{}: partially paid {} {}",
                p.invoice_id, p.amount.decimal, p.amount.currency
            ),
            Transition::PaymentFailed(f) => {
                format!("{}: payment failed: {}", f.invoice_id, f.message)
            }
            Transition::NeedsCustomerAction(a) => {
                format!("{}: needs customer action: {}", a.invoice_id, a.reason)
            }
            Transition::Refunded(r) => format!(
                "{}: refunded {} {}",
                r.invoice_id, r.amount.decimal, r.amount.currency
            ),
            Transition::Disputed(d) => format!(
                "{}: dispute {}",
                d.invoice_id,
                match d.status {
                    DisputeStatus::Opened => "opened",
                    DisputeStatus::Won => "won",
                    DisputeStatus::Lost => "lost",
                }
            ),
            Transition::CustomerLinked(l) => format!(
                "customer {} linked to {}",
                l.customer_id, l.stripe_customer_id
            ),
            Transition::CustomerUnlinked(id) => format!("customer {id} unlinked"),
            Transition::StatusChanged(s) => format!(
                "{}: status {}, paid {} {}, refunded {}",
                s.invoice_id,
                s.status,
                s.amount_paid.decimal,
                s.amount_paid.currency,
                s.amount_refunded.decimal
            ),
            Transition::PaymentFlagged(f) => {
                format!("{}: payment flagged: {}", f.invoice_id, f.message)
            }
            Transition::CardOnFileChanged(c) => format!(
                "card on file of {}: {}",
                c.stripe_customer_id,
                c.payment_method_id.as_deref().unwrap_or("none")
            ),
            Transition::AccountUpdated(a) => format!(
                "account {}: charges enabled {}{}",
                a.account_id,
                a.charges_enabled,
                if a.restricted { ", restricted" } else { "" }
            ),
            Transition::CollectionScheduled(c) => format!(
                "{}: collect again at {} ({})",
                c.invoice_id,
                crate::times::rfc3339(c.due_at_ms),
                match c.reason {
                    CollectionReason::Retry => format!("retry, {} left", c.retries_left),
                    CollectionReason::AccountRestored => "account restored".into(),
                }
            ),
            Transition::AccountDisconnected(id) => format!("account {id} disconnected"),
            Transition::CollectionStopped(c) => {
                format!("{}: collection stopped ({})", c.invoice_id, c.reason.name())
            }
            Transition::CollectionResumed(id) => format!("{id}: collection resumed"),
            Transition::Overpaid(o) => format!(
                "{}: OVERPAID by {} {} ({}); received {} in all",
                o.invoice_id,
                o.excess.decimal,
                o.excess.currency,
                o.stripe_ref,
                o.total_paid.decimal
            ),
        };
        f.write_str(&line)
    }
}
