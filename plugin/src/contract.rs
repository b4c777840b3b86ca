//! The contract's types by name, for the handlers (from `bindings`).

pub use crate::bindings::billing::stripe_plugin::{
    errors::*,
    outcomes::{
        Onboarding, PayLinkOutcome, PayPage, PluginDescription, SyncOutcome, WebhookOutcome,
    },
    payments::*,
    platform::*,
};
