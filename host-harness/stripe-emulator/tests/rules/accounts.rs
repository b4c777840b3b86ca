//! Authentication and Connect.
//! https://docs.stripe.com/api/authentication
//! https://docs.stripe.com/connect/authentication

use crate::support::*;
use base64::Engine;

#[test]
fn the_key_is_accepted_as_bearer_or_as_basic_user_name_in_test_mode_only() {
    let s = Stripe::new();
    let get = |auth: &str| {
        let h = vec![
            ("Authorization".to_string(), auth.to_string()),
            ("Stripe-Account".to_string(), ACCOUNT.to_string()),
        ];
        s.emu.handle("GET", "/v1/customers", &h, b"").status
    };
    let basic = base64::engine::general_purpose::STANDARD.encode("sk_test_rules:");
    assert_eq!(get("Bearer sk_test_rules"), 200);
    assert_eq!(get(&format!("Basic {basic}")), 200, "curl -u sk_test_...:");
    assert_eq!(
        get("Bearer sk_live_rules"),
        401,
        "the emulator is test mode only"
    );
    assert_eq!(get("Basic !!"), 401);
}

#[test]
fn objects_of_one_account_are_missing_from_another() {
    let s = Stripe::new();
    let cus = s.customer();
    s.emu.connect_existing("acct_b", "B");
    let mut b = Stripe::new();
    b.emu = s.emu.clone();
    b.account = "acct_b".into();
    assert_eq!(s.call("GET", &format!("/v1/customers/{cus}"), "").0, 200);
    let (status, err) = b.call("GET", &format!("/v1/customers/{cus}"), "");
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("resource_missing"))
    );
}

#[test]
fn an_unknown_or_disconnected_account_is_refused_with_403() {
    let s = Stripe::new();
    let mut stranger = Stripe::new();
    stranger.emu = s.emu.clone();
    stranger.account = "acct_nobody".into();
    let (status, err) = stranger.call("GET", "/v1/customers", "");
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (403, Some("account_invalid"))
    );
    assert!(
        !err.to_string().contains("sk_test_rules"),
        "the key is never echoed whole"
    );
    assert_eq!(s.call("GET", "/v1/customers", "").0, 200);
    let r = s.test_route(&format!("/_test/accounts/{ACCOUNT}/deauthorize"), "");
    assert_eq!(r.status, 200);
    assert_eq!(
        s.call("GET", "/v1/customers", "").0,
        403,
        "access was revoked"
    );
    assert!(
        s.event_types()
            .contains(&"account.application.deauthorized".to_string())
    );
}

#[test]
fn an_account_made_by_the_platform_can_be_used_at_once() {
    let mut s = Stripe::new();
    s.account = String::new();
    let acct = id(&s.ok(
        "/v1/accounts",
        "type=express&business_profile[name]=New+Shop",
    ));
    s.account = acct.clone();
    assert_eq!(s.call("GET", "/v1/customers", "").0, 200);
    s.account = String::new();
    let link = s.ok(
        "/v1/account_links",
        &format!("account={acct}&type=account_onboarding&refresh_url=https://x.test/r&return_url=https://x.test/ok"),
    );
    assert_eq!(link["object"], "account_link");
}

/// Stripe restricting an account (requirements past due) and the merchant
/// resolving it, as `account.updated` reports them.
/// https://docs.stripe.com/connect/handling-api-verification
/// https://docs.stripe.com/api/accounts/object#account_object-requirements
#[test]
fn a_restricted_account_reports_its_past_due_requirements_until_activated() {
    let s = Stripe::new();
    let r = s.test_route(
        &format!("/_test/accounts/{ACCOUNT}/restrict"),
        "past_due[]=external_account",
    );
    assert_eq!(r.status, 200);
    let event = s.emu.events().last().cloned().unwrap();
    assert_eq!(event["type"], "account.updated");
    assert_eq!(event["account"], ACCOUNT);
    let account = &event["data"]["object"];
    assert_eq!(account["charges_enabled"], false);
    assert_eq!(
        account["requirements"]["past_due"],
        serde_json::json!(["external_account"])
    );
    assert_eq!(
        account["requirements"]["disabled_reason"],
        "requirements.past_due"
    );
    s.test_route(&format!("/_test/accounts/{ACCOUNT}/activate"), "");
    let account = s.emu.events().last().cloned().unwrap()["data"]["object"].clone();
    assert_eq!(account["charges_enabled"], true);
    assert_eq!(account["requirements"]["past_due"], serde_json::json!([]));
    assert!(account["requirements"]["disabled_reason"].is_null());
}
