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

/// What dunning does after a declined off-session charge, for both emails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retrying {
    /// Nothing (a hard decline, Checkout, or no schedule).
    No,
    /// The card is charged again on this day (Unix ms).
    On(u64),
    /// That was the last retry.
    GaveUp,
}

impl Retrying {
    fn for_merchant(self) -> String {
        match self {
            Retrying::No => String::new(),
            Retrying::On(ms) => format!(
                "\nThe card on file is charged again on {} (UTC) unless paid before.\n",
                date_of(ms)
            ),
            Retrying::GaveUp => "\nThat was the last retry of the card on file.\n".into(),
        }
    }

    fn for_customer(self) -> String {
        match self {
            Retrying::On(ms) => format!(
                "\nWe will try your card again on {} (UTC), or pay now with the link above.\n",
                date_of(ms)
            ),
            Retrying::No | Retrying::GaveUp => String::new(),
        }
    }
}

/// `YYYY-MM-DD` (UTC) of Unix milliseconds (Howard Hinnant's civil_from_days).
pub fn date_of(ms: u64) -> String {
    let days = i64::try_from(ms / 86_400_000).unwrap_or(0);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The merchant's Stripe account was restricted: one email per
/// restriction, with a fresh Account Link to finish what Stripe asks.
pub fn account_restricted(
    m: &Merchant,
    account: &str,
    past_due: &[String],
    link: &str,
    episode: u32,
) -> Result<(), PluginError> {
    if m.notification_email.is_empty() {
        return Ok(());
    }
    let needs = if past_due.is_empty() {
        "Stripe has disabled charges on the account.".to_string()
    } else {
        format!("Stripe needs: {}.", past_due.join(", "))
    };
    send_email(&message(
        vec![m.notification_email.clone()],
        "Stripe restricted your account: payments are paused".into(),
        format!(
            "Stripe restricted your account {account}. {needs}\n\nUntil then no card is charged and pay links say payment is unavailable; collection resumes by itself when Stripe enables charges.\n\nFinish it here (valid a few minutes; onboarding again gives a new link):\n{link}\n"
        ),
        format!("account-restricted:{account}:{episode}"),
    ))
}

/// Both emails of a declined payment.
pub fn payment_failed(
    m: &Merchant,
    rec: &InvoiceRecord,
    r: &Reason,
    links: (&str, Option<&str>),
    tell: Tell,
    retrying: Retrying,
) -> Result<(), PluginError> {
    let (pay_url, card_page) = links;
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
                "The Stripe payment for invoice {} ({}) failed.\n\nStripe said: {}\n{}\n\nThe customer has been emailed the pay link to pay another way:\n{}\n{}\nStripe reference: {}\n",
                rec.number,
                amount(rec),
                r.message,
                details,
                pay_url,
                retrying.for_merchant(),
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
                "We could not take the payment of {} for invoice {}: {}\n\nYou can pay with another card or method here:\n{}\n{}{}\nPayment reference: {}\n",
                amount(rec),
                rec.number,
                r.message,
                pay_url,
                card_page.map_or(String::new(), |u| format!(
                    "\nTo replace the card we charge automatically (your unpaid invoices are then charged to it):\n{u}\n"
                )),
                retrying.for_customer(),
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
