//! Every object the emulator makes starts from the full shape of Stripe's
//! own sample of that resource: every top-level key, with Stripe's default
//! for an object that has just been made (null where Stripe shows null).
//! The suite compares these with the vendored `fixtures3.json`.
//! https://github.com/stripe/openapi (openapi/fixtures3.json)

use serde_json::{Value, json};

fn address() -> Value {
    json!({"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null})
}

/// Overlays `fields` on `base`, key by key (top level only).
pub fn with(mut base: Value, fields: Value) -> Value {
    if let (Some(b), Value::Object(f)) = (base.as_object_mut(), fields) {
        for (k, v) in f {
            b.insert(k, v);
        }
    }
    base
}

pub fn customer(id: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "customer", "address": null, "balance": 0, "created": created, "currency": null,
        "default_source": null, "delinquent": false, "description": null, "discount": null, "email": null,
        "invoice_prefix": invoice_prefix(id),
        "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null,
                             "rendering_options": null},
        "livemode": false, "metadata": {}, "name": null, "next_invoice_sequence": 1, "phone": null,
        "preferred_locales": [], "shipping": null, "tax_exempt": "none", "test_clock": null,
    })
}

fn invoice_prefix(id: &str) -> String {
    let tail: String = id.chars().rev().take(7).collect();
    tail.chars().rev().collect::<String>().to_ascii_uppercase()
}

pub fn payment_method(id: &str, kind: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": {"address": address(), "email": null, "name": null, "phone": null, "tax_id": null},
        "created": created, "customer": null, "customer_account": null, "livemode": false, "metadata": {}, "type": kind,
    })
}

pub fn card_details(brand: &str, last4: &str, funding: &str) -> Value {
    json!({
        "brand": brand, "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
        "country": "US", "display_brand": brand, "exp_month": 12, "exp_year": 2034,
        "fingerprint": format!("emu{brand}{last4}"), "funding": funding, "generated_from": null, "last4": last4,
        "networks": {"available": [brand], "preferred": null}, "three_d_secure_usage": {"supported": true},
        "wallet": null, "regulated_status": "unregulated",
    })
}

pub fn payment_intent(id: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "payment_intent", "amount": 0, "amount_capturable": 0, "amount_details": {"tip": {}},
        "amount_received": 0, "application": null, "application_fee_amount": null,
        "automatic_payment_methods": null, "canceled_at": null, "cancellation_reason": null,
        "capture_method": "automatic", "client_secret": format!("{id}_secret_emulated"),
        "confirmation_method": "automatic", "created": created, "currency": null, "customer": null,
        "customer_account": null, "description": null, "excluded_payment_method_types": null,
        "last_payment_error": null, "latest_charge": null, "livemode": false, "managed_payments": null,
        "metadata": {}, "next_action": null, "on_behalf_of": null, "payment_method": null,
        "payment_method_configuration_details": null, "payment_method_options": {},
        "payment_method_types": ["card"], "processing": null, "receipt_email": null, "review": null,
        "setup_future_usage": null, "shipping": null, "source": null, "statement_descriptor": null,
        "statement_descriptor_suffix": null, "status": "requires_payment_method", "transfer_data": null,
        "transfer_group": null,
    })
}

pub fn charge(id: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "charge", "amount": 0, "amount_captured": 0, "amount_refunded": 0, "application": null,
        "application_fee": null, "application_fee_amount": null,
        "balance_transaction": id.replacen("ch_", "txn_", 1),
        "billing_details": {"address": address(), "email": null, "name": null, "phone": null, "tax_id": null},
        "calculated_statement_descriptor": "EMULATED", "captured": true, "created": created, "currency": null,
        "customer": null, "description": null, "disputed": false, "failure_balance_transaction": null,
        "failure_code": null, "failure_message": null, "fraud_details": {}, "livemode": false, "metadata": {},
        "on_behalf_of": null,
        "outcome": {"advice_code": null, "network_advice_code": null, "network_decline_code": null,
                    "network_status": "approved_by_network", "reason": null, "risk_level": "normal",
                    "seller_message": "Payment complete.", "type": "authorized"},
        "paid": true, "payment_intent": null, "payment_method": null, "payment_method_details": null,
        "receipt_email": null, "receipt_number": null, "receipt_url": null, "refunded": false,
        "refunds": {"object": "list", "data": [], "has_more": false, "url": format!("/v1/charges/{id}/refunds")},
        "review": null, "shipping": null, "source": null, "source_transfer": null, "statement_descriptor": null,
        "statement_descriptor_suffix": null, "status": "succeeded", "transfer_data": null, "transfer_group": null,
    })
}

pub fn refund(id: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "refund", "amount": 0, "balance_transaction": null, "charge": null, "created": created,
        "currency": null, "customer": null, "customer_account": null, "destination_details": null, "metadata": {},
        "payment_intent": null, "payment_method": null, "reason": null, "receipt_number": null,
        "source_transfer_reversal": null, "status": "succeeded", "transfer_reversal": null,
    })
}

pub fn checkout_session(id: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "checkout.session", "adaptive_pricing": {"enabled": false}, "after_expiration": null,
        "allow_promotion_codes": null, "amount_subtotal": null, "amount_total": null,
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "billing_address_collection": null, "cancel_url": null, "client_reference_id": null, "client_secret": null,
        "collected_information": null, "consent": null, "consent_collection": null, "created": created,
        "currency": null, "currency_conversion": null, "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
        "customer": null, "customer_account": null, "customer_creation": "if_required", "customer_details": null,
        "customer_email": null, "discounts": [], "expires_at": created + 24 * 3600, "integration_identifier": null,
        "invoice": null,
        "invoice_creation": {"enabled": false, "invoice_data": {"account_tax_ids": null, "custom_fields": null,
            "description": null, "footer": null, "issuer": null, "metadata": {}, "rendering_options": null}},
        "livemode": false, "locale": null, "managed_payments": null, "metadata": {}, "mode": "payment",
        "origin_context": null, "payment_intent": null, "payment_link": null, "payment_method_collection": "if_required",
        "payment_method_configuration_details": null, "payment_method_options": {},
        "payment_method_types": ["card"], "payment_status": "unpaid", "permissions": null,
        "phone_number_collection": {"enabled": false}, "recovered_from": null, "saved_payment_method_options": null,
        "setup_intent": null, "shipping_address_collection": null, "shipping_cost": null, "shipping_options": [],
        "status": "open", "submit_type": null, "subscription": null, "success_url": null,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "ui_mode": "hosted",
        "url": null, "wallet_options": null,
    })
}

pub fn setup_intent(id: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "setup_intent", "application": null, "automatic_payment_methods": null,
        "cancellation_reason": null, "client_secret": format!("{id}_secret_emu"), "created": created,
        "customer": null, "description": null, "excluded_payment_method_types": null, "flow_directions": null,
        "last_setup_error": null, "latest_attempt": null, "livemode": false, "mandate": null, "metadata": {},
        "next_action": null, "on_behalf_of": null, "payment_method": null,
        "payment_method_configuration_details": null, "payment_method_options": {},
        "payment_method_types": ["card"], "single_use_mandate": null, "status": "requires_payment_method",
        "usage": "off_session",
    })
}

pub fn event(id: &str, created: i64, kind: &str, object: Value) -> Value {
    json!({
        "id": id, "object": "event", "api_version": crate::API_VERSION, "created": created,
        "data": {"object": object}, "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null}, "type": kind,
    })
}

pub fn account(id: &str, created: i64) -> Value {
    let requirements = json!({"alternatives": [], "current_deadline": null, "currently_due": [],
        "disabled_reason": null, "errors": [], "eventually_due": [], "past_due": [], "pending_verification": []});
    json!({
        "id": id, "object": "account",
        "business_profile": {"annual_revenue": null, "estimated_worker_count": null, "mcc": null, "name": null,
            "product_description": null, "support_address": null, "support_email": null, "support_phone": null,
            "support_url": null, "url": null, "minority_owned_business_designation": null},
        "business_type": null, "capabilities": {}, "charges_enabled": false, "controller": {"type": "application"},
        "country": "US", "created": created, "default_currency": "usd", "details_submitted": false, "email": null,
        "external_accounts": {"object": "list", "data": [], "has_more": false,
                              "url": format!("/v1/accounts/{id}/external_accounts")},
        "future_requirements": requirements.clone(), "metadata": {}, "payouts_enabled": false,
        "requirements": requirements,
        "settings": {"dashboard": {"display_name": null, "timezone": "Etc/UTC"},
                     "payments": {"statement_descriptor": null}},
        "tos_acceptance": {"date": null, "ip": null, "user_agent": null}, "type": "express",
    })
}

pub fn account_link(created: i64, expires_at: i64, url: String) -> Value {
    json!({"object": "account_link", "created": created, "expires_at": expires_at, "url": url})
}

pub fn dispute(id: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "dispute", "amount": 0, "balance_transactions": [], "charge": null, "created": created,
        "currency": null, "enhanced_eligibility_types": [], "evidence": {"uncategorized_text": null},
        "evidence_details": {"due_by": created + 7 * 86400, "has_evidence": false, "past_due": false,
                             "submission_count": 0, "enhanced_eligibility": {}},
        "is_charge_refundable": false, "livemode": false, "metadata": {}, "payment_intent": null,
        "payment_method_details": null, "reason": "general", "status": "needs_response",
    })
}
