//! Test-only routes (`/_test/...`): what a customer, a bank or Stripe itself
//! would do, on demand: async payment results, refund failures, disputes,
//! onboarding, and webhook redelivery, reordering and re-signing.

use super::api::{get, missing, put};
use super::{Emulator, Reply, WebhookTarget, stripe_error};
use serde_json::{Value, json};

pub fn route(emu: &Emulator, method: &str, segments: &[&str], params: &Value) -> Reply {
    match (method, segments) {
        ("POST", ["_test", "checkout", "sessions", id, "async"]) => async_result(emu, id, params),
        ("POST", ["_test", "refunds", id, "fail"]) => fail_refund(emu, id),
        ("POST", ["_test", "payment_intents", id, "settle"]) => match owner_of(emu, id) {
            Some((account, pi)) => super::payments::settle_debit(emu, &account, pi),
            None => missing("payment_intent", id),
        },
        ("POST", ["_test", "disputes"]) => open_dispute(emu, params),
        ("POST", ["_test", "disputes", id, "close"]) => close_dispute(emu, id, params),
        ("POST", ["_test", "accounts", id, "activate"]) => super::connect::activate(emu, id),
        ("POST", ["_test", "accounts", id, "deauthorize"]) => {
            let app = json!({"id": "ca_emulated_platform", "object": "application", "name": "Billing platform"});
            Reply::json(200, &emu.emit(id, "account.application.deauthorized", app))
        }
        ("POST", ["_test", "events", id, "redeliver"]) => match emu.event(id) {
            Some(e) => {
                emu.deliver_now(&e);
                Reply::json(200, &json!({"redelivered": id}))
            }
            None => missing("event", id),
        },
        ("POST", ["_test", "events", "deliver"]) => {
            // Delivers the listed events once each, in the order given, synchronously.
            let ids = params["ids"].as_str().unwrap_or_default();
            let mut statuses = Vec::new();
            for id in ids.split(',').filter(|s| !s.is_empty()) {
                let Some(e) = emu.event(id) else {
                    return missing("event", id);
                };
                statuses.push(json!({"id": id, "status": emu.deliver_now(&e)}));
            }
            Reply::json(200, &json!({"delivered": statuses}))
        }
        ("POST", ["_test", "webhook"]) => {
            // url, secrets (comma-separated), auto=0 to hold events for manual delivery.
            let secrets = params["secrets"]
                .as_str()
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let url = params["url"].as_str().unwrap_or_default().to_string();
            emu.set_webhook((!url.is_empty()).then_some(WebhookTarget {
                url,
                secrets,
                automatic: params["auto"] != "0",
            }));
            Reply::json(200, &json!({"ok": true}))
        }
        _ => Reply::json(
            404,
            &json!({"error": {"type": "invalid_request_error", "message": "not found"}}),
        ),
    }
}

fn owner_of(emu: &Emulator, id: &str) -> Option<(String, Value)> {
    emu.state()
        .objects
        .get(id)
        .map(|s| (s.account.clone(), s.object.clone()))
}

/// The bank debit behind an unpaid session succeeds or fails.
fn async_result(emu: &Emulator, id: &str, params: &Value) -> Reply {
    let Some((account, session)) = owner_of(emu, id) else {
        return missing("checkout.session", id);
    };
    let pi_id = session["payment_intent"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(mut pi) = get(emu, &account, "payment_intent", &pi_id) else {
        return missing("payment_intent", &pi_id);
    };
    let mut session = session;
    if params["result"] == "failed" {
        pi["status"] = "requires_payment_method".into();
        pi["last_payment_error"] = json!({"type": "card_error", "code": "payment_method_provider_decline", "message": "The bank debit was declined."});
        put(emu, &account, pi.clone());
        emu.emit(&account, "payment_intent.payment_failed", pi);
        emu.emit(
            &account,
            "checkout.session.async_payment_failed",
            super::api::without_private(session.clone()),
        );
    } else {
        pi["status"] = "succeeded".into();
        pi["amount_received"] = pi["amount"].clone();
        put(emu, &account, pi.clone());
        session["payment_status"] = "paid".into();
        put(emu, &account, session.clone());
        emu.emit(&account, "payment_intent.succeeded", pi);
        emu.emit(
            &account,
            "checkout.session.async_payment_succeeded",
            super::api::without_private(session),
        );
    }
    Reply::json(200, &json!({"ok": true}))
}

fn fail_refund(emu: &Emulator, id: &str) -> Reply {
    let Some((account, mut refund)) = owner_of(emu, id) else {
        return missing("refund", id);
    };
    refund["status"] = "failed".into();
    refund["failure_reason"] = "lost_or_stolen_card".into();
    put(emu, &account, refund.clone());
    let charge_id = refund["charge"].as_str().unwrap_or_default().to_string();
    if let Some(mut charge) = get(emu, &account, "charge", &charge_id) {
        let back = charge["amount_refunded"].as_i64().unwrap_or(0)
            - refund["amount"].as_i64().unwrap_or(0);
        charge["amount_refunded"] = back.max(0).into();
        charge["refunded"] = false.into();
        put(emu, &account, charge);
    }
    emu.emit(&account, "charge.refund.updated", refund.clone());
    Reply::json(200, &refund)
}

fn open_dispute(emu: &Emulator, params: &Value) -> Reply {
    let pi_id = params["payment_intent"].as_str().unwrap_or_default();
    let Some((account, pi)) = owner_of(emu, pi_id) else {
        return missing("payment_intent", pi_id);
    };
    if pi["status"] != "succeeded" {
        return stripe_error(
            400,
            "invalid_request_error",
            None,
            "Only succeeded payments can be disputed.",
            None,
        );
    }
    let dispute = json!({
        "id": emu.next_id("dp"), "object": "dispute", "amount": pi["amount"], "currency": pi["currency"],
        "charge": pi["latest_charge"], "payment_intent": pi["id"], "status": "needs_response", "reason": "fraudulent",
        "created": emu.clock.now_secs(), "livemode": false, "metadata": {},
    });
    put(emu, &account, dispute.clone());
    emu.emit(&account, "charge.dispute.created", dispute.clone());
    Reply::json(200, &dispute)
}

fn close_dispute(emu: &Emulator, id: &str, params: &Value) -> Reply {
    let Some((account, mut dispute)) = owner_of(emu, id) else {
        return missing("dispute", id);
    };
    dispute["status"] = if params["status"] == "won" {
        "won"
    } else {
        "lost"
    }
    .into();
    put(emu, &account, dispute.clone());
    emu.emit(&account, "charge.dispute.closed", dispute.clone());
    Reply::json(200, &dispute)
}
