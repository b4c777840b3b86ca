//! Disputes, opened and closed by the cardholder's bank (test routes play
//! the bank). https://docs.stripe.com/disputes/how-disputes-work
//! https://docs.stripe.com/api/events/types#event_types-charge.dispute.created

use super::{public, retrieve};
use crate::error::invalid;
use crate::list::Filter;
use crate::{Emulator, Reply, shapes};
use serde_json::{Value, json};

pub fn route(emu: &Emulator, method: &str, rest: &[&str], account: &str, params: &Value) -> Reply {
    match (method, rest) {
        ("GET", []) => emu.list(
            account,
            "dispute",
            "/v1/disputes",
            params,
            &[
                Filter::Equals("charge"),
                Filter::Equals("payment_intent"),
                Filter::Created,
            ],
            public,
        ),
        ("GET", [id]) => retrieve(emu, account, "dispute", id, public),
        _ => crate::error::unrecognized(method, &format!("/v1/disputes/{}", rest.join("/"))),
    }
}

/// The bank disputes a succeeded payment (card or bank debit): the charge is
/// marked disputed and the amount is withdrawn.
pub fn open(emu: &Emulator, account: &str, pi: &Value) -> Reply {
    let charge_id = pi["latest_charge"].as_str().unwrap_or_default().to_string();
    let Some(mut charge) = emu.get(account, "charge", &charge_id) else {
        return invalid(None, "Only succeeded payments can be disputed.", None);
    };
    let dispute = shapes::with(
        shapes::dispute(&emu.next_id("dp"), emu.now()),
        json!({
            "amount": charge["amount"], "currency": charge["currency"], "charge": charge_id,
            "payment_intent": pi["id"], "reason": "fraudulent", "status": "needs_response",
            "payment_method_details": charge["payment_method_details"],
        }),
    );
    emu.put(account, dispute.clone());
    charge["disputed"] = true.into();
    emu.put(account, charge);
    emu.emit(account, "charge.dispute.created", dispute.clone());
    emu.emit(account, "charge.dispute.funds_withdrawn", dispute.clone());
    Reply::json(200, &dispute)
}

/// The dispute is decided: won reinstates the funds.
pub fn close(emu: &Emulator, account: &str, mut dispute: Value, won: bool) -> Reply {
    if !matches!(
        dispute["status"].as_str(),
        Some("needs_response" | "under_review" | "warning_needs_response")
    ) {
        return invalid(None, "This dispute is already closed.", None);
    }
    dispute["status"] = if won { "won" } else { "lost" }.into();
    emu.put(account, dispute.clone());
    emu.emit(account, "charge.dispute.closed", dispute.clone());
    if won {
        emu.emit(account, "charge.dispute.funds_reinstated", dispute.clone());
    }
    Reply::json(200, &dispute)
}
