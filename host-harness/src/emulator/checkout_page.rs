//! The hosted Checkout page, as minimal as Stripe's is not: the merchant, the
//! amount, a card field and a Pay button. Paying here completes the session
//! exactly as `/_test/checkout/sessions/{id}/complete` does.

use super::{Emulator, Reply};
use serde_json::{Value, json};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Minor units for display; Stripe's zero-decimal currencies show as they are.
fn display_amount(minor: i64, currency: &str) -> String {
    const ZERO: &[&str] = &[
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv", "xaf",
        "xof", "xpf",
    ];
    let c = currency.to_ascii_uppercase();
    if ZERO.contains(&currency) {
        format!("{c} {minor}")
    } else {
        format!("{c} {}.{:02}", minor / 100, minor % 100)
    }
}

fn page(status: u16, title: &str, body: &str) -> Reply {
    Reply::html(
        status,
        format!(
            "<!doctype html><html><head><meta charset=utf-8><title>{t}</title></head>\
             <body style=\"font-family:sans-serif;max-width:28em;margin:3em auto\">{body}</body></html>",
            t = esc(title)
        ),
    )
}

fn session(emu: &Emulator, id: &str) -> Option<(String, Value)> {
    emu.state()
        .objects
        .get(id)
        .filter(|s| s.object["object"] == "checkout.session")
        .map(|s| (s.account.clone(), s.object.clone()))
}

fn success_redirect(s: &Value) -> Reply {
    let url = s["success_url"]
        .as_str()
        .unwrap_or("/")
        .replace("{CHECKOUT_SESSION_ID}", s["id"].as_str().unwrap_or(""));
    Reply {
        status: 303,
        headers: vec![("Location".into(), url)],
        body: Vec::new(),
    }
}

pub fn show(emu: &Emulator, id: &str) -> Reply {
    let Some((account, s)) = session(emu, id) else {
        return page(404, "Not found", "<h1>This page does not exist</h1>");
    };
    match s["status"].as_str() {
        Some("complete") => return success_redirect(&s),
        Some("open") => {}
        _ => return page(410, "Expired", "<h1>This checkout session has expired</h1>"),
    }
    let merchant = if account.is_empty() {
        "the platform".to_string()
    } else {
        account
    };
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

pub fn pay(emu: &Emulator, id: &str, params: &Value) -> Reply {
    let reply = super::api::complete_session(emu, id, &json!({"card": params["card"]}));
    if reply.status != 200 {
        let v: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or("The payment failed.")
            .to_string();
        return page(
            402,
            "Payment failed",
            &format!(
                "<h1>Payment failed</h1><p id=error>{}</p><p><a href=\"/checkout/{}\">Try again</a></p>",
                esc(&msg),
                esc(id)
            ),
        );
    }
    let s: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    success_redirect(&s)
}
