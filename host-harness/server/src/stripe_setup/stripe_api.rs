//! The few Stripe requests `stripe-setup` makes itself, as the platform,
//! with the host's key: list, create, update and delete webhook endpoints.
//! A POST carries an idempotency key kept across its retries, as Stripe's
//! SDKs do; a lost answer, a 429 or a 5xx is tried again twice.
//! https://docs.stripe.com/api/idempotent_requests
//!
//! With `--record-http` each request is recorded as serve records the
//! plugin's, without `Authorization`, and without Stripe's answer: a new
//! endpoint's answer carries its signing secret.

use super::plan::{Existing, Role, TAG};
use crate::bindings::billing::stripe_plugin::http::{HttpError, Method, Request, Response};
use crate::imports::{HttpBackend, UreqBackend};
use crate::record::{Exchange, Recorder};
use anyhow::{Result, bail};
use serde_json::Value;
use std::time::Duration;

pub struct StripeApi {
    base: String,
    key: String,
    api_version: String,
    backend: UreqBackend,
    /// Makes this run's idempotency keys its own.
    run: String,
    recorder: Recorder,
}

impl StripeApi {
    pub fn new(
        base: &str,
        key: &str,
        api_version: &str,
        timeout: Duration,
        recorder: Recorder,
    ) -> Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
            api_version: api_version.to_string(),
            backend: UreqBackend::new(timeout),
            run: hex::encode(crate::tokens::random_bytes::<8>()?),
            recorder,
        })
    }

    /// Every webhook endpoint of the platform, with which are ours.
    pub fn endpoints(&self, secret_known: impl Fn(&str) -> bool) -> Result<Vec<Existing>> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = "/v1/webhook_endpoints?limit=100".to_string();
            if let Some(id) = &after {
                path.push_str(&format!("&starting_after={id}"));
            }
            let page = self.send(Method::Get, &path, &[], "")?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            after = data
                .last()
                .and_then(|e| e["id"].as_str())
                .map(str::to_string);
            all.extend(data.iter().map(|e| existing(e, &secret_known)));
            if page["has_more"] != true || after.is_none() {
                return Ok(all);
            }
        }
    }

    pub fn post(&self, path: &str, form: &[(String, String)], purpose: &str) -> Result<Value> {
        self.send(Method::Post, path, form, purpose)
    }

    pub fn delete(&self, path: &str) -> Result<Value> {
        self.send(Method::Delete, path, &[], "")
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        form: &[(String, String)],
        purpose: &str,
    ) -> Result<Value> {
        let mut headers = vec![
            ("Authorization".to_string(), format!("Bearer {}", self.key)),
            ("Stripe-Version".to_string(), self.api_version.clone()),
        ];
        let mut body = Vec::new();
        if matches!(method, Method::Post) {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
            headers.push((
                "Idempotency-Key".into(),
                format!("stripe-setup:{}:{purpose}", self.run),
            ));
            body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish()
                .into_bytes();
        }
        let request = Request {
            method,
            url: format!("{}{path}", self.base),
            headers,
            body,
        };
        let what = format!("{} {path}", method.as_str());
        for attempt in 0..3u64 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(attempt));
            }
            let sent = self.backend.send(&request);
            self.record(&request, &sent);
            let answer = match sent {
                Ok(answer) => answer,
                Err(HttpError::Timeout | HttpError::Connection(_)) => continue,
                Err(e) => bail!("{what}: {}", describe(&e)),
            };
            let status = answer.status;
            if status == 429 || status >= 500 {
                continue;
            }
            let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            if !(200..300).contains(&status) {
                let message = json["error"]["message"].as_str().unwrap_or("no message");
                bail!("{what}: Stripe answered {status}: {message}");
            }
            return Ok(json);
        }
        bail!("{what}: no answer from Stripe after 3 tries; nothing is lost, run it again")
    }
}

impl StripeApi {
    fn record(&self, request: &Request, sent: &Result<Response, HttpError>) {
        let mut x = Exchange::new(request, sent);
        x.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
        x.response = String::new();
        self.recorder.record(x);
    }
}

fn describe(e: &HttpError) -> String {
    match e {
        HttpError::Timeout => "timed out".into(),
        HttpError::Connection(m) | HttpError::Other(m) => m.clone(),
        HttpError::Denied(m) => m.clone(),
    }
}

fn existing(e: &Value, secret_known: &impl Fn(&str) -> bool) -> Existing {
    let id = e["id"].as_str().unwrap_or_default().to_string();
    Existing {
        role: e["metadata"][TAG].as_str().and_then(Role::of_tag),
        url: e["url"].as_str().unwrap_or_default().to_string(),
        api_version: e["api_version"].as_str().map(str::to_string),
        event_types: e["enabled_events"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        enabled: e["status"] == "enabled",
        secret_known: secret_known(&id),
        id,
    }
}
