//! The emails a failed payment sends: one to the merchant, one to the
//! customer's billing emails with the pay link. Each carries a dedupe key
//! derived from the invoice and the attempt, so a redelivered event or a
//! retried call never sends one twice.

use crate::bindings::billing::stripe_plugin::email::Message;
use crate::contract::{Merchant, PluginError};
use crate::imports::send_email;
use crate::money;
use crate::record::InvoiceRecord;
use crate::stripe::error::Failure;

/// Who hears about a failed or blocked payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tell {
    /// The merchant, and the customer with the pay link.
    Both,
    /// The merchant alone: the customer did nothing wrong (a mandate or
    /// payment-method problem on the merchant's side).
    Merchant,
    /// No one: a redelivery, or a customer still on Checkout's page who can retry there.
    Nobody,
}

/// Why an attempt did not take the money.
pub struct Reason<'a> {
    pub invoice_id: &'a str,
    /// The attempt (`pi_...`, or `attempt-N` when Stripe made no intent).
    pub attempt_ref: &'a str,
    pub message: &'a str,
    pub code: Option<&'a str>,
    pub decline_code: Option<&'a str>,
    pub advice_code: Option<&'a str>,
}

impl<'a> Reason<'a> {
    /// Stripe's refusal of an attempt, as the emails and transitions report it.
    pub fn of_failure(invoice_id: &'a str, attempt_ref: &'a str, f: &'a Failure) -> Self {
        Reason {
            invoice_id,
            attempt_ref,
            message: &f.error.message,
            code: f.error.code.as_deref(),
            decline_code: f.error.decline_code.as_deref(),
            advice_code: f.advice_code.as_deref(),
        }
    }
}

fn amount(rec: &InvoiceRecord) -> String {
    let value = money::to_decimal(&rec.currency, rec.outstanding())
        .unwrap_or_else(|_| rec.outstanding().to_string());
    format!("{} {value}", rec.currency)
}

fn message(to: Vec<String>, subject: String, text: String, key: String) -> Message {
    Message {
        to,
        cc: Vec::new(),
        subject,
        text_body: text,
        html_body: None,
        dedupe_key: key,
    }
}

/// Both emails of a declined payment.
pub fn payment_failed(
    m: &Merchant,
    rec: &InvoiceRecord,
    r: &Reason,
    pay_url: &str,
    tell: Tell,
) -> Result<(), PluginError> {
    if tell == Tell::Nobody {
        return Ok(());
    }
    let details = [
        ("code", r.code),
        ("decline code", r.decline_code),
        ("advice", r.advice_code),
    ]
    .iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}: {v}")))
    .collect::<Vec<_>>()
    .join(", ");
    if !m.notification_email.is_empty() {
        send_email(&message(
            vec![m.notification_email.clone()],
            format!("Payment failed: invoice {} ({})", rec.number, amount(rec)),
            format!(
                "The Stripe payment for invoice {} ({}) failed.\n\nStripe said: {}\n{}\n\nThe customer has been emailed the pay link to pay another way:\n{}\n\nStripe reference: {}\n",
                rec.number,
                amount(rec),
                r.message,
                details,
                pay_url,
                r.attempt_ref
            ),
            format!("payment-failed:{}:{}:merchant", r.invoice_id, r.attempt_ref),
        ))?;
    }
    if tell == Tell::Both && !rec.emails.is_empty() {
        send_email(&message(
            rec.emails.clone(),
            format!("Your payment for invoice {} did not go through", rec.number),
            format!(
                "We could not take the payment of {} for invoice {}: {}\n\nYou can pay with another card or method here:\n{}\n\nPayment reference: {}\n",
                amount(rec),
                rec.number,
                r.message,
                pay_url,
                r.attempt_ref
            ),
            format!("payment-failed:{}:{}:customer", r.invoice_id, r.attempt_ref),
        ))?;
    }
    Ok(())
}

/// The bank wants the customer to authenticate: the customer is asked to pay
/// on-session, and the merchant is told the auto-charge is waiting on them.
pub fn action_required(
    m: &Merchant,
    rec: &InvoiceRecord,
    invoice_id: &str,
    attempt_ref: &str,
    pay_url: &str,
    tell: Tell,
) -> Result<(), PluginError> {
    if tell == Tell::Nobody {
        return Ok(());
    }
    if !m.notification_email.is_empty() {
        send_email(&message(
            vec![m.notification_email.clone()],
            format!(
                "Customer authentication needed: invoice {} ({})",
                rec.number,
                amount(rec)
            ),
            format!(
                "The customer's bank asked them to confirm the payment of {} for invoice {}, so it could not be charged automatically.\n\nThey have been emailed the pay link to confirm it:\n{}\n\nStripe reference: {attempt_ref}\n",
                amount(rec),
                rec.number,
                pay_url
            ),
            format!("action-required:{invoice_id}:{attempt_ref}:merchant"),
        ))?;
    }
    if tell == Tell::Merchant || rec.emails.is_empty() {
        return Ok(());
    }
    send_email(&message(
        rec.emails.clone(),
        format!("Please confirm your payment for invoice {}", rec.number),
        format!(
            "Your bank asks you to confirm the payment of {} for invoice {}.\n\nPlease complete it here:\n{}\n\nPayment reference: {attempt_ref}\n",
            amount(rec),
            rec.number,
            pay_url
        ),
        format!("action-required:{invoice_id}:{attempt_ref}"),
    ))
}

/// What made money kept beyond what is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExcessCause<'a> {
    /// A payment arrived (its Stripe reference).
    Payment(&'a str),
    /// The platform stopped collection after money was taken.
    Stopped(crate::record::Stop),
    /// The amount due became this (minor units).
    NewAmount(u64),
}

impl ExcessCause<'_> {
    /// Names the cause in the email's dedupe key, so each is told once.
    fn key(self) -> String {
        match self {
            ExcessCause::Payment(r) => r.to_string(),
            ExcessCause::Stopped(s) => format!("stopped-{}", s.name()),
            ExcessCause::NewAmount(due) => format!("due-{due}"),
        }
    }

    fn sentence(self, currency: &str) -> String {
        use crate::record::Stop;
        match self {
            ExcessCause::Payment(r) => format!("payment {r} arrived"),
            ExcessCause::Stopped(Stop::Void) => "the invoice was voided".into(),
            ExcessCause::Stopped(Stop::PaidOutsideStripe) => {
                "the invoice was marked as paid outside Stripe".into()
            }
            ExcessCause::Stopped(Stop::Uncollectible) => "the invoice was written off".into(),
            ExcessCause::Stopped(Stop::NothingDue | Stop::StripeRemoved) => {
                "nothing is due through Stripe any more".into()
            }
            ExcessCause::NewAmount(due) => format!(
                "the amount due became {currency} {}",
                money::to_decimal(currency, due).unwrap_or_else(|_| due.to_string())
            ),
        }
    }
}

/// More money arrived than was due: the merchant is told what made the
/// excess, the payment that went over and how much to refund. The plugin
/// never refunds by itself.
pub fn overpaid(
    m: &Merchant,
    rec: &InvoiceRecord,
    over: &crate::contract::Overpayment,
    cause: ExcessCause,
    tell: Tell,
) -> Result<(), PluginError> {
    if tell == Tell::Nobody || m.notification_email.is_empty() {
        return Ok(());
    }
    send_email(&message(
        vec![m.notification_email.clone()],
        format!(
            "Overpaid: invoice {} received {} {} more than due",
            rec.number, over.excess.currency, over.excess.decimal
        ),
        format!(
            "Invoice {} has received {} {} in all, {} {} more than is due: {}.\n\nThe payment that went over: {} ({} {}).\nIf it was not intended, refund {} {} of it in your Stripe dashboard.\n",
            rec.number,
            over.total_paid.currency,
            over.total_paid.decimal,
            over.excess.currency,
            over.excess.decimal,
            cause.sentence(&rec.currency),
            over.stripe_ref,
            over.payment.currency,
            over.payment.decimal,
            over.excess.currency,
            over.excess.decimal,
        ),
        format!("overpaid:{}:{}", over.invoice_id, cause.key()),
    ))
}
