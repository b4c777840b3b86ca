//! Stripe's limits on amounts and metadata.

use crate::Reply;
use crate::error::invalid;
use serde_json::Value;

/// Stripe's zero-decimal currencies: amounts are whole units.
/// https://docs.stripe.com/currencies#zero-decimal
pub const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// The smallest charge Stripe takes in a currency, in minor units.
/// https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts
fn minimum(currency: &str) -> i64 {
    match currency {
        "usd" | "aud" | "brl" | "cad" | "chf" | "eur" | "inr" | "nzd" | "sgd" => 50,
        "gbp" => 30,
        "aed" | "pln" | "ron" => 200,
        "bgn" => 100,
        "czk" => 1500,
        "dkk" => 250,
        "hkd" => 400,
        "huf" => 17500,
        "jpy" => 50,
        "mxn" => 1000,
        "myr" => 200,
        "nok" | "sek" => 300,
        "thb" => 1000,
        _ => 50,
    }
}

/// The amount field holds at most eight digits.
pub const MAXIMUM: i64 = 99_999_999;

/// `amount_too_small` and `amount_too_large`, as Stripe refuses them.
pub fn check_amount(amount: i64, currency: &str, param: &str) -> Result<(), Reply> {
    let min = minimum(currency);
    if amount < min {
        return Err(invalid(
            Some("amount_too_small"),
            &format!(
                "Amount must be at least {} {currency}",
                shown(min, currency)
            ),
            Some(param),
        ));
    }
    if amount > MAXIMUM {
        return Err(invalid(
            Some("amount_too_large"),
            &format!(
                "Amount must be no more than {} {currency}",
                shown(MAXIMUM, currency)
            ),
            Some(param),
        ));
    }
    Ok(())
}

fn shown(minor: i64, currency: &str) -> String {
    if ZERO_DECIMAL.contains(&currency) {
        minor.to_string()
    } else {
        format!("{}.{:02}", minor / 100, minor % 100)
    }
}

/// Metadata: at most 50 keys, keys of at most 40 characters, values of at
/// most 500, and no square brackets in keys.
/// https://docs.stripe.com/api/metadata
pub fn check_metadata(metadata: &Value, param: &str) -> Result<(), Reply> {
    let Some(map) = metadata.as_object() else {
        return Ok(());
    };
    if map.len() > 50 {
        return Err(invalid(
            None,
            &format!(
                "Invalid {param}: metadata can have up to 50 keys, but you passed in {} keys.",
                map.len()
            ),
            Some(param),
        ));
    }
    for (k, v) in map {
        let long = k.chars().count() > 40;
        if long || k.is_empty() {
            return Err(invalid(
                None,
                &format!(
                    "Invalid {param}: metadata keys can have up to 40 characters, but you passed in a key that is {} characters.",
                    k.chars().count()
                ),
                Some(&format!("{param}[{k}]")),
            ));
        }
        let len = v.as_str().map_or(0, |s| s.chars().count());
        if len > 500 {
            return Err(invalid(
                None,
                &format!(
                    "Invalid {param}: metadata values can have up to 500 characters, but you passed in a value that is {len} characters."
                ),
                Some(&format!("{param}[{k}]")),
            ));
        }
    }
    Ok(())
}
