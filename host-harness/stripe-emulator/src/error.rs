//! Stripe's one error shape, `{"error": {type, code, message, param, doc_url}}`,
//! and the errors every resource shares.
//! https://docs.stripe.com/api/errors

use crate::Reply;
use serde_json::json;

/// Stripe's `error.type`.
#[derive(Clone, Copy)]
pub enum Kind {
    InvalidRequest,
    Card,
    Idempotency,
    Api,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::InvalidRequest => "invalid_request_error",
            Kind::Card => "card_error",
            Kind::Idempotency => "idempotency_error",
            Kind::Api => "api_error",
        }
    }
}

/// Stripe's error object.
pub fn stripe_error(
    status: u16,
    kind: Kind,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Reply {
    let mut e = json!({"type": kind.as_str(), "message": message});
    if let Some(c) = code {
        e["code"] = c.into();
        e["doc_url"] = format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        )
        .into();
    }
    if let Some(p) = param {
        e["param"] = p.into();
    }
    Reply::json(status, &json!({ "error": e }))
}

/// 400 `invalid_request_error`.
pub fn invalid(code: Option<&str>, message: &str, param: Option<&str>) -> Reply {
    stripe_error(400, Kind::InvalidRequest, code, message, param)
}

pub fn param_missing(param: &str) -> Reply {
    invalid(
        Some("parameter_missing"),
        &format!("Missing required param: {param}."),
        Some(param),
    )
}

/// The one 404 for an object this account cannot see.
pub fn missing(kind: &str, id: &str) -> Reply {
    stripe_error(
        404,
        Kind::InvalidRequest,
        Some("resource_missing"),
        &format!("No such {kind}: '{id}'"),
        Some("id"),
    )
}

/// The one 404 for a path the emulator does not serve.
pub fn unrecognized(method: &str, path: &str) -> Reply {
    stripe_error(
        404,
        Kind::InvalidRequest,
        None,
        &format!("Unrecognized request URL ({method}: {path})."),
        None,
    )
}

/// Stripe tells its clients whether a retry can help (`Stripe-Should-Retry`,
/// which its SDKs honour before their own rules): never for a decline (402),
/// always for a conflict (409: a key in use, a lock). Faults set it themselves.
/// https://docs.stripe.com/error-low-level#server-errors
pub fn say_whether_to_retry(reply: &mut Reply) {
    let verdict = match reply.status {
        402 => "false",
        409 => "true",
        _ => return,
    };
    if reply.header("Stripe-Should-Retry").is_none() {
        reply
            .headers
            .push(("Stripe-Should-Retry".into(), verdict.into()));
    }
}
