//! Who may call which route of `serve`, decided before anything runs. Pure:
//! no store, no bindings; `tokens` says whose a bearer token is.
//!
//! Two listeners, two audiences:
//! - **public** (`--listen`, behind the load balancer): Stripe's webhooks
//!   (authenticated by their signature, in the plugin), the customers' pay
//!   pages and card pages (by the token in their URL), the two pages Stripe sends a
//!   merchant back to from onboarding (they carry nothing), and `/healthz`;
//! - **platform** (`--admin-listen`, loopback by default): everything else,
//!   each request with a bearer token, the configured `Host`, and JSON.

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The internet: Stripe and the merchants' customers.
    Public,
    /// The billing platform's own services.
    Platform,
}

/// Whose data a platform route touches, which decides the tokens it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// The whole host (creating or changing a merchant's settings, metrics):
    /// a platform-wide token only.
    Fleet,
    /// One merchant's invoices, customers, outbox...: a platform-wide token,
    /// or that merchant's own.
    Merchant(&'a str),
    /// The unscoped routes (`/invoices/…`), which act for the default merchant.
    DefaultMerchant,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Anyone: the route authenticates what it needs itself.
    Public,
    Platform(Owner<'a>),
}

/// The audience of `method` on a path's segments.
pub fn audience<'a>(method: &str, segments: &[&'a str]) -> Audience<'a> {
    match (method, segments) {
        ("POST", ["webhooks", "stripe"])
        | ("GET", ["healthz"])
        | ("GET", ["pay", _])
        | ("GET", ["merchants", _, "pay", _])
        | ("GET", ["billing", _, _] | ["merchants", _, "billing", _, _])
        | ("POST", ["billing", _, _, "replace-card"])
        | ("POST", ["merchants", _, "billing", _, _, "replace-card"])
        | ("GET", ["onboarding", "done" | "refresh"])
        | ("GET", ["merchants", _, "onboarding", "done" | "refresh"]) => Audience::Public,
        ("GET", ["merchants", id]) => Audience::Platform(Owner::Merchant(id)),
        (_, ["merchants", id, _, ..]) => Audience::Platform(Owner::Merchant(id)),
        (_, ["merchants", ..]) | (_, ["metrics"]) => Audience::Platform(Owner::Fleet),
        _ => Audience::Platform(Owner::DefaultMerchant),
    }
}

/// What a valid token lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every platform route, for every merchant.
    Platform,
    /// The routes of this one merchant.
    Merchant(String),
}

impl Grant {
    /// Whether the grant covers a route of `owner`; `default_merchant` is
    /// the merchant the unscoped routes act for.
    pub fn covers(&self, owner: Owner<'_>, default_merchant: &str) -> bool {
        match (self, owner) {
            (Grant::Platform, _) => true,
            (Grant::Merchant(_), Owner::Fleet) => false,
            (Grant::Merchant(m), Owner::Merchant(id)) => m == id,
            (Grant::Merchant(m), Owner::DefaultMerchant) => m == default_merchant,
        }
    }
}

/// Why a request was turned away, before anything ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A platform route asked of the public listener (or the reverse): as if
    /// it did not exist.
    NotHere,
    /// `Host` is not one of the platform listener's names (DNS rebinding).
    WrongHost,
    /// No bearer token, or not a valid one.
    Unauthenticated,
    /// A merchant's token on another merchant's route, or on the fleet's.
    Forbidden,
    /// A body that is not declared JSON, or a non-JSON `Content-Type` (a web
    /// page's form post).
    NotJson,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::NotHere => 404,
            Refusal::WrongHost => 421,
            Refusal::Unauthenticated => 401,
            Refusal::Forbidden => 403,
            Refusal::NotJson => 415,
        }
    }

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::NotHere => "not_here",
            Refusal::WrongHost => "wrong_host",
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::Forbidden => "forbidden",
            Refusal::NotJson => "not_json",
        }
    }

    /// What the caller reads.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotHere => "no such route",
            Refusal::WrongHost => "this host name is not served here",
            Refusal::Unauthenticated => {
                "a platform token is required: Authorization: Bearer <token>"
            }
            Refusal::Forbidden => "this token is not allowed on this route",
            Refusal::NotJson => "the body must be sent as Content-Type: application/json",
        }
    }
}

/// A request as the checks see it.
pub struct Asked<'a> {
    pub method: &'a str,
    pub segments: &'a [&'a str],
    pub headers: &'a [(String, String)],
    pub body_len: usize,
}

impl Asked<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The bearer token, if the request carries one.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }
}

/// The checks that need no token: the listener, the `Host`, the body's type.
/// `hosts` are the platform listener's names (`host:port`, lower case).
pub fn precheck<'a>(
    door: Door,
    asked: &Asked<'a>,
    hosts: &[String],
) -> Result<Audience<'a>, Refusal> {
    let audience = audience(asked.method, asked.segments);
    match (door, audience) {
        (Door::Public, Audience::Platform(_)) => return Err(Refusal::NotHere),
        (Door::Platform, Audience::Public) if asked.segments != ["healthz"] => {
            return Err(Refusal::NotHere);
        }
        (Door::Public, _) => return Ok(audience),
        (Door::Platform, _) => {}
    }
    let host = asked.header("host").map(str::to_ascii_lowercase);
    if !host.is_some_and(|h| hosts.iter().any(|ok| *ok == h)) {
        return Err(Refusal::WrongHost);
    }
    if !json_or_nothing(asked) {
        return Err(Refusal::NotJson);
    }
    Ok(audience)
}

/// A platform request declares JSON when it has a body, and declares
/// nothing else ever: a form or `text/plain` post, which a web page can send
/// without a preflight, is refused even when empty.
fn json_or_nothing(asked: &Asked<'_>) -> bool {
    match asked.header("content-type") {
        Some(ct) => {
            let essence = ct.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
        }
        None => asked.body_len == 0,
    }
}

/// The names the platform listener answers to when none are configured: the
/// address it is bound to, and `localhost` on its port.
pub fn default_hosts(bound: std::net::SocketAddr) -> Vec<String> {
    let port = bound.port();
    let mut hosts = vec![
        bound.to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    hosts.dedup();
    hosts
}

/// Whether `serve` may start its platform listener on `bound`: off the
/// loopback, only when some token can be valid (otherwise the platform's
/// routes would be exposed to a network with nothing to present).
pub fn platform_listener_allowed(
    bound: std::net::SocketAddr,
    any_token: bool,
) -> Result<(), String> {
    if bound.ip().is_loopback() || any_token {
        return Ok(());
    }
    Err(format!(
        "the platform listener {bound} is not on loopback and no platform token is valid: make one with `host-harness token create` first"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked<'a>(
        method: &'a str,
        segments: &'a [&'a str],
        headers: &'a [(String, String)],
        body_len: usize,
    ) -> Asked<'a> {
        Asked {
            method,
            segments,
            headers,
            body_len,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_webhooks_pay_pages_onboarding_returns_and_health_are_public() {
        assert_eq!(audience("POST", &["webhooks", "stripe"]), Audience::Public);
        assert_eq!(audience("GET", &["pay", "t"]), Audience::Public);
        assert_eq!(
            audience("GET", &["merchants", "m", "pay", "t"]),
            Audience::Public
        );
        assert_eq!(audience("GET", &["healthz"]), Audience::Public);
        assert_eq!(audience("GET", &["onboarding", "done"]), Audience::Public);
        assert_eq!(
            audience("GET", &["merchants", "m", "onboarding", "refresh"]),
            Audience::Public
        );
        for (method, path) in [
            ("POST", &["pay", "t"][..]),
            ("GET", &["webhooks", "stripe"]),
            ("POST", &["merchants", "m", "pay", "t"]),
            ("GET", &["metrics"]),
            ("GET", &["outbox"]),
            ("POST", &["onboarding", "done"]),
            ("GET", &["onboarding", "elsewhere"]),
        ] {
            assert!(
                matches!(audience(method, path), Audience::Platform(_)),
                "{method} {path:?}"
            );
        }
    }

    #[test]
    fn a_merchants_token_covers_only_that_merchants_routes() {
        let alpha = Grant::Merchant("alpha".into());
        assert!(alpha.covers(Owner::Merchant("alpha"), "default"));
        assert!(!alpha.covers(Owner::Merchant("beta"), "default"));
        assert!(!alpha.covers(Owner::Fleet, "alpha"));
        assert!(!alpha.covers(Owner::DefaultMerchant, "default"));
        assert!(alpha.covers(Owner::DefaultMerchant, "alpha"));
        assert!(Grant::Platform.covers(Owner::Fleet, "default"));
        assert_eq!(
            audience("PUT", &["merchants", "alpha"]),
            Audience::Platform(Owner::Fleet)
        );
        assert_eq!(
            audience("GET", &["merchants", "alpha"]),
            Audience::Platform(Owner::Merchant("alpha"))
        );
    }

    #[test]
    fn the_platform_listener_wants_its_host_and_json() {
        let hosts = vec!["127.0.0.1:8788".to_string()];
        let json = headers(&[
            ("Host", "127.0.0.1:8788"),
            ("Content-Type", "application/json; charset=utf-8"),
        ]);
        let ok = asked("POST", &["invoices"], &json, 10);
        assert!(precheck(Door::Platform, &ok, &hosts).is_ok());
        let rebound = headers(&[("Host", "evil.example:8788")]);
        let r = asked("POST", &["invoices", "i", "finalize"], &rebound, 0);
        assert_eq!(
            precheck(Door::Platform, &r, &hosts),
            Err(Refusal::WrongHost)
        );
        let form = headers(&[("Host", "127.0.0.1:8788"), ("Content-Type", "text/plain")]);
        let r = asked("POST", &["invoices", "i", "finalize"], &form, 0);
        assert_eq!(precheck(Door::Platform, &r, &hosts), Err(Refusal::NotJson));
        let undeclared = headers(&[("Host", "127.0.0.1:8788")]);
        let r = asked("PATCH", &["invoices", "i"], &undeclared, 5);
        assert_eq!(precheck(Door::Platform, &r, &hosts), Err(Refusal::NotJson));
        let r = asked("POST", &["invoices", "i", "finalize"], &undeclared, 0);
        assert!(precheck(Door::Platform, &r, &hosts).is_ok());
    }

    #[test]
    fn off_loopback_the_platform_listener_needs_a_token() {
        let public: std::net::SocketAddr = "0.0.0.0:8788".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:8788".parse().unwrap();
        assert!(platform_listener_allowed(public, false).is_err());
        assert!(platform_listener_allowed(public, true).is_ok());
        assert!(platform_listener_allowed(local, false).is_ok());
    }

    #[test]
    fn a_bearer_token_is_read_from_authorization() {
        let h = headers(&[("authorization", "Bearer spt_abc")]);
        assert_eq!(asked("GET", &[], &h, 0).bearer(), Some("spt_abc"));
        let h = headers(&[("Authorization", "Basic spt_abc")]);
        assert_eq!(asked("GET", &[], &h, 0).bearer(), None);
        let h = headers(&[("Authorization", "Bearer ")]);
        assert_eq!(asked("GET", &[], &h, 0).bearer(), None);
    }
}
