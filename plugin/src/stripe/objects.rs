//! The few fields the plugin reads from Stripe objects. Unknown fields are
//! ignored, missing optional ones default, so Stripe can add fields freely.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    pub invoice_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: Option<String>,
    pub expires_at: Option<u64>,
    pub payment_status: Option<String>,
    pub payment_intent: Option<String>,
    pub amount_total: Option<u64>,
    pub currency: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}
