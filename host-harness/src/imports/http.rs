//! `http`: the plugin's only way out, and it leads to Stripe alone. The gate
//! denies every origin but the configured API base, and adds `Authorization`
//! itself, so the secret key never enters the plugin.

use super::HostState;
use crate::record::Exchange;
use crate::runtime::billing::stripe_plugin::http::{Host, HttpError, Request, Response};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Something that can carry a request: a real client, or an in-process emulator.
pub trait HttpBackend: Send + Sync {
    fn send(&self, req: &Request) -> Result<Response, HttpError>;
}

/// Only requests under `base` pass; they leave with the API key attached.
pub struct StripeGate {
    pub base: Url,
    pub api_key: Option<String>,
    pub backend: Arc<dyn HttpBackend>,
}

impl StripeGate {
    /// Same scheme, host and port as the base, and a path under the base's path.
    /// Compared as parsed URLs: `https://api.stripe.com.evil.test` is not a prefix match.
    pub fn allows(&self, url: &str) -> bool {
        let Ok(u) = Url::parse(url) else { return false };
        u.scheme() == self.base.scheme()
            && u.host_str() == self.base.host_str()
            && u.port_or_known_default() == self.base.port_or_known_default()
            && u.username().is_empty()
            && u.password().is_none()
            && u.path().starts_with(self.base.path().trim_end_matches('/'))
    }

    pub fn send(&self, mut req: Request) -> (Result<Response, HttpError>, Request) {
        if !self.allows(&req.url) {
            let why = format!(
                "only {} is reachable",
                self.base.as_str().trim_end_matches('/')
            );
            return (Err(HttpError::Denied(why)), req);
        }
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        let logged = req.clone();
        if let Some(key) = &self.api_key {
            req.headers
                .push(("Authorization".into(), format!("Bearer {key}")));
        }
        (self.backend.send(&req), logged)
    }
}

impl Host for HostState {
    fn fetch(&mut self, req: Request) -> Result<Response, HttpError> {
        let (result, logged) = self.off_the_clock(|s| s.env.stripe.send(req));
        self.env.recorder.record(Exchange::new(&logged, &result));
        result
    }
}

/// Real HTTP with ureq: timeouts on connect and on the whole call, and any
/// status returned as data rather than an error.
pub struct UreqBackend {
    agent: ureq::Agent,
}

impl UreqBackend {
    pub fn new(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Self { agent }
    }
}

impl HttpBackend for UreqBackend {
    fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let mut builder = ureq::http::Request::builder()
            .method(req.method.as_str())
            .uri(req.url.as_str());
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = builder
            .body(req.body.clone())
            .map_err(|e| HttpError::Other(e.to_string()))?;
        let response = self.agent.run(request).map_err(|e| match e {
            ureq::Error::Timeout(_) => HttpError::Timeout,
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => HttpError::Timeout,
            ureq::Error::Io(io) => HttpError::Connection(io.to_string()),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                HttpError::Connection(e.to_string())
            }
            other => HttpError::Other(other.to_string()),
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|e| HttpError::Connection(e.to_string()))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;
    impl HttpBackend for Never {
        fn send(&self, _: &Request) -> Result<Response, HttpError> {
            panic!("a denied request reached the network")
        }
    }

    #[test]
    fn only_the_configured_base_is_reachable() {
        let gate = StripeGate {
            base: Url::parse("https://api.stripe.com").unwrap(),
            api_key: Some("sk_test_x".into()),
            backend: Arc::new(Never),
        };
        assert!(gate.allows("https://api.stripe.com/v1/customers"));
        for url in [
            "https://api.stripe.com.evil.test/v1/customers",
            "http://api.stripe.com/v1/customers",
            "https://api.stripe.com:8443/v1/customers",
            "https://user@api.stripe.com/v1/customers",
            "https://evil.test/?https://api.stripe.com",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(!gate.allows(url), "{url} must be denied");
            let req = Request {
                method: "GET".into(),
                url: url.into(),
                headers: vec![],
                body: vec![],
            };
            assert!(matches!(gate.send(req).0, Err(HttpError::Denied(_))));
        }
    }
}
