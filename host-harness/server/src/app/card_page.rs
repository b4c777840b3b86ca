//! The customer's card page (`GET /billing/{cus}/{tag}`): the invoices still
//! to pay, and "Replace your card" (`POST …/replace-card`, a form, so that a
//! link preview opens nothing), which goes on to a
//! Checkout Session in `setup` mode that the plugin opens. Public: the tag
//! is the MAC of the merchant's account and the customer under the
//! merchant's pay-link key, checked here before anything is read.

use super::pay_link::checkout_allowed;
use super::reply::page;
use super::*;
use crate::pages::{CardPageView, OpenInvoice};
use anyhow::Result;

/// What a valid card-page link asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CardAction {
    /// `GET /billing/{cus}/{tag}`: the page.
    ShowPage,
    /// `POST /billing/{cus}/{tag}/replace-card`: on to Checkout in setup mode.
    ReplaceCard,
}

impl App {
    /// Whether `tag` (hex) is this merchant's link for `stripe_customer`.
    fn card_link_valid(&self, scope: &Scope, stripe_customer: &str, tag: &str) -> bool {
        let Ok(tag) = hex::decode(tag) else {
            return false;
        };
        let message =
            host_runtime::keys::card_page_message(&scope.merchant.account_id, stripe_customer);
        tag.len() == 32
            && host_runtime::keys::pay_link_tag_valid(
                &*self.runtime.env().keys,
                &scope.id,
                &message,
                &tag,
            )
    }

    /// A card-page route: the not-found page unless `tag` is this
    /// merchant's link for `stripe_customer` (nothing else is read or called
    /// before that), else `action`.
    pub(crate) fn card_link(
        &self,
        scope: &Scope,
        stripe_customer: &str,
        tag: &str,
        action: CardAction,
    ) -> anyhow::Result<Reply> {
        let brand = scope.settings.display_name.as_deref().unwrap_or_default();
        if !self.card_link_valid(scope, stripe_customer, tag) {
            return Ok(page(PayView::NotFound.render(brand), None));
        }
        match action {
            CardAction::ShowPage => self.card_page(scope, brand, stripe_customer, tag),
            CardAction::ReplaceCard => self.replace_card(scope, brand, stripe_customer, tag),
        }
    }

    /// The page: what is still to pay, and "Replace your card".
    fn card_page(&self, scope: &Scope, brand: &str, cus: &str, tag: &str) -> Result<Reply> {
        let invoices: Vec<OpenInvoice> = self
            .records(scope)
            .unpaid_invoices_of(cus)?
            .into_iter()
            .map(|(inv, st)| OpenInvoice {
                amount: crate::pages::format_amount(&inv.amount_due, &inv.currency),
                state: match st.status.as_str() {
                    "PAYMENT_FAILED" => "payment failed",
                    "ACTION_REQUIRED" => "needs your confirmation",
                    "PARTIALLY_PAID" => "partly paid",
                    _ => "due",
                },
                pay: st.payment_link.unwrap_or_default(),
                number: inv.invoice_number,
            })
            .collect();
        let replace_href = format!("{tag}/replace-card");
        let view = CardPageView {
            invoices: &invoices,
            replace_href: &replace_href,
        };
        Ok(page(view.render(brand), None))
    }

    /// "Replace your card": on to the setup-mode Checkout the plugin opens.
    fn replace_card(&self, scope: &Scope, brand: &str, cus: &str, tag: &str) -> Result<Reply> {
        let link = format!("{cus}/{tag}");
        let outcome = match self
            .runtime
            .on_pay_link_opened(&scope.id, &scope.merchant, &link)?
        {
            Err(e) => {
                tracing::warn!(error = %e.message(), "card page: replacing the card is unavailable");
                return Ok(page(PayView::Unavailable.render(brand), None));
            }
            Ok(o) => o,
        };
        Ok(match outcome.page {
            PayPage::Redirect(url) if checkout_allowed(&url, &self.platform.stripe_api_base) => {
                page(
                    PayView::Redirecting { url: &url }.render(brand),
                    Some(url.clone()),
                )
            }
            PayPage::NotFound => page(PayView::NotFound.render(brand), None),
            _ => page(PayView::Unavailable.render(brand), None),
        })
    }
}
