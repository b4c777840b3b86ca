//! Stripe's webhooks: routed to the merchant by the event's account, handed
//! to the plugin, applied durably before the answer.

use super::*;

impl App {
    /// 2xx only once the transitions are stored; an invoice the host does not
    /// know yet is a 503, so that Stripe delivers the event again later.
    ///
    /// One endpoint serves every connected account: an event goes to the
    /// merchant of its `account`, or to the default merchant when it has
    /// none. An account of no merchant's is still verified by the plugin
    /// (under the platform's secrets, as the default merchant's event for a
    /// foreign account), then answered 2xx and ignored.
    pub(crate) fn webhook(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let mut seen = SeenEvent::default();
        let reply = self.deliver(headers, body, &mut seen)?;
        let outcome = match reply.status {
            200..=299 if seen.unrouted => WebhookOutcome::Unrouted,
            200..=299 if seen.transitions > 0 => WebhookOutcome::Applied,
            200..=299 => WebhookOutcome::Ignored,
            400..=499 => WebhookOutcome::Refused,
            _ => WebhookOutcome::Failed,
        };
        let span = tracing::Span::current();
        span.record("outcome", outcome.name());
        if let Some(t) = &seen.event_type {
            span.record("event_type", t.as_str());
        }
        if let Some(id) = &seen.event_id {
            span.record("event", id.as_str());
        }
        self.metrics.webhook(seen.event_type.as_deref(), outcome);
        Ok(reply)
    }

    pub(crate) fn deliver(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        seen: &mut SeenEvent,
    ) -> anyhow::Result<Reply> {
        let account = event_account(body);
        let routed = match account.as_deref() {
            Some(a) => self.merchants().by_account(a)?,
            None => None,
        };
        let unrouted = account.is_some() && routed.is_none();
        let scope = match routed {
            Some((id, settings)) => self.scope_of(&id, settings),
            None => self.default_scope()?,
        };
        tracing::Span::current().record("merchant", scope.id.as_str());
        seen.unrouted = unrouted;
        let req = WebhookRequest {
            headers: webhook_headers(headers),
            body: body.to_vec(),
        };
        let outcome = match self.runtime.on_webhook(&scope.id, &scope.merchant, &req) {
            Err(trap) => {
                tracing::error!(error = %format!("{trap:#}"), "on-webhook failed");
                return Ok(Reply::error(500, "plugin failed", true));
            }
            Ok(Err(e)) => return Ok(Reply::plugin_error(&e)),
            Ok(Ok(outcome)) => outcome,
        };
        seen.event_id = outcome.event_id.clone();
        seen.event_type = outcome.event_type.clone();
        if unrouted && (200..300).contains(&outcome.status) {
            let reason = format!(
                "account {} belongs to no merchant; ignored",
                account.unwrap_or_default()
            );
            return Ok(Reply::json(
                outcome.status,
                &json!({"reason": reason, "event": outcome.event_id, "type": outcome.event_type,
                        "transitions": 0}),
            ));
        }
        tracing::debug!(reason = %outcome.reason, "plugin answered");
        if (200..300).contains(&outcome.status) {
            let source = format!("webhook {}", outcome.event_type.as_deref().unwrap_or("?"));
            match self.apply(&scope, &source, &outcome.transitions) {
                Ok(()) => seen.transitions = outcome.transitions.len(),
                Err(ApplyError::UnknownInvoice(id)) => {
                    return Ok(Reply::error(
                        503,
                        &format!("invoice {id} is not known here yet; retry later"),
                        true,
                    ));
                }
                Err(ApplyError::Storage(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "storing webhook transitions");
                    return Ok(Reply::error(503, "storage unavailable", true));
                }
            }
        }
        Ok(Reply::json(
            outcome.status,
            &json!({"reason": outcome.reason, "event": outcome.event_id, "type": outcome.event_type,
                    "transitions": outcome.transitions.len()}),
        ))
    }
}

/// What the metrics and the log line say of one webhook delivery.
#[derive(Default)]
pub(crate) struct SeenEvent {
    pub(crate) event_id: Option<String>,
    pub(crate) event_type: Option<String>,
    pub(crate) transitions: usize,
    pub(crate) unrouted: bool,
}

/// The headers of a delivery the plugin sees: Stripe's signature and the
/// body's type, nothing else (a proxy's cookies or credentials never enter
/// the sandbox; security review S20).
pub(crate) fn webhook_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| {
            k.eq_ignore_ascii_case("stripe-signature") || k.eq_ignore_ascii_case("content-type")
        })
        .cloned()
        .collect()
}

/// The connected account an event names (`account`), read without trusting
/// it: the plugin verifies the signature under the merchant it is routed to.
pub(crate) fn event_account(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Routing<'a> {
        #[serde(borrow)]
        account: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Routing>(body)
        .ok()
        .and_then(|r| r.account)
        .map(|a| a.into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_delivery_carries_only_its_signature_and_type_into_the_sandbox() {
        let given = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let kept = super::webhook_headers(&given(&[
            ("Stripe-Signature", "t=1,v1=ab"),
            ("content-type", "application/json"),
            ("Authorization", "Bearer spt_secret"),
            ("Cookie", "session=1"),
            ("X-Forwarded-For", "10.0.0.1"),
        ]));
        assert_eq!(
            kept,
            given(&[
                ("Stripe-Signature", "t=1,v1=ab"),
                ("content-type", "application/json")
            ])
        );
    }
}
