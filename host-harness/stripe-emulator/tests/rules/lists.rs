//! Lists and their filters. https://docs.stripe.com/api/pagination

use crate::support::*;
use serde_json::Value;

fn ids(v: &Value) -> Vec<String> {
    v["data"].as_array().unwrap().iter().map(id).collect()
}

#[test]
fn lists_page_newest_first_by_cursor_either_way() {
    let s = Stripe::new();
    let made: Vec<String> = (0..5).map(|_| s.customer()).collect();
    let (_, first) = s.call("GET", "/v1/customers", "limit=2");
    assert_eq!(ids(&first), [made[4].clone(), made[3].clone()]);
    assert_eq!(first["has_more"], true);
    let (_, next) = s.call(
        "GET",
        "/v1/customers",
        &format!("limit=2&starting_after={}", made[3]),
    );
    assert_eq!(ids(&next), [made[2].clone(), made[1].clone()]);
    let (_, last) = s.call(
        "GET",
        "/v1/customers",
        &format!("limit=2&starting_after={}", made[1]),
    );
    assert_eq!(
        (ids(&last), &last["has_more"]),
        (vec![made[0].clone()], &Value::Bool(false))
    );
    let (_, back) = s.call(
        "GET",
        "/v1/customers",
        &format!("limit=2&ending_before={}", made[1]),
    );
    assert_eq!(ids(&back), [made[3].clone(), made[2].clone()]);
    assert_eq!(back["has_more"], true);
    assert_eq!(s.call("GET", "/v1/customers", "limit=101").0, 400);
}

#[test]
fn payment_intents_charges_and_sessions_are_listed_by_customer() {
    let s = Stripe::new();
    let (a, b) = (s.customer(), s.customer());
    let card = s.saved_card(&a, "4242424242424242");
    s.off_session_charge(&a, &card, "");
    s.ok(
        "/v1/payment_intents",
        &format!("amount=1000&currency=gbp&customer={b}"),
    );
    s.session(&format!("&customer={a}"));
    for (path, kind) in [
        ("/v1/payment_intents", "payment_intent"),
        ("/v1/charges", "charge"),
        ("/v1/checkout/sessions", "checkout.session"),
    ] {
        let (status, list) = s.call("GET", path, &format!("customer={a}"));
        assert_eq!(status, 200, "{path}");
        let data = list["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{path}: {list}");
        assert_eq!(
            (data[0]["object"].as_str(), data[0]["customer"].as_str()),
            (Some(kind), Some(a.as_str()))
        );
    }
}

#[test]
fn events_are_listed_by_type_and_time() {
    let s = Stripe::new();
    let (a, card) = {
        let a = s.customer();
        let card = s.saved_card(&a, "4242424242424242");
        (a, card)
    };
    s.off_session_charge(&a, &card, "");
    let since = support_now_secs(&s);
    s.advance_secs(10);
    s.off_session_charge(&a, &card, "");
    let (_, succeeded) = s.call("GET", "/v1/events", "type=payment_intent.succeeded");
    assert_eq!(ids(&succeeded).len(), 2);
    let (_, later) = s.call(
        "GET",
        "/v1/events",
        &format!("type=payment_intent.succeeded&created[gt]={since}"),
    );
    assert_eq!(ids(&later).len(), 1);
    let (_, family) = s.call("GET", "/v1/events", "type=payment_intent.*");
    assert_eq!(ids(&family).len(), 2);
}

/// `types[]`: up to 20 types; not beside `type`.
/// https://docs.stripe.com/api/events/list#list_events-types
#[test]
fn events_are_listed_by_several_types_at_once() {
    let s = Stripe::new();
    let a = s.customer();
    let card = s.saved_card(&a, "4242424242424242");
    s.off_session_charge(&a, &card, "");
    let all = s.event_types();
    let (status, two) = s.call(
        "GET",
        "/v1/events",
        "types[]=payment_intent.succeeded&types[]=charge.refunded",
    );
    assert_eq!(status, 200);
    let listed: Vec<&str> = two["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["payment_intent.succeeded"], "of {all:?}");
    let both = "type=payment_intent.succeeded&types[]=charge.refunded";
    assert_eq!(s.call("GET", "/v1/events", both).0, 400);
    let many: String = (0..21).map(|i| format!("types[]=t{i}&")).collect();
    assert_eq!(s.call("GET", "/v1/events", &many).0, 400);
}

fn support_now_secs(s: &Stripe) -> u64 {
    s.time.load(std::sync::atomic::Ordering::SeqCst) / 1000
}

#[test]
fn the_platform_lists_its_connected_accounts() {
    let mut s = Stripe::new();
    s.account = String::new();
    let made = id(&s.ok("/v1/accounts", "type=express"));
    let (status, list) = s.call("GET", "/v1/accounts", "limit=10");
    assert_eq!(status, 200);
    let listed = ids(&list);
    assert_eq!(listed.first(), Some(&made), "newest first");
    assert!(listed.contains(&ACCOUNT.to_string()));
}
