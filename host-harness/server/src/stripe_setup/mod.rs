//! `host-harness stripe-setup`: from a Stripe key to the two webhook
//! endpoints the plugin needs, in one command that can be run again.
//!
//! - The key's mode (test or live) must match the merchant's `livemode`.
//! - One platform endpoint and one Connect endpoint at `{public URL}/webhooks/stripe`,
//!   enabled for exactly the event types the plugin handles, at the API
//!   version it pins (both asked of the component, `describe`), so that
//!   events arrive in the shape it parses. See `plan` for what is reused.
//! - Their signing secrets go to the host's secrets file (`endpoint_secrets`).
//! - The permissions a restricted key needs, one line per resource.
//!
//! Who may run it: the host's operator, with the platform's key; it is no
//! route, and prints no secret.

pub mod endpoint_secrets;
pub mod plan;
pub mod stripe_api;

use crate::config::Settings;
use crate::imports::{HostEnv, KeyRing, StripeGate, UreqBackend, restricted_key_permissions};
use crate::record::Recorder;
use crate::runtime::{PLUGIN_WASM, Runtime};
use anyhow::{Context, Result, bail};
use endpoint_secrets::EndpointSecrets;
pub use plan::Role;
use plan::{Step, Wanted};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use stripe_api::StripeApi;

/// What happened to one of the two endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Created,
    /// Its url, event types or status set again; same secret.
    Updated,
    /// A new endpoint (new secret) in place of this one, now deleted.
    Replaced {
        old: String,
    },
}

#[derive(Debug)]
pub struct Endpoint {
    pub role: Role,
    pub id: String,
    pub change: Change,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub endpoints: Vec<Endpoint>,
    /// Endpoints of ours deleted as duplicates.
    pub deleted: Vec<String>,
    /// Endpoints this command did not make that send to the same URL.
    pub strangers: Vec<String>,
    pub secrets_file: PathBuf,
    /// One line per resource a restricted key needs.
    pub permissions: Vec<String>,
}

/// Which mode a Stripe secret or restricted key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    Test,
    Live,
}

pub fn key_mode(key: &str) -> Option<KeyMode> {
    match key.split('_').take(2).collect::<Vec<_>>().as_slice() {
        ["sk" | "rk", "test"] => Some(KeyMode::Test),
        ["sk" | "rk", "live"] => Some(KeyMode::Live),
        _ => None,
    }
}

pub fn run(settings: &Settings, public_url: &str) -> Result<Report> {
    let Some(key) = settings.api_key.as_ref().map(|k| k.0.as_str()) else {
        bail!(
            "no Stripe key: set {} to the platform's secret or restricted key",
            settings.api_key_env
        );
    };
    check_mode(key, settings.merchant.livemode)?;
    let url = webhook_url(public_url)?;
    let Some(file) = settings.webhook_secrets_file.clone() else {
        bail!(
            "on PostgreSQL there is no file beside the database: give --webhook-secrets-file, which every worker then reads"
        );
    };
    let described = describe(settings)?;
    let mut kept = EndpointSecrets::read(&file)?;
    let stripe = StripeApi::new(
        &settings.stripe_api_base,
        key,
        &described.stripe_api_version,
        Duration::from_secs(settings.stripe_timeout_secs),
        match &settings.record_http {
            Some(path) => Recorder::to_file(path)?,
            None => Recorder::default(),
        },
    )?;
    let existing = stripe.endpoints(|id| kept.0.contains_key(id))?;
    let mut report = Report {
        endpoints: Vec::new(),
        deleted: Vec::new(),
        strangers: plan::strangers_at(&url, &existing)
            .into_iter()
            .map(str::to_string)
            .collect(),
        secrets_file: file.clone(),
        permissions: permissions(),
    };
    let mut to_delete = Vec::new();
    for role in Role::BOTH {
        let wanted = Wanted {
            role,
            url: url.clone(),
            api_version: described.stripe_api_version.clone(),
            event_types: described.event_types.clone(),
        };
        let (step, extra) = plan::plan(&wanted, &existing);
        let (id, change) = apply(&stripe, &wanted, step, &mut kept)?;
        report.endpoints.push(Endpoint { role, id, change });
        if let Some(Endpoint {
            change: Change::Replaced { old },
            ..
        }) = report.endpoints.last()
        {
            to_delete.push(old.clone());
        }
        to_delete.extend(extra);
    }
    // The new secrets are kept before any old endpoint goes: a run cut
    // short leaves an endpoint with no secret, which the next run replaces.
    let current: Vec<&str> = report.endpoints.iter().map(|e| e.id.as_str()).collect();
    kept.0.retain(|id, _| current.contains(&id.as_str()));
    if EndpointSecrets::read(&file)? != kept {
        kept.write(&file)?;
    }
    for id in to_delete {
        stripe.delete(&format!("/v1/webhook_endpoints/{id}"))?;
        if !report
            .endpoints
            .iter()
            .any(|e| e.change == (Change::Replaced { old: id.clone() }))
        {
            report.deleted.push(id);
        }
    }
    Ok(report)
}

fn check_mode(key: &str, livemode: bool) -> Result<()> {
    match (key_mode(key), livemode) {
        (Some(KeyMode::Test), false) | (Some(KeyMode::Live), true) => Ok(()),
        (Some(KeyMode::Test), true) => bail!(
            "the key is a test-mode key, but the merchant is in live mode (--livemode on): use the live key, or turn livemode off"
        ),
        (Some(KeyMode::Live), false) => bail!(
            "the key is a live-mode key, but the merchant is in test mode: give --livemode on, or use the test key"
        ),
        (None, _) => {
            bail!("the key is neither a secret key (sk_...) nor a restricted key (rk_...)")
        }
    }
}

/// `{public}/webhooks/stripe`, for an absolute http(s) URL of the public listener.
fn webhook_url(public: &str) -> Result<String> {
    let parsed = url::Url::parse(public).with_context(|| format!("the public URL {public}"))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        bail!("the public URL must be http(s)://host[:port], not {public}");
    }
    if parsed.scheme() == "http" {
        tracing::warn!(
            public,
            "Stripe sends live-mode events only to https endpoints"
        );
    }
    Ok(format!("{}/webhooks/stripe", public.trim_end_matches('/')))
}

/// The component's own description, from an instance that may call nothing.
fn describe(settings: &Settings) -> Result<crate::bindings::PluginDescription> {
    let db = crate::db::Db::in_memory()?;
    let gate = StripeGate {
        base: url::Url::parse(&settings.stripe_api_base)?,
        api_key: None,
        backend: Arc::new(UreqBackend::new(Duration::from_secs(1))),
    };
    let env = HostEnv::new(
        db.host_store(),
        gate,
        crate::imports::Clock::System,
        Arc::new(KeyRing::default()),
    );
    let runtime = Runtime::new(
        PLUGIN_WASM,
        Arc::new(env),
        settings.limits,
        settings.cache_dir.as_deref(),
    )?;
    let d = runtime.describe()?;
    check_description(&d)?;
    Ok(d)
}

/// What is registered must be what Stripe can send: a dated API version,
/// and named event types (never `*`, which would send every event).
fn check_description(d: &crate::bindings::PluginDescription) -> Result<()> {
    let dated = d.stripe_api_version.get(..10).is_some_and(|date| {
        date.chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        })
    });
    if !dated {
        bail!(
            "the plugin pins no dated API version (it says \"{}\")",
            d.stripe_api_version
        );
    }
    let named = |t: &String| {
        t.split('.').count() >= 2
            && t.split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    };
    if d.event_types.is_empty() || !d.event_types.iter().all(named) {
        bail!("the plugin names no event types, or one that is not a type");
    }
    Ok(())
}

fn apply(
    stripe: &StripeApi,
    wanted: &Wanted,
    step: Step,
    kept: &mut EndpointSecrets,
) -> Result<(String, Change)> {
    match step {
        Step::Keep { id } => Ok((id, Change::Unchanged)),
        Step::Update { id } => {
            let mut form = common_form(wanted);
            form.push(("disabled".into(), "false".into()));
            stripe.post(
                &format!("/v1/webhook_endpoints/{id}"),
                &form,
                &format!("update:{id}"),
            )?;
            Ok((id, Change::Updated))
        }
        Step::Create { replacing } => {
            let mut form = common_form(wanted);
            form.push(("api_version".into(), wanted.api_version.clone()));
            if wanted.role == Role::Connect {
                form.push(("connect".into(), "true".into()));
            }
            form.push((format!("metadata[{}]", plan::TAG), wanted.role.tag().into()));
            form.push((
                "description".into(),
                format!("Stripe payments plugin ({})", wanted.role.tag()),
            ));
            let made = stripe.post(
                "/v1/webhook_endpoints",
                &form,
                &format!("create:{}", wanted.role.tag()),
            )?;
            let (Some(id), Some(secret)) = (made["id"].as_str(), made["secret"].as_str()) else {
                bail!("Stripe made an endpoint but showed no id or secret");
            };
            kept.0
                .insert(id.into(), (wanted.role.tag().into(), secret.into()));
            let change = match replacing {
                Some(old) => Change::Replaced { old },
                None => Change::Created,
            };
            Ok((id.to_string(), change))
        }
    }
}

fn common_form(wanted: &Wanted) -> Vec<(String, String)> {
    let mut form = vec![("url".to_string(), wanted.url.clone())];
    form.extend(
        wanted
            .event_types
            .iter()
            .enumerate()
            // Indexed, as Stripe's SDKs encode a list (stripe-python's
            // `enabled_events[0]`), so that the suite checks it against
            // their parameter types.
            .map(|(i, t)| (format!("enabled_events[{i}]"), t.clone())),
    );
    form
}

/// One line per resource: what a restricted key must allow.
fn permissions() -> Vec<String> {
    let mut lines: Vec<String> = restricted_key_permissions()
        .into_iter()
        .map(|(r, a)| format!("{:<34} {}", r.name(), a.name()))
        .collect();
    lines.push(format!(
        "{:<34} write (for stripe-setup only)",
        "Webhook Endpoints"
    ));
    lines
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.endpoints {
            let what = match &e.change {
                Change::Unchanged => "unchanged".to_string(),
                Change::Created => "created".to_string(),
                Change::Updated => "updated (same secret)".to_string(),
                Change::Replaced { old } => format!("replaced {old} (new secret)"),
            };
            writeln!(f, "{:<8} endpoint {}: {what}", e.role.tag(), e.id)?;
        }
        for id in &self.deleted {
            writeln!(f, "deleted duplicate endpoint {id}")?;
        }
        for id in &self.strangers {
            writeln!(
                f,
                "warning: endpoint {id} was not made by stripe-setup and sends to the same URL; every event arrives twice until you delete it"
            )?;
        }
        writeln!(
            f,
            "signing secrets: {} (0600; serve reads it)",
            self.secrets_file.display()
        )?;
        writeln!(f, "a restricted key needs:")?;
        for line in &self.permissions {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::PluginDescription;

    #[test]
    fn a_key_s_mode_is_read_from_its_prefix() {
        assert_eq!(key_mode("sk_test_abc"), Some(KeyMode::Test));
        assert_eq!(key_mode("rk_live_abc"), Some(KeyMode::Live));
        assert_eq!(key_mode("pk_test_abc"), None);
        assert!(check_mode("sk_test_abc", true).is_err());
        assert!(check_mode("sk_live_abc", false).is_err());
        assert!(check_mode("rk_live_abc", true).is_ok());
    }

    #[test]
    fn a_description_asking_for_every_event_or_no_version_is_refused() {
        let good = PluginDescription {
            stripe_api_version: "2024-06-20".into(),
            event_types: vec!["charge.refunded".into(), "charge.dispute.created".into()],
        };
        assert!(check_description(&good).is_ok());
        for bad in [
            PluginDescription {
                stripe_api_version: "latest".into(),
                ..good.clone()
            },
            PluginDescription {
                stripe_api_version: "2024-06-2é".into(),
                ..good.clone()
            },
            PluginDescription {
                event_types: vec!["*".into()],
                ..good.clone()
            },
            PluginDescription {
                event_types: vec![],
                ..good.clone()
            },
        ] {
            assert!(
                check_description(&bad).is_err(),
                "{}",
                bad.stripe_api_version
            );
        }
    }

    #[test]
    fn the_webhook_url_is_the_public_listener_s_route() {
        assert_eq!(
            webhook_url("https://billing.example.com/").unwrap(),
            "https://billing.example.com/webhooks/stripe"
        );
        assert!(webhook_url("billing.example.com").is_err());
        assert!(webhook_url("ftp://billing.example.com").is_err());
    }
}
