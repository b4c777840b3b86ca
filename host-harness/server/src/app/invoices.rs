//! The platform's invoices: create, finalize (now or queued), update, and
//! dead letters queued again.

use super::reply::found;
use super::*;

impl App {
    pub(crate) fn create_invoice(&self, scope: &Scope, body: &[u8]) -> anyhow::Result<Reply> {
        let doc: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Ok(Reply::error(
                    400,
                    "body must be an invoice JSON object",
                    false,
                ));
            }
        };
        let parsed: PlatformInvoice = match serde_json::from_value(doc.clone()) {
            Ok(i) => i,
            Err(e) => return Ok(Reply::error(400, &format!("invalid invoice: {e}"), false)),
        };
        if !self.records(scope).insert_draft(&doc, &parsed.id)? {
            return Ok(Reply::error(
                409,
                &format!("invoice {} exists", parsed.id),
                false,
            ));
        }
        Ok(Reply {
            status: 201,
            ..found(self.records(scope).invoice_view(&parsed.id)?, "invoice")
        })
    }

    /// Sends the invoice. A failure that a retry can cure (a Stripe 429 or
    /// 5xx, a timeout) is also queued, so the work is done even if the
    /// platform never calls again: the answer is still the error (503, with
    /// `Retry-After`), marked `"queued": true`.
    pub(crate) fn finalize(&self, scope: &Scope, id: &str) -> anyhow::Result<Reply> {
        match self.finalize_now(scope, id)? {
            Finalized::Done => Ok(found(self.records(scope).invoice_view(id)?, "invoice")),
            Finalized::Missing => Ok(Reply::error(404, "no such invoice", false)),
            Finalized::Failed(e) if e.retryable() => {
                self.queue(scope, JobKind::Finalize, id, &e)?;
                let mut reply = Reply::plugin_error(&e);
                reply.body = serde_json::to_vec_pretty(&json!({
                    "error": {"message": e.message(), "retryable": true}, "queued": true,
                }))?;
                Ok(reply)
            }
            Finalized::Failed(e) => Ok(Reply::plugin_error(&e)),
        }
    }

    /// Runs `on-invoice-finalized` and stores what it decided.
    pub(crate) fn finalize_now(&self, scope: &Scope, id: &str) -> anyhow::Result<Finalized> {
        let Some((invoice, _)) = self.records(scope).parsed_invoice(id)? else {
            return Ok(Finalized::Missing);
        };
        let customer = self
            .records(scope)
            .parsed_customer(&invoice.customer_id)?
            .unwrap_or_default();
        let wit = invoice.to_wit(customer.to_wit(&invoice.customer_id));
        match self
            .runtime
            .on_invoice_finalized(&scope.id, &scope.merchant, &wit)?
        {
            Err(e) => Ok(Finalized::Failed(e)),
            Ok(transitions) => {
                self.records(scope).set_status_if(id, "DRAFT", "FINAL")?;
                if let Err(e) = self.apply(scope, "invoice finalized", &transitions) {
                    // Not stored: a retry (or the queue) recomputes the same transitions.
                    return Ok(Finalized::Failed(PluginError::HostUnavailable(format!(
                        "storing what the plugin decided: {e}"
                    ))));
                }
                Ok(Finalized::Done)
            }
        }
    }

    /// The platform changed a sent invoice: `{"change": "VOID" | "PAID_OUTSIDE_STRIPE"
    /// | "UNCOLLECTIBLE" | "OPEN", "amountDue": "200.00"}`. The plugin stops or
    /// re-prices collection; `amountDue` is kept on the invoice.
    pub(crate) fn update_invoice(
        &self,
        scope: &Scope,
        id: &str,
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let Some((_, _)) = self.records(scope).parsed_invoice(id)? else {
            return Ok(Reply::error(404, "no such invoice", false));
        };
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let Some(change) = v["change"].as_str().and_then(InvoiceChange::from_name) else {
            return Ok(Reply::error(
                400,
                "change must be OPEN, VOID, PAID_OUTSIDE_STRIPE or UNCOLLECTIBLE",
                false,
            ));
        };
        let amount_due = v["amountDue"].as_str().unwrap_or("0").to_string();
        let update = InvoiceUpdate {
            invoice_id: id.into(),
            change,
            amount_due: amount_due.clone(),
            refund: None,
        };
        match self
            .runtime
            .on_invoice_updated(&scope.id, &scope.merchant, &update)?
        {
            Err(e) => Ok(Reply::plugin_error(&e)),
            Ok(transitions) => {
                if v["amountDue"].is_string() {
                    self.records(scope).set_amount_due(id, &amount_due)?;
                }
                self.requeue_on_change(scope, id, change)?;
                if let Some(refused) = self.apply_or_503(scope, "invoice updated", &transitions)? {
                    return Ok(refused);
                }
                Ok(found(self.records(scope).invoice_view(id)?, "invoice"))
            }
        }
    }

    /// `POST /invoices/{id}/refunds` `{"refundId", "amount", "reason"}`: the
    /// platform refunds money paid through Stripe. The plugin may refund
    /// only this invoice's payments (the gate is given their PaymentIntents);
    /// what it refuses (too much, a dispute open) is a 422 before any
    /// request to Stripe. The same `refundId` again refunds nothing more.
    pub(crate) fn refund_invoice(
        &self,
        scope: &Scope,
        id: &str,
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let Some((_, state)) = self.records(scope).parsed_invoice(id)? else {
            return Ok(Reply::error(404, "no such invoice", false));
        };
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let reason = match v["reason"].as_str().unwrap_or("requested_by_customer") {
            "requested_by_customer" => RefundReason::RequestedByCustomer,
            "duplicate" => RefundReason::Duplicate,
            "fraudulent" => RefundReason::Fraudulent,
            _ => {
                return Ok(Reply::error(
                    400,
                    "reason must be requested_by_customer, duplicate or fraudulent",
                    false,
                ));
            }
        };
        if text("refundId").is_empty() || text("amount").is_empty() {
            return Ok(Reply::error(
                400,
                "a refund needs refundId and amount",
                false,
            ));
        }
        let update = InvoiceUpdate {
            invoice_id: id.into(),
            change: InvoiceChange::Refund,
            amount_due: String::new(),
            refund: Some(RefundRequest {
                refund_id: text("refundId"),
                amount: text("amount"),
                reason,
            }),
        };
        let payments: Vec<String> = state
            .payments
            .iter()
            .map(|p| p.stripe_ref.clone())
            .collect();
        let called = self
            .runtime
            .refund(&scope.id, &scope.merchant, &update, &payments)?;
        let transitions = match called {
            Err(e) => return Ok(Reply::plugin_error(&e)),
            Ok(t) => t,
        };
        if let Some(refused) = self.apply_or_503(scope, "invoice refunded", &transitions)? {
            return Ok(refused);
        }
        Ok(found(self.records(scope).invoice_view(id)?, "invoice"))
    }

    /// A finalize still queued must not send what the platform stopped; a
    /// reopened invoice whose send never completed (still a draft here) is
    /// queued to be sent, due now.
    pub(crate) fn requeue_on_change(
        &self,
        scope: &Scope,
        id: &str,
        change: InvoiceChange,
    ) -> anyhow::Result<()> {
        let db = &self.db;
        if !matches!(change, InvoiceChange::Open) {
            if db.cancel_job(&scope.id, JobKind::Finalize.name(), id)? {
                tracing::info!(
                    invoice = id,
                    "queued finalize cancelled: collection stopped"
                );
            }
            return Ok(());
        }
        let draft = self
            .records(scope)
            .parsed_invoice(id)?
            .is_some_and(|(_, st)| st.status == "DRAFT");
        if draft {
            let now = self.now_ms();
            db.enqueue_job(&crate::db::NewJob {
                merchant: &scope.id,
                kind: JobKind::Finalize.name(),
                subject: id,
                run_at_ms: now,
                created_ms: now,
                error: "reopened before its send completed",
                account: &scope.merchant.account_id,
            })?;
        }
        Ok(())
    }

    /// An operator queues a dead letter again, due now.
    pub(crate) fn retry_dead_letter(&self, scope: &Scope, id: &str) -> anyhow::Result<Reply> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(Reply::error(404, "no such dead letter", false));
        };
        let now = self.now_ms();
        if self.db.revive_dead_letter(&scope.id, id, now)? {
            Ok(Reply::json(200, &json!({"queued": true})))
        } else {
            Ok(Reply::error(404, "no such dead letter", false))
        }
    }

    /// The number the platform shows for an invoice (its id if unknown).
    pub(crate) fn invoice_number(&self, scope: &Scope, invoice_id: &str) -> anyhow::Result<String> {
        Ok(self
            .records(scope)
            .parsed_invoice(invoice_id)?
            .map_or_else(|| invoice_id.to_string(), |(i, _)| i.invoice_number))
    }
}
