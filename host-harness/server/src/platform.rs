//! The billing platform's JSON (camelCase, amounts as decimal strings) and its
//! mapping onto the contract's records. Documents are stored verbatim, so
//! fields this host does not know survive a round trip.

use crate::bindings::{Address, Customer, ExternalId, Invoice, LineItem, PaymentOption};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformAddress {
    pub country: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub postcode: Option<String>,
    pub town: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlatformExternalId {
    pub key: String,
    pub value: String,
}

/// `PUT /customers/{id}` body, as in the platform's API reference.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformCustomer {
    pub address: Option<PlatformAddress>,
    #[serde(default)]
    pub billing_emails: Vec<String>,
    pub contact_name: Option<String>,
    #[serde(default)]
    pub customer_aliases: Vec<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub external_ids: Vec<PlatformExternalId>,
    pub label: Option<String>,
    pub legal_name: Option<String>,
    pub tax_status: Option<String>,
    pub telephone: Option<String>,
    pub url: Option<String>,
}

impl PlatformCustomer {
    pub fn to_wit(&self, id: &str) -> Customer {
        Customer {
            id: id.to_string(),
            address: self.address.clone().map(|a| Address {
                country: a.country,
                line1: a.line1,
                line2: a.line2,
                postcode: a.postcode,
                town: a.town,
            }),
            billing_emails: self.billing_emails.clone(),
            contact_name: self.contact_name.clone(),
            customer_aliases: self.customer_aliases.clone(),
            email: self.email.clone(),
            external_ids: self
                .external_ids
                .iter()
                .map(|e| ExternalId {
                    key: e.key.clone(),
                    value: e.value.clone(),
                })
                .collect(),
            label: self.label.clone(),
            legal_name: self.legal_name.clone(),
            tax_status: self.tax_status.clone(),
            telephone: self.telephone.clone(),
            url: self.url.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformLineItem {
    pub title: String,
    pub quantity: String,
    pub rate: String,
    pub net_total: String,
    pub tax_rate: Option<String>,
    pub total_tax: String,
    pub gross_total: String,
}

/// `POST /invoices` body. Amounts stay strings: a JSON number is refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformInvoice {
    pub id: String,
    pub invoice_number: String,
    pub customer_id: String,
    pub billing_schedule_id: Option<String>,
    pub currency: String,
    pub issue_date: String,
    pub due_date: Option<String>,
    #[serde(default)]
    pub line_items: Vec<PlatformLineItem>,
    pub net_total: String,
    pub total_tax: String,
    pub gross_total: String,
    pub amount_due: String,
    #[serde(default)]
    pub payment_options: Vec<String>,
    /// The invoice's own switch; absent, the merchant's setting decides
    /// (auto-charge is on by default, per the merchants' guide).
    #[serde(default)]
    pub auto_charge: Option<bool>,
}

impl PlatformInvoice {
    pub fn to_wit(&self, customer: Customer) -> Invoice {
        Invoice {
            id: self.id.clone(),
            number: self.invoice_number.clone(),
            currency: self.currency.clone(),
            net_total: self.net_total.clone(),
            total_tax: self.total_tax.clone(),
            gross_total: self.gross_total.clone(),
            amount_due: self.amount_due.clone(),
            line_items: self
                .line_items
                .iter()
                .map(|l| LineItem {
                    title: l.title.clone(),
                    quantity: l.quantity.clone(),
                    rate: l.rate.clone(),
                    net_total: l.net_total.clone(),
                    tax_rate: l.tax_rate.clone(),
                    total_tax: l.total_tax.clone(),
                    gross_total: l.gross_total.clone(),
                })
                .collect(),
            issue_date: self.issue_date.clone(),
            due_date: self.due_date.clone(),
            billing_schedule_id: self.billing_schedule_id.clone(),
            customer,
            payment_options: self
                .payment_options
                .iter()
                .map(|o| match o.as_str() {
                    "STRIPE" => PaymentOption::Stripe,
                    "BANK_TRANSFER" => PaymentOption::BankTransfer,
                    other => PaymentOption::Other(other.to_string()),
                })
                .collect(),
            auto_charge: self.auto_charge.unwrap_or(true),
        }
    }
}
