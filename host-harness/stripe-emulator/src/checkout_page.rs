//! The hosted Checkout page, as minimal as Stripe's is not: the business
//! name, the amount, a card field and a Pay button; a 3-D Secure challenge
//! when the card asks for one. Paying here does exactly what the
//! `/_test/checkout/sessions/{id}/...` routes do.

use crate::limits::ZERO_DECIMAL;
use crate::resources::checkout_sessions::{self, open_session};
use crate::{Emulator, Reply};
use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Minor units for display; Stripe's zero-decimal currencies show as they are.
fn display_amount(minor: i64, currency: &str) -> String {
    let c = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&currency) {
        format!("{c} {minor}")
    } else {
        format!("{c} {}.{:02}", minor / 100, minor % 100)
    }
}

fn page(status: u16, title: &str, body: &str) -> Reply {
    Reply::html(
        status,
        format!(
            "<!doctype html><html lang=en><head><meta charset=utf-8>\
             <meta name=viewport content=\"width=device-width, initial-scale=1\"><title>{t}</title></head>\
             <body style=\"font-family:sans-serif;max-width:28em;margin:3em auto\">{body}</body></html>",
            t = esc(title)
        ),
    )
}

fn success_redirect(s: &Value) -> Reply {
    let url = s["success_url"]
        .as_str()
        .unwrap_or("/")
        .replace("{CHECKOUT_SESSION_ID}", s["id"].as_str().unwrap_or(""));
    Reply::redirect(url)
}

/// The name Stripe shows for the account: its business name, never its id.
fn business_name(emu: &Emulator, account: &str) -> String {
    let named = emu.get("", "account", account).and_then(|a| {
        a["settings"]["dashboard"]["display_name"]
            .as_str()
            .or(a["business_profile"]["name"].as_str())
            .map(str::to_string)
    });
    named.unwrap_or_else(|| "Billing platform".to_string())
}

pub fn show(emu: &Emulator, id: &str) -> Reply {
    let Some((account, s)) = emu
        .owner_of(id)
        .filter(|(_, s)| s["object"] == "checkout.session")
    else {
        return page(404, "Not found", "<h1>This page does not exist</h1>");
    };
    match s["status"].as_str() {
        Some("complete") => return success_redirect(&s),
        Some("open") => {}
        _ => return page(410, "Expired", "<h1>This checkout session has expired</h1>"),
    }
    let merchant = business_name(emu, &account);
    if s["mode"] == "setup" {
        return save_card_page(&merchant, id);
    }
    let amount = display_amount(
        s["amount_total"].as_i64().unwrap_or(0),
        s["currency"].as_str().unwrap_or(""),
    );
    page(
        200,
        "Checkout",
        &format!(
            "<h1>Pay {merchant}</h1><p id=amount>{amount}</p>\
             <form method=post action=\"/checkout/{id}/pay\">\
             <label>Card number <input id=card name=card autocomplete=off placeholder=\"4242 4242 4242 4242\"></label>\
             <p><button id=pay type=submit>Pay {amount}</button></p></form>",
            merchant = esc(&merchant),
            amount = esc(&amount),
            id = esc(id)
        ),
    )
}

/// A setup-mode session's page: a card saved for later, nothing paid.
fn save_card_page(merchant: &str, id: &str) -> Reply {
    page(
        200,
        "Save a card",
        &format!(
            "<h1>Save a card for {merchant}</h1><p>You will not be charged now.</p>\
             <form method=post action=\"/checkout/{id}/pay\">\
             <label>Card number <input id=card name=card autocomplete=off placeholder=\"4242 4242 4242 4242\"></label>\
             <p><button id=pay type=submit>Save card</button></p></form>",
            merchant = esc(merchant),
            id = esc(id)
        ),
    )
}

fn failed(message: &str, id: &str) -> Reply {
    page(
        402,
        "Payment failed",
        &format!(
            "<h1>Payment failed</h1><p id=error>{}</p><p><a href=\"/checkout/{}\">Try again</a></p>",
            esc(message),
            esc(id)
        ),
    )
}

/// The 3-D Secure challenge, as Stripe's test page offers it.
fn challenge(id: &str) -> Reply {
    page(
        200,
        "Authenticate",
        &format!(
            "<h1>Confirm this payment with your bank</h1>\
             <form method=post action=\"/checkout/{id}/authenticate\">\
             <button id=complete-auth name=result value=complete type=submit>Complete authentication</button> \
             <button id=fail-auth name=result value=failed type=submit>Fail authentication</button></form>",
            id = esc(id)
        ),
    )
}

fn after(reply: Reply, id: &str) -> Reply {
    match reply.status {
        200 => success_redirect(&reply.json_body()),
        202 => challenge(id),
        _ => {
            let v = reply.json_body();
            failed(
                v["error"]["message"]
                    .as_str()
                    .unwrap_or("The payment failed."),
                id,
            )
        }
    }
}

pub fn pay(emu: &Emulator, id: &str, params: &Value) -> Reply {
    if open_session(emu, id).is_err() {
        return show(emu, id);
    }
    let card =
        serde_json::json!({"card": params["card"].as_str().unwrap_or_default().replace(' ', "")});
    after(checkout_sessions::complete(emu, id, &card), id)
}

pub fn authenticate(emu: &Emulator, id: &str, params: &Value) -> Reply {
    let passed = params["result"] != "failed";
    after(checkout_sessions::authenticate(emu, id, passed), id)
}
