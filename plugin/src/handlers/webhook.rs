//! on-webhook: size bound, signature over the raw bytes, account and mode
//! routing, then the event's transitions. Every refusal is an outcome with a
//! status, not an error, so the host answers Stripe precisely.

use crate::bindings::billing::stripe_plugin::types::{Merchant, PluginError, WebhookOutcome, WebhookRequest};
use crate::{events, imports, signature};

/// Bodies above this are refused before any work (Stripe's events are a few KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

fn outcome(status: u16, reason: &str, event: Option<&events::Event>) -> WebhookOutcome {
    WebhookOutcome {
        status,
        reason: reason.to_string(),
        event_id: event.map(|e| e.id.clone()),
        event_type: event.map(|e| e.kind.clone()),
        transitions: Vec::new(),
    }
}

pub fn on_webhook(m: &Merchant, req: &WebhookRequest) -> Result<WebhookOutcome, PluginError> {
    if req.body.len() > MAX_BODY_BYTES {
        return Ok(outcome(413, "payload too large", None));
    }
    let header = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("stripe-signature"))
        .map(|(_, v)| v.as_str());
    if let Err(e) = signature::verify(header, &req.body, &m.webhook_secrets, imports::now_secs(), m.webhook_tolerance_secs) {
        return Ok(outcome(400, e.reason(), None));
    }
    let event = match events::Event::parse(&req.body) {
        Ok(e) => e,
        Err(_) => return Ok(outcome(400, "body is not a Stripe event", None)),
    };
    let expected_account = (!m.account_id.is_empty()).then_some(m.account_id.as_str());
    if event.account.as_deref() != expected_account {
        return Ok(outcome(200, "event for another account; ignored", Some(&event)));
    }
    if event.livemode != m.livemode {
        return Ok(outcome(200, "event for the other mode (live/test); ignored", Some(&event)));
    }
    let transitions = event.transitions()?;
    let reason = if transitions.is_empty() { "no change" } else { "processed" };
    Ok(WebhookOutcome { transitions, ..outcome(200, reason, Some(&event)) })
}
