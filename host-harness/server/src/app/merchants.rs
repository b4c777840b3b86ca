//! Merchants as data (`PUT`/`GET /merchants/{id}`) and Connect onboarding.

use super::*;

impl App {
    pub(crate) fn put_merchant(&self, id: &str, body: &[u8]) -> anyhow::Result<Reply> {
        let stored = MerchantSettings::parse(body).and_then(|s| self.merchants().put(id, &s));
        match stored {
            Ok(()) => self.merchant_view(id),
            Err(PutError::Storage(e)) => Err(e),
            Err(e @ PutError::AccountTaken(_)) => Ok(Reply::error(409, &e.to_string(), false)),
            Err(e @ PutError::Invalid(_)) => Ok(Reply::error(400, &e.to_string(), false)),
        }
    }

    /// The merchant's settings, with what Stripe said of its account.
    pub(crate) fn merchant_view(&self, id: &str) -> anyhow::Result<Reply> {
        let Some(scope) = self.scope(id)? else {
            return Ok(Reply::error(404, &format!("no such merchant {id}"), false));
        };
        let mut view = serde_json::to_value(&scope.settings)?;
        let account = match scope.settings.account() {
            Some(a) => self.records(&scope).account_view(a)?,
            None => None,
        };
        let flag = |k: &str| account.as_ref().is_some_and(|a| a[k] == true);
        view["id"] = id.into();
        view["chargesEnabled"] = flag("chargesEnabled").into();
        view["detailsSubmitted"] = flag("detailsSubmitted").into();
        view["payLinkBase"] = scope.merchant.pay_link_base.clone().into();
        Ok(Reply::json(200, &view))
    }

    /// Creates the merchant's connected account (once: a merchant that has
    /// one gets a fresh link for it), stores it on the merchant, and returns
    /// the Account Link. The reference Stripe keeps is the merchant's id.
    pub(crate) fn onboarding(&self, scope: &Scope, body: &[u8]) -> anyhow::Result<Reply> {
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        // The platform-wide idempotency key of the account's creation is
        // made from this reference: it is the merchant's id, never the
        // caller's choice (security review S17).
        if v.get("merchantRef").is_some_and(|r| r != scope.id.as_str()) {
            return Ok(Reply::error(
                400,
                "merchantRef is the merchant's id and cannot be chosen",
                false,
            ));
        }
        let base = &scope.merchant.pay_link_base;
        let req = OnboardingRequest {
            merchant_ref: scope.id.clone(),
            email: field("email"),
            country: field("country"),
            refresh_url: format!("{base}/onboarding/refresh"),
            return_url: format!("{base}/onboarding/done"),
        };
        let o = match self
            .runtime
            .start_onboarding(&scope.id, &scope.merchant, &req)?
        {
            Err(e) => return Ok(Reply::plugin_error(&e)),
            Ok(o) => o,
        };
        if scope.id != self.platform.default_merchant && scope.settings.account().is_none() {
            let settings = MerchantSettings {
                account_id: Some(o.account_id.clone()),
                ..scope.settings.clone()
            };
            match self.merchants().put(&scope.id, &settings) {
                Ok(()) => {}
                Err(PutError::Storage(e)) => return Err(e),
                Err(e) => return Ok(Reply::error(409, &e.to_string(), false)),
            }
        }
        Ok(Reply::json(
            200,
            &json!({"accountId": o.account_id, "url": o.url, "expiresAt": o.expires_at}),
        ))
    }
}
