//! The pages a merchant's customer sees behind a pay link: rendered from one
//! template (`templates/pay-page.html`, minijinja, which escapes everything
//! that comes from data in an `.html` template), branded with the merchant's
//! display name, amounts formatted for their currency.

use crate::bindings::Money;
use serde::Serialize;

const TEMPLATE: &str = include_str!("../templates/pay-page.html");

/// What the customer is shown.
pub enum PayView<'a> {
    /// On the way to Stripe Checkout (a 303; the page is for clients that
    /// do not follow it).
    Redirecting {
        url: &'a str,
    },
    Paid {
        invoice: &'a str,
        paid: &'a Money,
    },
    Processing {
        invoice: &'a str,
    },
    NothingToPay {
        invoice: &'a str,
        why: &'a str,
    },
    Refunded {
        invoice: &'a str,
        paid: &'a Money,
        refunded: &'a Money,
    },
    Disputed {
        invoice: &'a str,
    },
    NotFound,
    /// The plugin or Stripe is unavailable now.
    Unavailable,
    /// The merchant's Stripe account cannot take payments now (restricted).
    Paused {
        invoice: &'a str,
    },
}

#[derive(Serialize)]
struct Row {
    label: &'static str,
    value: String,
}

#[derive(Serialize)]
struct Action<'a> {
    href: &'a str,
    label: &'static str,
    via: Via,
}

/// How a page's action is taken: a link to follow, or a form to post (an
/// action that makes something, which a link preview must not take).
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Via {
    Link,
    FormPost,
}

#[derive(Serialize)]
struct PageData<'a> {
    lang: &'static str,
    merchant: &'a str,
    title: &'static str,
    rows: Vec<Row>,
    message: String,
    action: Option<Action<'a>>,
    /// The card page's list of invoices still to pay.
    invoices: &'a [OpenInvoice],
}

/// An invoice still to pay, as the customer's card page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct OpenInvoice {
    pub number: String,
    /// Formatted for its currency (`£1,200.00`).
    pub amount: String,
    /// What is true of it, in the customer's words.
    pub state: &'static str,
    /// Its pay link.
    pub pay: String,
}

/// A rendered page and the HTTP status it goes with.
pub struct Rendered {
    pub status: u16,
    pub html: String,
}

impl PayView<'_> {
    fn status(&self) -> u16 {
        match self {
            PayView::Redirecting { .. } => 303,
            PayView::NotFound => 404,
            PayView::Unavailable | PayView::Paused { .. } => 503,
            _ => 200,
        }
    }

    fn data<'m>(&'m self, merchant: &'m str) -> PageData<'m> {
        let invoice_row = |number: &str| Row {
            label: "Invoice",
            value: number.to_string(),
        };
        let seller = if merchant.is_empty() {
            "The merchant"
        } else {
            merchant
        };
        let (title, rows, message, action) = match self {
            PayView::Redirecting { url } => (
                "Redirecting to secure payment",
                vec![],
                "You are being taken to Stripe's secure payment page.".to_string(),
                Some(Action {
                    href: url,
                    label: "Continue to payment",
                    via: Via::Link,
                }),
            ),
            PayView::Paid { invoice, paid } => (
                "Payment successful",
                vec![
                    invoice_row(invoice),
                    Row {
                        label: "Paid",
                        value: format_money(paid),
                    },
                ],
                format!("Thank you. {seller} has received your payment."),
                None,
            ),
            PayView::Processing { invoice } => (
                "Payment processing",
                vec![invoice_row(invoice)],
                "Your payment is on its way. There is nothing more to do.".to_string(),
                None,
            ),
            PayView::NothingToPay { invoice, why } => (
                "Nothing to pay",
                vec![invoice_row(invoice)],
                format!("There is nothing to pay for this invoice: {why}."),
                None,
            ),
            PayView::Refunded {
                invoice,
                paid,
                refunded,
            } => (
                "Payment refunded",
                vec![
                    invoice_row(invoice),
                    Row {
                        label: "Paid",
                        value: format_money(paid),
                    },
                    Row {
                        label: "Refunded",
                        value: format_money(refunded),
                    },
                ],
                if refunded.minor < paid.minor {
                    format!(
                        "{} of this payment has been refunded.",
                        format_money(refunded)
                    )
                } else {
                    "This payment has been refunded in full.".to_string()
                },
                None,
            ),
            PayView::Disputed { invoice } => (
                "Payment disputed",
                vec![invoice_row(invoice)],
                format!("The payment is disputed with your bank. Please contact {seller}."),
                None,
            ),
            PayView::NotFound => (
                "Link not found",
                vec![],
                "This payment link does not exist. Please check it, or contact the merchant."
                    .to_string(),
                None,
            ),
            PayView::Unavailable => (
                "Payment unavailable",
                vec![],
                "Payment is not available right now. Please try again in a moment.".to_string(),
                None,
            ),
            PayView::Paused { invoice } => (
                "Payment unavailable",
                vec![Row {
                    label: "Invoice",
                    value: invoice.to_string(),
                }],
                "Card payment for this invoice is not available right now. The merchant has been told; please try again later, or pay by the bank details on the invoice."
                    .to_string(),
                None,
            ),
        };
        PageData {
            lang: "en",
            merchant,
            title,
            rows,
            message,
            action,
            invoices: &[],
        }
    }

    /// The page for `merchant` (its display name; empty: none shown).
    pub fn render(&self, merchant: &str) -> Rendered {
        render(self.status(), &self.data(merchant))
    }
}

/// Where Stripe sends a merchant back from an Account Link
/// (https://docs.stripe.com/api/account_links/create): its `return_url`
/// and its `refresh_url`. Neither says whether onboarding is complete;
/// `account.updated` does, and the platform shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnboardingView {
    /// `return_url`: the merchant left Stripe's onboarding, done or not.
    Returned,
    /// `refresh_url`: the link expired or was already used. A new one is
    /// made by the platform, which knows who is asking; this page cannot.
    LinkExpired,
}

impl OnboardingView {
    pub fn render(self, merchant: &str) -> Rendered {
        let (title, message) = match self {
            OnboardingView::Returned => (
                "Details sent to Stripe",
                "Stripe has what you entered. If it needs more, your billing platform will say so and give you a new link. You can close this page.",
            ),
            OnboardingView::LinkExpired => (
                "Onboarding link expired",
                "This Stripe onboarding link has expired or was already used. Open Stripe onboarding again from your billing platform to get a new one.",
            ),
        };
        let data = PageData {
            lang: "en",
            merchant,
            title,
            rows: Vec::new(),
            message: message.to_string(),
            action: None,
            invoices: &[],
        };
        render(200, &data)
    }
}

/// The customer's card page (`/billing/{cus}/{tag}`): the invoices still to
/// pay, each with its pay link, and "Replace your card".
pub struct CardPageView<'a> {
    pub invoices: &'a [OpenInvoice],
    /// Where "Replace your card" posts to (relative to the page).
    pub replace_href: &'a str,
}

impl CardPageView<'_> {
    pub fn render(&self, merchant: &str) -> Rendered {
        let seller = if merchant.is_empty() {
            "The merchant"
        } else {
            merchant
        };
        let owed = if self.invoices.is_empty() {
            "You have no invoices to pay.".to_string()
        } else {
            "Pay any of these now, or replace your card: the new card is then charged for the invoices whose payment failed.".to_string()
        };
        let data = PageData {
            lang: "en",
            merchant,
            title: "Your invoices and card",
            rows: Vec::new(),
            message: format!(
                "{owed} {seller} charges the card you save here automatically when it sends an invoice."
            ),
            action: Some(Action {
                href: self.replace_href,
                label: "Replace your card",
                via: Via::FormPost,
            }),
            invoices: self.invoices,
        };
        render(200, &data)
    }
}

fn render(status: u16, data: &PageData<'_>) -> Rendered {
    let mut env = minijinja::Environment::new();
    let html = env
        .add_template("pay-page.html", TEMPLATE)
        .and_then(|()| env.get_template("pay-page.html"))
        .and_then(|t| t.render(minijinja::value::Serde(data)))
        // The template is fixed and checked by the tests; this is a
        // last resort that still escapes nothing from data.
        .unwrap_or_else(|_| "<!doctype html><title>Payment</title><p>Please try again.</p>".into());
    Rendered { status, html }
}

/// An amount as a customer reads it: `£1,200.00`, `¥5,000`, `KWD 5.124`.
/// `decimal` already has the currency's own number of decimals.
pub fn format_money(m: &Money) -> String {
    format_amount(&m.decimal, &m.currency)
}

/// `decimal` (in `currency`'s own number of decimals) as a customer reads it.
pub fn format_amount(decimal: &str, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    let (whole, fraction) = match decimal.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (decimal, None),
    };
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if let Some(f) = fraction {
        grouped.push('.');
        grouped.push_str(f);
    }
    match code.as_str() {
        "GBP" => format!("£{grouped}"),
        "USD" => format!("${grouped}"),
        "EUR" => format!("€{grouped}"),
        "JPY" => format!("¥{grouped}"),
        _ => format!("{code} {grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(decimal: &str, currency: &str) -> Money {
        Money {
            minor: 0,
            decimal: decimal.into(),
            currency: currency.into(),
        }
    }

    #[test]
    fn amounts_read_as_in_their_currency() {
        assert_eq!(format_money(&money("1200.00", "GBP")), "£1,200.00");
        assert_eq!(format_money(&money("5000", "JPY")), "¥5,000");
        assert_eq!(format_money(&money("5.124", "KWD")), "KWD 5.124");
        assert_eq!(format_money(&money("1234567.89", "usd")), "$1,234,567.89");
        assert_eq!(format_money(&money("999.00", "EUR")), "€999.00");
        assert_eq!(format_money(&money("0.50", "CHF")), "CHF 0.50");
    }

    #[test]
    fn every_page_names_the_merchant_is_in_english_and_escapes_data() {
        let paid = money("1200.00", "GBP");
        let name = "Acme <script>alert(1)</script> & Sons";
        let page = PayView::Paid {
            invoice: "INV-<b>1</b>",
            paid: &paid,
        }
        .render(name);
        assert_eq!(page.status, 200);
        assert!(page.html.contains(r#"<html lang="en">"#));
        assert!(page.html.contains("name=\"viewport\""));
        assert!(page.html.contains("£1,200.00"));
        assert!(
            page.html
                .contains("Acme &lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; Sons"),
            "{}",
            page.html
        );
        assert!(!page.html.contains("<script>"));
        assert!(!page.html.contains("<b>1</b>"));
        let redirect = PayView::Redirecting {
            url: "https://checkout.stripe.com/c/pay/cs_test_1\"><x",
        }
        .render("");
        assert_eq!(redirect.status, 303);
        assert!(redirect.html.contains("Continue to payment"));
        assert!(!redirect.html.contains("\"><x"));
        assert_eq!(PayView::NotFound.render("Acme").status, 404);
        assert_eq!(PayView::Unavailable.render("Acme").status, 503);
    }
}
