//! The Stripe payments plugin. Pure logic (money, signature, stripe, events)
//! makes no host calls and is unit-tested natively; `imports` and `handlers`
//! are the thin layer that talks to the host through the WIT contract.

pub mod bindings;
pub mod contract;
pub mod dunning;
pub mod events;
pub mod handlers;
pub mod host;
pub mod imports;
pub mod json_split;
pub mod money;
pub mod notify;
pub mod payment_state;
pub mod record;
pub mod signature;
pub mod stripe;

use bindings::exports::billing::stripe_plugin::handlers::Guest;
use contract::{
    Customer, Invoice, InvoiceUpdate, Merchant, Onboarding, OnboardingRequest, PayLinkOutcome,
    PluginDescription, PluginError, SyncOutcome, Transition, WebhookOutcome, WebhookRequest,
};

/// The component's export.
pub struct Component;

impl Guest for Component {
    fn on_invoice_finalized(
        merchant: Merchant,
        invoice: Invoice,
    ) -> Result<Vec<Transition>, PluginError> {
        handlers::invoice::on_invoice_finalized(&merchant, &invoice)
    }

    fn on_invoice_updated(
        merchant: Merchant,
        update: InvoiceUpdate,
    ) -> Result<Vec<Transition>, PluginError> {
        handlers::update::on_invoice_updated(&merchant, &update)
    }

    fn on_webhook(
        merchant: Merchant,
        request: WebhookRequest,
    ) -> Result<WebhookOutcome, PluginError> {
        handlers::webhook::on_webhook(&merchant, &request)
    }

    fn on_sync(merchant: Merchant, cursor: Option<String>) -> Result<SyncOutcome, PluginError> {
        handlers::sync::on_sync(&merchant, cursor.as_deref())
    }

    fn on_pay_link_opened(
        merchant: Merchant,
        token: String,
    ) -> Result<PayLinkOutcome, PluginError> {
        handlers::paylink::on_pay_link_opened(&merchant, &token)
    }

    fn start_onboarding(
        merchant: Merchant,
        request: OnboardingRequest,
    ) -> Result<Onboarding, PluginError> {
        handlers::onboarding::start_onboarding(&merchant, &request)
    }

    fn on_customer_updated(
        merchant: Merchant,
        customer: Customer,
        previous: Option<Customer>,
    ) -> Result<Vec<Transition>, PluginError> {
        handlers::customer::on_customer_updated(&merchant, &customer, previous.as_ref())
    }

    fn describe() -> PluginDescription {
        PluginDescription {
            stripe_api_version: stripe::request::API_VERSION.into(),
            event_types: events::HANDLED.iter().map(|t| t.to_string()).collect(),
        }
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Component with_types_in bindings);
