//! Amounts and metadata. https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts
//! https://docs.stripe.com/api/metadata

use crate::support::*;

fn intent(s: &Stripe, amount: &str, currency: &str) -> (u16, String) {
    let (status, v) = s.call(
        "POST",
        "/v1/payment_intents",
        &format!("amount={amount}&currency={currency}"),
    );
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn amounts_below_the_currencys_minimum_or_beyond_eight_digits_are_refused() {
    let s = Stripe::new();
    assert_eq!(intent(&s, "49", "usd"), (400, "amount_too_small".into()));
    assert_eq!(intent(&s, "50", "usd").0, 200);
    assert_eq!(intent(&s, "29", "gbp"), (400, "amount_too_small".into()));
    assert_eq!(intent(&s, "49", "jpy"), (400, "amount_too_small".into()));
    assert_eq!(intent(&s, "99999999", "usd").0, 200);
    assert_eq!(
        intent(&s, "100000000", "usd"),
        (400, "amount_too_large".into())
    );
    let (status, v) = s.call(
        "POST",
        "/v1/checkout/sessions",
        "mode=payment&success_url=https://x.test/ok&line_items[0][quantity]=1\
&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=10\
&line_items[0][price_data][product_data][name]=Tiny",
    );
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("amount_too_small"))
    );
}

#[test]
fn metadata_is_limited_to_50_keys_of_40_characters_and_values_of_500() {
    let s = Stripe::new();
    let keys = |n: usize| {
        (0..n)
            .map(|i| format!("metadata[k{i}]=v"))
            .collect::<Vec<_>>()
            .join("&")
    };
    assert_eq!(s.call("POST", "/v1/customers", &keys(50)).0, 200);
    assert_eq!(s.call("POST", "/v1/customers", &keys(51)).0, 400);
    let key40 = "k".repeat(40);
    assert_eq!(
        s.call("POST", "/v1/customers", &format!("metadata[{key40}]=v"))
            .0,
        200
    );
    assert_eq!(
        s.call("POST", "/v1/customers", &format!("metadata[{key40}x]=v"))
            .0,
        400
    );
    let value = "v".repeat(500);
    assert_eq!(
        s.call("POST", "/v1/customers", &format!("metadata[k]={value}"))
            .0,
        200
    );
    assert_eq!(
        s.call("POST", "/v1/customers", &format!("metadata[k]={value}v"))
            .0,
        400
    );
    let (status, _) = s.call(
        "POST",
        "/v1/checkout/sessions",
        &format!(
            "mode=payment&success_url=https://x.test/ok&line_items[0][quantity]=1\
&line_items[0][price_data][currency]=gbp&line_items[0][price_data][unit_amount]=1000\
&line_items[0][price_data][product_data][name]=I&payment_intent_data[metadata][k]={value}v"
        ),
    );
    assert_eq!(status, 400, "the PaymentIntent's metadata too");
}
