//! The customer's pay link (`GET /pay/{token}`): the page, or on to Checkout.

use super::reply::page;
use super::*;

impl App {
    /// The stable pay link: where the plugin says to go, or what to show.
    pub(crate) fn pay_link(&self, scope: &Scope, token: &str) -> anyhow::Result<Reply> {
        let brand = scope.settings.display_name.as_deref().unwrap_or_default();
        if let Some((invoice, st)) = self.records(scope).invoice_of_pay_link(token)?
            && !st.pay_link_open(self.now_ms() as u64, self.platform.pay_link_expiry_ms)
        {
            tracing::info!(invoice, "pay link revoked or expired; not opened");
            return Ok(page(PayView::NotFound.render(brand), None));
        }
        let outcome = match self
            .runtime
            .on_pay_link_opened(&scope.id, &scope.merchant, token)?
        {
            Err(e) => {
                tracing::warn!(error = %e.message(), "pay link unavailable");
                return Ok(page(PayView::Unavailable.render(brand), None));
            }
            Ok(o) => o,
        };
        if let Some(refused) = self.apply_or_503(scope, "pay link opened", &outcome.transitions)? {
            return Ok(refused);
        }
        let number = |id: &str| self.invoice_number(scope, id);
        let location = match &outcome.page {
            PayPage::Redirect(url) if !checkout_allowed(url, &self.platform.stripe_api_base) => {
                tracing::warn!(
                    "pay link: the plugin's redirect is not Stripe Checkout; not followed"
                );
                return Ok(page(PayView::Unavailable.render(brand), None));
            }
            PayPage::Redirect(url) => Some(url.clone()),
            _ => None,
        };
        let view_number;
        let view = match &outcome.page {
            PayPage::Redirect(url) => PayView::Redirecting { url },
            PayPage::Paid(p) => {
                view_number = number(&p.invoice_id)?;
                PayView::Paid {
                    invoice: &view_number,
                    paid: &p.total_paid,
                }
            }
            PayPage::Processing(n) => PayView::Processing { invoice: n },
            PayPage::NothingDue(c) => {
                view_number = number(&c.invoice_id)?;
                let why = match c.reason {
                    CollectionStop::PaidOutsideStripe => "it has been paid",
                    CollectionStop::Void => "it was cancelled",
                    CollectionStop::Uncollectible => "it is closed",
                    CollectionStop::NothingDue | CollectionStop::StripeRemoved => {
                        "nothing is due through this link"
                    }
                };
                PayView::NothingToPay {
                    invoice: &view_number,
                    why,
                }
            }
            PayPage::Refunded(s) => {
                view_number = number(&s.invoice_id)?;
                PayView::Refunded {
                    invoice: &view_number,
                    paid: &s.amount_paid,
                    refunded: &s.amount_refunded,
                }
            }
            PayPage::Disputed(s) => {
                view_number = number(&s.invoice_id)?;
                PayView::Disputed {
                    invoice: &view_number,
                }
            }
            PayPage::NotFound => PayView::NotFound,
            PayPage::Unavailable(n) => PayView::Paused { invoice: n },
        };
        Ok(page(view.render(brand), location))
    }
}

/// Where a pay link may send the customer: Stripe Checkout
/// (`https://checkout.stripe.com`), or, when the host is pointed at another
/// Stripe than Stripe's own (the emulator), that Stripe's origin, which
/// serves its Checkout page.
pub(crate) fn checkout_allowed(url: &str, stripe_api_base: &str) -> bool {
    let Ok(to) = url::Url::parse(url) else {
        return false;
    };
    let checkout = url::Url::parse("https://checkout.stripe.com").map(|u| u.origin());
    if checkout.is_ok_and(|c| c == to.origin()) {
        return true;
    }
    url::Url::parse(stripe_api_base)
        .is_ok_and(|base| base.host_str() != Some("api.stripe.com") && base.origin() == to.origin())
}
