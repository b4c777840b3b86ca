//! Every request's way in: the listener's checks (`access`), then the route
//! by method and path, unscoped or under `/merchants/{id}/…`.

use super::card_page::CardAction;
use super::reply::found;
use super::*;

impl App {
    /// A request from the network: checked for its listener, `Host`, body
    /// type and token (`access`), then handled. A refused one runs nothing.
    pub fn handle_at(
        &self,
        doorway: &Doorway,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        match self.admit(doorway, method, target, headers, body.len()) {
            Ok(()) => self.durably(self.handle(method, target, headers, body)),
            Err(refusal) => {
                let listener = match doorway.door {
                    Door::Public => "public",
                    Door::Platform => "platform",
                };
                let segments = segments_of(target);
                tracing::info!(
                    method,
                    route = loggable_route(&segments),
                    listener,
                    status = refusal.status(),
                    reason = refusal.name(),
                    "refused"
                );
                let metrics = &self.metrics;
                metrics.refused_request(listener, refusal.name());
                let mut reply = Reply::error(refusal.status(), refusal.message(), false);
                if refusal == Refusal::Unauthenticated {
                    reply
                        .headers
                        .push(("WWW-Authenticate".into(), "Bearer".into()));
                }
                reply
            }
        }
    }

    /// `reply` once what its request wrote is on disk (group commit: see
    /// `db::group_sync`); a 503 when the store cannot say so, since a 2xx
    /// would promise what a power loss could take back.
    fn durably(&self, reply: Reply) -> Reply {
        match self.db.make_durable() {
            Ok(()) => reply,
            Err(e) => {
                tracing::error!(error = %e, "making the request's writes durable");
                Reply::error(503, "storage unavailable", true)
            }
        }
    }

    pub(crate) fn admit(
        &self,
        doorway: &Doorway,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body_len: usize,
    ) -> Result<(), Refusal> {
        let segments = segments_of(target);
        let asked = Asked {
            method,
            segments: &segments,
            headers,
            body_len,
        };
        let Audience::Platform(owner) = access::precheck(doorway.door, &asked, &doorway.hosts)?
        else {
            return Ok(());
        };
        let grant = match asked.bearer().map(|t| self.tokens().verify(t)) {
            Some(Ok(Some(grant))) => grant,
            Some(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "reading the platform's tokens");
                return Err(Refusal::Unauthenticated);
            }
            _ => return Err(Refusal::Unauthenticated),
        };
        if grant.covers(owner, &self.platform.default_merchant) {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    }

    /// A request, routed: the in-process entry, whose caller is the platform
    /// itself (tests, an embedding host). Over the network every request
    /// goes through `handle_at` first.
    pub fn handle(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        let started = std::time::Instant::now();
        let segments = segments_of(target);
        let span = tracing::info_span!(
            "request",
            merchant = Empty,
            invoice = Empty,
            event = Empty,
            event_type = Empty,
            outcome = Empty,
        );
        let _in_span = span.enter();
        let reply = self.route(method, &segments, headers, body);
        // A webhook's outcome is its own (applied, ignored ...); the rest say
        // what their status says.
        if segments != ["webhooks", "stripe"] {
            span.record(
                "outcome",
                match reply.status {
                    200..=399 => "ok",
                    400..=499 => "refused",
                    _ => "failed",
                },
            );
        }
        let route = loggable_route(&segments);
        let elapsed_us = started.elapsed().as_micros() as u64;
        // Probes are polled often: their lines are debug.
        if matches!(segments.as_slice(), ["healthz"] | ["metrics"]) {
            tracing::debug!(method, route, status = reply.status, elapsed_us, "handled");
        } else {
            tracing::info!(method, route, status = reply.status, elapsed_us, "handled");
        }
        reply
    }

    pub(crate) fn route(
        &self,
        method: &str,
        segments: &[&str],
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        let result = match (method, segments) {
            ("POST", ["webhooks", "stripe"]) => self.webhook(headers, body),
            ("GET", ["healthz"]) => Ok(Reply::json(200, &json!({"ok": true}))),
            ("GET", ["metrics"]) => self.metrics_page(),
            ("PUT", ["merchants", id]) => self.put_merchant(id, body),
            ("GET", ["merchants", id]) => self.merchant_view(id),
            (_, ["merchants", id, rest @ ..]) => match self.scope(id) {
                Ok(Some(scope)) => self.scoped(&scope, method, rest, body),
                Ok(None) => Ok(Reply::error(404, &format!("no such merchant {id}"), false)),
                Err(e) => Err(e),
            },
            (_, rest) => self
                .default_scope()
                .and_then(|scope| self.scoped(&scope, method, rest, body)),
        };
        result.unwrap_or_else(|e| {
            tracing::error!(error = %format!("{e:#}"), "host error");
            Reply::error(500, "host error", true)
        })
    }

    /// The platform's routes for one merchant: `/merchants/{id}/…`, or
    /// unscoped for the default merchant.
    pub(crate) fn scoped(
        &self,
        scope: &Scope,
        method: &str,
        route: &[&str],
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let span = tracing::Span::current();
        span.record("merchant", scope.id.as_str());
        if let ["invoices", id, ..] = route {
            span.record("invoice", *id);
        }
        let reads_only = method == "GET" && !matches!(route, ["pay", _]);
        if !reads_only && !matches!(route, ["onboarding"]) && !scope.connected(&self.platform) {
            return Ok(Reply::error(
                409,
                &format!(
                    "merchant {} has no connected Stripe account yet: POST /merchants/{}/onboarding first",
                    scope.id, scope.id
                ),
                false,
            ));
        }
        match (method, route) {
            ("PUT", ["customers", id]) => self.put_customer(scope, id, body),
            ("GET", ["customers", id]) => self
                .records(scope)
                .customer_view(id)
                .map(|c| found(c, "customer")),
            ("POST", ["invoices"]) => self.create_invoice(scope, body),
            ("POST", ["invoices", id, "finalize"]) => self.finalize(scope, id),
            ("PATCH", ["invoices", id]) => self.update_invoice(scope, id, body),
            ("POST", ["invoices", id, "refunds"]) => self.refund_invoice(scope, id, body),
            ("GET", ["invoices", id]) => self
                .records(scope)
                .invoice_view(id)
                .map(|i| found(i, "invoice")),
            ("GET", ["pay", token]) => self.pay_link(scope, token),
            ("GET", ["billing", cus, tag]) => self.card_link(scope, cus, tag, CardAction::ShowPage),
            ("POST", ["billing", cus, tag, "replace-card"]) => {
                self.card_link(scope, cus, tag, CardAction::ReplaceCard)
            }
            ("POST", ["invoices", id, "pay-link", "revoke"]) => {
                if self.records(scope).revoke_pay_link(id)? {
                    Ok(found(self.records(scope).invoice_view(id)?, "invoice"))
                } else {
                    Ok(Reply::error(404, "no such invoice", false))
                }
            }
            ("POST", ["onboarding"]) => self.onboarding(scope, body),
            ("GET", ["onboarding", "done"]) => Ok(onboarding_page(scope, OnboardingView::Returned)),
            ("GET", ["onboarding", "refresh"]) => {
                Ok(onboarding_page(scope, OnboardingView::LinkExpired))
            }
            ("GET", ["accounts", id]) => self
                .records(scope)
                .account_view(id)
                .map(|a| found(a, "account")),
            ("GET", ["outbox"]) => self
                .records(scope)
                .outbox(&scope.id)
                .map(|o| Reply::json(200, &json!({"data": o}))),
            ("GET", ["dead-letters"]) => {
                let dead = self.db.dead_letters(&scope.id)?;
                Ok(Reply::json(200, &json!({"data": dead})))
            }
            ("POST", ["dead-letters", id, "retry"]) => self.retry_dead_letter(scope, id),
            _ => Ok(Reply::error(404, "no such route", false)),
        }
    }

    /// `/metrics`, with the queue's depth and age read from the store now.
    pub(crate) fn metrics_page(&self) -> anyhow::Result<Reply> {
        let now = self.now_ms();
        let (depth, oldest_ms) = self.db.queue_stats(now)?;
        self.metrics
            .set_queue(depth, oldest_ms, self.db.dead_letter_count()?);
        self.metrics
            .set_collections(self.db.queued_of_kind(crate::db::COLLECT_JOB)?);
        Ok(Reply {
            status: 200,
            headers: vec![("Content-Type".into(), crate::metrics::CONTENT_TYPE.into())],
            body: self.metrics.render().into_bytes(),
        })
    }
}

/// The route for the log: a pay-link token, and a card page's customer and
/// tag, are the customer's bearer credentials, so they are never written down.
pub(crate) fn loggable_route(segments: &[&str]) -> String {
    let mut out = String::new();
    let mut hidden: u8 = 0;
    for s in segments {
        out.push('/');
        out.push_str(if hidden > 0 { "{token}" } else { s });
        hidden = match *s {
            "pay" => 1,
            "billing" => 2,
            _ => hidden.saturating_sub(1),
        };
    }
    out
}

/// A target's path, in segments (the query dropped).
pub(crate) fn segments_of(target: &str) -> Vec<&str> {
    let path = target.split('?').next().unwrap_or(target);
    path.trim_matches('/').split('/').collect()
}

/// A page Stripe sends the merchant back to from an Account Link.
fn onboarding_page(scope: &Scope, view: OnboardingView) -> Reply {
    let brand = scope.settings.display_name.as_deref().unwrap_or_default();
    super::reply::page(view.render(brand), None)
}
