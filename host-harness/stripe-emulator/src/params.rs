//! Reading a request's parameters as Stripe reads them.

use crate::Reply;
use crate::error::{Kind, invalid, stripe_error};
use serde_json::Value;

/// Anything not in `allowed` is refused, as Stripe does ("Received unknown
/// parameter").
pub fn unknown_param(params: &Value, allowed: &[&str]) -> Option<Reply> {
    let bad = params
        .as_object()?
        .keys()
        .find(|k| !allowed.contains(&k.as_str()))?;
    Some(invalid(
        Some("parameter_unknown"),
        &format!("Received unknown parameter: {bad}"),
        Some(bad),
    ))
}

/// A non-empty string.
pub fn str_of(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

pub fn int_param(params: &Value, name: &str) -> Result<Option<i64>, Reply> {
    match &params[name] {
        Value::Null => Ok(None),
        Value::String(s) => s.parse().map(Some).map_err(|_| {
            invalid(
                Some("parameter_invalid_integer"),
                &format!("Invalid integer: {s}"),
                Some(name),
            )
        }),
        _ => Err(stripe_error(
            400,
            Kind::InvalidRequest,
            None,
            &format!("Invalid {name}"),
            Some(name),
        )),
    }
}
