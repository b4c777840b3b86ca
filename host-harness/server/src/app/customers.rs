//! The platform's customers (`PUT /customers/{id}`), with the plugin told of a change.

use super::reply::found;
use super::*;

impl App {
    pub(crate) fn put_customer(
        &self,
        scope: &Scope,
        id: &str,
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let doc: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Ok(Reply::error(
                    400,
                    "body must be a customer JSON object",
                    false,
                ));
            }
        };
        let parsed: PlatformCustomer = match serde_json::from_value(doc.clone()) {
            Ok(c) => c,
            Err(e) => return Ok(Reply::error(400, &format!("invalid customer: {e}"), false)),
        };
        let previous = self
            .records(scope)
            .parsed_customer(id)?
            .map(|p| p.to_wit(id));
        match self.runtime.on_customer_updated(
            &scope.id,
            &scope.merchant,
            &parsed.to_wit(id),
            previous.as_ref(),
        )? {
            Err(e) => Ok(Reply::plugin_error(&e)),
            Ok(transitions) => {
                self.records(scope).put_customer(id, &doc)?;
                if let Some(refused) = self.apply_or_503(scope, "customer updated", &transitions)? {
                    return Ok(refused);
                }
                Ok(found(self.records(scope).customer_view(id)?, "customer"))
            }
        }
    }
}
