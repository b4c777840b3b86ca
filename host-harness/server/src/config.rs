//! One TOML file, every key also settable by a flag (flags win). See
//! `host-harness.sample.toml` for every key with its meaning.

use crate::imports::MerchantKeys;
use crate::merchants::MerchantSettings;
use crate::runtime::Limits;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub db: Option<PathBuf>,
    pub record_http: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub stripe: StripeSection,
    pub merchant: MerchantSection,
    pub limits: LimitsSection,
    pub platform: PlatformSection,
    pub smtp: SmtpSection,
}

/// The SMTP relay that sends the outbox's emails.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSection {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<crate::mailer::SmtpSecurity>,
    pub from: Option<String>,
    pub credentials_file: Option<PathBuf>,
}

/// The platform listener and its tokens.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformSection {
    pub listen: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub token_sha256: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StripeSection {
    pub api_base: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout_secs: Option<u64>,
    pub requests_per_sec: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MerchantSection {
    /// The default merchant's id, for `/merchants/{id}/…` [default: default].
    pub id: Option<String>,
    /// The name the merchant's customers see on its pages.
    pub display_name: Option<String>,
    pub account_id: Option<String>,
    pub auto_charge: Option<bool>,
    pub show_payment_link: Option<bool>,
    pub stripe_receipts: Option<bool>,
    pub pay_link_base: Option<String>,
    pub notification_email: Option<String>,
    pub webhook_secrets: Option<Vec<String>>,
    pub webhook_secrets_file: Option<PathBuf>,
    pub pay_link_secrets: Option<Vec<String>>,
    pub pay_link_secrets_file: Option<PathBuf>,
    pub webhook_tolerance_secs: Option<u32>,
    pub livemode: Option<bool>,
    pub pay_link_expiry_days: Option<u32>,
    /// Dunning: days after a soft decline on which it is retried ([] for none).
    pub retry_days: Option<Vec<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<usize>,
    pub wall_ms: Option<u64>,
    pub max_stripe_requests: Option<u32>,
    pub max_kv_operations: Option<u32>,
    pub max_emails: Option<u32>,
}

/// A retry schedule given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryDays(pub Vec<u32>);

/// `1,3,5,7` (days after the first decline), or `off`.
fn parse_retry_days(s: &str) -> Result<RetryDays, String> {
    if s == "off" || s.is_empty() {
        return Ok(RetryDays(Vec::new()));
    }
    let days = s
        .split(',')
        .map(|d| {
            d.trim()
                .parse::<u32>()
                .map_err(|_| format!("\"{d}\" is not a number of days"))
        })
        .collect::<Result<Vec<u32>, String>>()?;
    crate::merchants::check_retry_days(&days)?;
    Ok(RetryDays(days))
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("expected on or off, got \"{s}\"")),
    }
}

/// Flags that override the file. Every config key has one.
#[derive(Debug, Default, Clone, Args)]
pub struct Flags {
    /// TOML configuration file.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on (loopback only by default) [default: 127.0.0.1:8787].
    #[arg(long, global = true)]
    pub listen: Option<String>,
    /// Address of the platform listener: every route but the webhooks, the
    /// pay pages and /healthz, each with a bearer token. Keep it private
    /// [default: 127.0.0.1:8788].
    #[arg(long, global = true)]
    pub admin_listen: Option<String>,
    /// A Host name (host:port) the platform listener answers to; repeat for
    /// several [default: its own address, and localhost on its port].
    #[arg(long = "admin-host", global = true)]
    pub admin_hosts: Vec<String>,
    /// The SHA-256 (hex) of a platform-wide token; repeat while rotating.
    /// Not a secret: `host-harness token hash` prints it. Tokens made by
    /// `host-harness token create` are kept in the store and need no flag.
    #[arg(long = "platform-token-sha256", global = true)]
    pub platform_token_sha256: Vec<String>,
    /// The store for kv, outbox, merchants, invoices and customers: a SQLite
    /// file, or a postgres://user@host/db URL for many workers on one
    /// database [default: host-harness.db].
    #[arg(long, global = true)]
    pub db: Option<PathBuf>,
    /// Append every Stripe request and response to FILE as JSON lines (no Authorization).
    #[arg(long, global = true, value_name = "FILE")]
    pub record_http: Option<PathBuf>,
    /// Where precompiled components are cached: a directory of this user's
    /// only (made 0700; one another user owns is not used) [default:
    /// stripe-plugin-cache beside the SQLite database, or
    /// $XDG_CACHE_HOME/stripe-plugin for PostgreSQL].
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Stripe API base; the only origin the plugin can reach [default: https://api.stripe.com].
    #[arg(long, global = true)]
    pub stripe_api_base: Option<String>,
    /// Environment variable holding the Stripe secret key [default: STRIPE_API_KEY].
    #[arg(long, global = true)]
    pub api_key_env: Option<String>,
    /// Timeout of one Stripe call, in seconds [default: 30].
    #[arg(long, global = true)]
    pub stripe_timeout_secs: Option<u64>,
    /// Stripe requests per second and account that the whole fleet sends,
    /// paced through the store; 0: off. Set it a little under Stripe's limit
    /// (live 100, sandbox 25) [default: 0].
    #[arg(long, global = true)]
    pub stripe_requests_per_sec: Option<u32>,
    /// The merchant's connected account, acct_... (empty: the platform account).
    #[arg(long, global = true)]
    pub account: Option<String>,
    /// Charge a payment method on file when an invoice is sent: on|off [default: on].
    #[arg(long, global = true, value_parser = parse_on_off)]
    pub auto_charge: Option<bool>,
    /// Retry a soft-declined auto-charge on these days after the first
    /// decline, e.g. 1,3,5,7; off for none [default: 1,3,5,7].
    #[arg(long, global = true, value_parser = parse_retry_days)]
    pub retry_days: Option<RetryDays>,
    /// Put a Stripe payment link on invoices: on|off [default: on].
    #[arg(long, global = true, value_parser = parse_on_off)]
    pub show_payment_link: Option<bool>,
    /// Ask Stripe to email receipts: on|off [default: off].
    #[arg(long, global = true, value_parser = parse_on_off)]
    pub stripe_receipts: Option<bool>,
    /// Base URL for pay links and success pages [default: http://<listen>].
    #[arg(long, global = true)]
    pub pay_link_base: Option<String>,
    /// The default merchant's name on its customers' pages.
    #[arg(long, global = true)]
    pub display_name: Option<String>,
    /// The merchant's notification email.
    #[arg(long, global = true)]
    pub notification_email: Option<String>,
    /// Webhook signing secret, whsec_...; repeat while rotating. Prefer the
    /// environment or a file: argv is readable by every local user.
    #[arg(
        long = "webhook-secret",
        global = true,
        env = "STRIPE_PLUGIN_WEBHOOK_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub webhook_secrets: Vec<String>,
    /// A file of webhook signing secrets, one per line (newest first).
    #[arg(long, global = true, value_name = "FILE")]
    pub webhook_secrets_file: Option<PathBuf>,
    /// Key of the pay-link tokens, newest first; repeat while rotating
    /// [default on SQLite: made on first start, kept in a 0600 file beside
    /// the database; PostgreSQL needs one].
    #[arg(
        long = "pay-link-secret",
        global = true,
        env = "STRIPE_PLUGIN_PAY_LINK_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub pay_link_secrets: Vec<String>,
    /// A file of pay-link keys, one per line (newest first).
    #[arg(long, global = true, value_name = "FILE")]
    pub pay_link_secrets_file: Option<PathBuf>,
    /// Days a pay link still opens after its invoice is settled (paid,
    /// void, paid outside Stripe, written off) [default: 90].
    #[arg(long, global = true)]
    pub pay_link_expiry_days: Option<u32>,
    /// Oldest accepted webhook signature, in seconds [default: 300].
    #[arg(long, global = true)]
    pub webhook_tolerance_secs: Option<u32>,
    /// The merchant runs in live mode: on|off [default: off].
    #[arg(long, global = true, value_parser = parse_on_off)]
    pub livemode: Option<bool>,
    /// Time one plugin call may run, in milliseconds [default: 2000].
    #[arg(long, global = true)]
    pub deadline_ms: Option<u64>,
    /// Time one plugin call may take in all, waiting on Stripe and storage
    /// included, in milliseconds [default: 120000].
    #[arg(long, global = true)]
    pub wall_ms: Option<u64>,
    /// Memory cap per plugin call, in MiB [default: 64].
    #[arg(long, global = true)]
    pub memory_mib: Option<usize>,
    /// Threads of this worker that run the durable work queue; 0: none
    /// [default: 4].
    #[arg(long, global = true)]
    pub queue_workers: Option<usize>,
    /// The SMTP relay that sends the emails; without one they stay in the
    /// outbox (`GET /outbox`) and nothing sends them.
    #[arg(long, global = true)]
    pub smtp_host: Option<String>,
    /// The relay's port [default: 465 with tls, 587 with starttls, 25 with none].
    #[arg(long, global = true)]
    pub smtp_port: Option<u16>,
    /// tls (from the first byte), starttls (required), or none (only to a
    /// loopback relay) [default: starttls].
    #[arg(long, global = true, value_enum)]
    pub smtp_security: Option<crate::mailer::SmtpSecurity>,
    /// The sender of every email, `Name <address>`.
    #[arg(long, global = true)]
    pub email_from: Option<String>,
    /// A file holding the relay's user name on its first line and password
    /// on its second (or STRIPE_PLUGIN_SMTP_USERNAME and _PASSWORD).
    #[arg(long, global = true, value_name = "FILE")]
    pub smtp_credentials_file: Option<PathBuf>,
    /// How log lines are written: text or json [default: text].
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<crate::logging::LogFormat>,
    /// Catch up on missed webhooks from Stripe's events every so many
    /// seconds, and once at start; 0 turns it off [default: 300].
    #[arg(long, global = true)]
    pub sync_every_secs: Option<u64>,
}

/// A Stripe API key: its `Debug` never shows it.
#[derive(Clone, PartialEq)]
pub struct ApiKey(pub String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

/// Everything resolved: file, then flags, then defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    /// The platform listener's address.
    pub admin_listen: String,
    /// The Host names the platform listener answers to (empty: its own).
    pub admin_hosts: Vec<String>,
    /// SHA-256 hashes (hex, lower case) of configured platform-wide tokens.
    pub platform_token_sha256: Vec<String>,
    pub db: PathBuf,
    pub record_http: Option<PathBuf>,
    /// Where compiled components are cached (none: compiled at every start).
    pub cache_dir: Option<PathBuf>,
    pub stripe_api_base: String,
    /// The environment variable the API key was read from (for messages).
    pub api_key_env: String,
    /// The platform's Stripe API key, read once at start (none: unset or empty).
    pub api_key: Option<ApiKey>,
    pub stripe_timeout_secs: u64,
    /// Stripe requests per second and account, for the whole fleet (0: unpaced).
    pub stripe_requests_per_sec: u32,
    /// The merchant's secrets: kept by the host, used by the plugin only
    /// through the `mac` import.
    pub keys: MerchantKeys,
    /// The file of webhook signing secrets: the one configured, or on
    /// SQLite the one `stripe-setup` keeps beside the database (none on
    /// PostgreSQL without one configured).
    pub webhook_secrets_file: Option<PathBuf>,
    /// Seconds between syncs of missed webhooks (0: never).
    pub sync_every_secs: u64,
    /// The default merchant: the one the unscoped routes serve.
    pub merchant_id: String,
    /// Its settings, as `PUT /merchants/{id}` would store them.
    pub merchant: MerchantSettings,
    /// Where the pay links point (the public listener, as the internet
    /// reaches it); other merchants' under `/merchants/{id}`.
    pub pay_link_base: String,
    /// How old a webhook's signature may be, in seconds.
    pub webhook_tolerance_secs: u32,
    pub limits: Limits,
    /// Whether the JIT's code is named for `perf` (`STRIPE_PLUGIN_PERFMAP`).
    pub profiling: crate::runtime::Profiling,
    /// The SMTP relay, when emails are to be sent.
    pub smtp: Option<crate::mailer::SmtpSettings>,
    /// Days a pay link opens after its invoice is settled.
    pub pay_link_expiry_days: u32,
}

impl Settings {
    pub fn resolve(flags: &Flags) -> Result<Self> {
        let file = match &flags.config {
            Some(path) => load(path)?,
            None => FileConfig::default(),
        };
        let api_key_env = flags
            .api_key_env
            .clone()
            .or(file.stripe.api_key_env)
            .unwrap_or_else(|| "STRIPE_API_KEY".into());
        let m = file.merchant;
        let p = file.platform;
        let admin_hosts = if flags.admin_hosts.is_empty() {
            p.hosts.unwrap_or_default()
        } else {
            flags.admin_hosts.clone()
        };
        let platform_token_sha256: Vec<String> = if flags.platform_token_sha256.is_empty() {
            p.token_sha256.unwrap_or_default()
        } else {
            flags.platform_token_sha256.clone()
        }
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
        if let Some(bad) = platform_token_sha256
            .iter()
            .find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            bail!(
                "platform token hash \"{}\" is not a SHA-256 in hex (64 digits); `host-harness token hash` prints one",
                bad.chars().take(8).collect::<String>()
            );
        }
        let listen = flags
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8787".into());
        let stripe_api_base = flags
            .stripe_api_base
            .clone()
            .or(file.stripe.api_base)
            .unwrap_or_else(|| "https://api.stripe.com".into());
        let db: PathBuf = flags
            .db
            .clone()
            .or(file.db.clone())
            .unwrap_or_else(|| "host-harness.db".into());
        let configured_file = flags
            .webhook_secrets_file
            .clone()
            .or(m.webhook_secrets_file.clone());
        let webhook_secrets_file = configured_file.clone().or_else(|| {
            (!crate::db::is_postgres(&db.to_string_lossy()))
                .then(|| crate::secrets::webhook_secrets_file_of(&db))
        });
        let mut webhook_secrets = first_given(
            &flags.webhook_secrets,
            configured_file.as_ref(),
            m.webhook_secrets.clone(),
        )?;
        if webhook_secrets.is_empty()
            && let Some(kept) = webhook_secrets_file.as_ref().filter(|p| p.exists())
        {
            // The secrets `stripe-setup` kept beside the database.
            webhook_secrets = crate::secrets::read_file(kept)?;
        }
        if let Some(bad) = webhook_secrets.iter().find(|s| !s.starts_with("whsec_")) {
            bail!(
                "webhook secret \"{}...\" does not look like whsec_...",
                bad.chars().take(6).collect::<String>()
            );
        }
        let merchant_id =
            m.id.clone()
                .unwrap_or_else(|| crate::db::DEFAULT_MERCHANT.into());
        if !crate::merchants::valid_id(&merchant_id) {
            bail!("merchant.id must be 1 to 64 letters, digits, - or _");
        }
        let display_name = flags.display_name.clone().or(m.display_name.clone());
        let account_id = flags.account.clone().or(m.account_id).unwrap_or_default();
        if !account_id.is_empty() && !crate::merchants::valid_account_id(&account_id) {
            bail!(
                "merchant.account_id must be acct_ and letters or digits (or empty: the platform account)"
            );
        }
        let merchant = MerchantSettings {
            account_id: Some(account_id).filter(|a| !a.is_empty()),
            auto_charge: flags.auto_charge.or(m.auto_charge).unwrap_or(true),
            show_payment_link: flags
                .show_payment_link
                .or(m.show_payment_link)
                .unwrap_or(true),
            stripe_receipts: flags.stripe_receipts.or(m.stripe_receipts).unwrap_or(false),
            notification_email: flags
                .notification_email
                .clone()
                .or(m.notification_email)
                .unwrap_or_default(),
            livemode: flags.livemode.or(m.livemode).unwrap_or(false),
            display_name,
            retry_days: flags
                .retry_days
                .clone()
                .map(|d| d.0)
                .or(m.retry_days.clone())
                .unwrap_or_else(crate::merchants::default_retry_days),
        };
        crate::merchants::check_retry_days(&merchant.retry_days).map_err(anyhow::Error::msg)?;
        let pay_link_base = flags
            .pay_link_base
            .clone()
            .or(m.pay_link_base)
            .unwrap_or_else(|| format!("http://{listen}"));
        let webhook_tolerance_secs = flags
            .webhook_tolerance_secs
            .or(m.webhook_tolerance_secs)
            .unwrap_or(300);
        check_tolerance(webhook_tolerance_secs)?;
        if merchant.livemode && pay_link_base.starts_with("http://") {
            tracing::warn!(
                pay_link_base = %pay_link_base,
                "live mode with an http:// pay-link base: customers' pay links travel unencrypted; serve them over https"
            );
        }
        let default_limits = Limits::default();
        let pay_link = first_given(
            &flags.pay_link_secrets,
            flags
                .pay_link_secrets_file
                .as_ref()
                .or(m.pay_link_secrets_file.as_ref()),
            m.pay_link_secrets.clone(),
        )?;
        Ok(Self {
            admin_listen: flags
                .admin_listen
                .clone()
                .or(p.listen)
                .unwrap_or_else(|| "127.0.0.1:8788".into()),
            admin_hosts: admin_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            platform_token_sha256,
            keys: MerchantKeys {
                webhook_signing: webhook_secrets,
                pay_link,
            },
            webhook_secrets_file,
            cache_dir: flags
                .cache_dir
                .clone()
                .or(file.cache_dir)
                .or_else(|| crate::cache_dirs::default_dir(&db)),
            db,
            record_http: flags.record_http.clone().or(file.record_http),
            api_key: std::env::var(&api_key_env)
                .ok()
                .filter(|k| !k.is_empty())
                .map(ApiKey),
            api_key_env,
            profiling: if std::env::var_os("STRIPE_PLUGIN_PERFMAP").is_some() {
                crate::runtime::Profiling::PerfMap
            } else {
                crate::runtime::Profiling::Off
            },
            stripe_timeout_secs: flags
                .stripe_timeout_secs
                .or(file.stripe.timeout_secs)
                .unwrap_or(30),
            stripe_requests_per_sec: flags
                .stripe_requests_per_sec
                .or(file.stripe.requests_per_sec)
                .unwrap_or(0),
            sync_every_secs: flags.sync_every_secs.unwrap_or(300),
            limits: Limits {
                deadline_ms: flags
                    .deadline_ms
                    .or(file.limits.deadline_ms)
                    .unwrap_or(default_limits.deadline_ms),
                memory_bytes: flags
                    .memory_mib
                    .or(file.limits.memory_mib)
                    .map(|m| m << 20)
                    .unwrap_or(default_limits.memory_bytes),
                wall_ms: flags
                    .wall_ms
                    .or(file.limits.wall_ms)
                    .unwrap_or(default_limits.wall_ms),
                max_stripe_requests: file
                    .limits
                    .max_stripe_requests
                    .unwrap_or(default_limits.max_stripe_requests),
                max_kv_operations: file
                    .limits
                    .max_kv_operations
                    .unwrap_or(default_limits.max_kv_operations),
                max_emails: file.limits.max_emails.unwrap_or(default_limits.max_emails),
                max_kv_value_bytes: default_limits.max_kv_value_bytes,
            },
            smtp: smtp_settings(flags, file.smtp)?,
            pay_link_expiry_days: flags
                .pay_link_expiry_days
                .or(m.pay_link_expiry_days)
                .unwrap_or(90),
            listen,
            stripe_api_base,
            merchant_id,
            merchant,
            pay_link_base,
            webhook_tolerance_secs,
        })
    }
}

/// The relay, when a host is given: credentials from the file or the
/// environment, never argv.
fn smtp_settings(flags: &Flags, file: SmtpSection) -> Result<Option<crate::mailer::SmtpSettings>> {
    let Some(host) = flags.smtp_host.clone().or(file.host) else {
        return Ok(None);
    };
    let from = flags
        .email_from
        .clone()
        .or(file.from)
        .context("an SMTP relay needs the sender's address (--email-from)")?;
    let credentials = match flags
        .smtp_credentials_file
        .as_ref()
        .or(file.credentials_file.as_ref())
    {
        Some(path) => match crate::secrets::read_file(path)?.as_slice() {
            [user, password, ..] => Some((user.clone(), password.clone())),
            _ => bail!(
                "{} must hold a user name and a password, one per line",
                path.display()
            ),
        },
        None => match (
            std::env::var("STRIPE_PLUGIN_SMTP_USERNAME"),
            std::env::var("STRIPE_PLUGIN_SMTP_PASSWORD"),
        ) {
            (Ok(user), Ok(password)) if !user.is_empty() => Some((user, password)),
            _ => None,
        },
    };
    Ok(Some(crate::mailer::SmtpSettings {
        host,
        port: flags.smtp_port.or(file.port),
        security: flags.smtp_security.or(file.security).unwrap_or_default(),
        from,
        credentials,
        timeout: std::time::Duration::from_secs(30),
    }))
}

/// Secrets from the flag or the environment, else from the file, else from
/// the config file itself.
fn first_given(
    given: &[String],
    file: Option<&PathBuf>,
    inline: Option<Vec<String>>,
) -> Result<Vec<String>> {
    let given: Vec<String> = given
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if !given.is_empty() {
        return Ok(given);
    }
    match file {
        Some(path) => crate::secrets::read_file(path),
        None => Ok(inline.unwrap_or_default()),
    }
}

/// Stripe's SDKs accept signatures up to 300 s old; below 1 s every event
/// is refused, and beyond 600 s replay protection is mostly gone (security
/// review S19).
fn check_tolerance(secs: u32) -> Result<()> {
    if !(1..=600).contains(&secs) {
        bail!(
            "webhook_tolerance_secs must be between 1 and 600 (Stripe's SDKs use 300), not {secs}"
        );
    }
    Ok(())
}

fn load(path: &Path) -> Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_tolerance_outside_1_to_600_seconds_is_refused() {
        for (secs, ok) in [
            (0, false),
            (1, true),
            (300, true),
            (600, true),
            (601, false),
            (86_400, false),
        ] {
            let flags = Flags {
                webhook_tolerance_secs: Some(secs),
                ..Default::default()
            };
            assert_eq!(Settings::resolve(&flags).is_ok(), ok, "{secs}");
        }
        let flags = Flags {
            account: Some("acct_a\nb".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&flags).is_err());
    }

    #[test]
    fn secrets_come_from_a_file_when_no_flag_gives_them() {
        let path = std::env::temp_dir().join(format!("secrets-file-{}", std::process::id()));
        std::fs::write(&path, "# rotating\nwhsec_new_one\n\nwhsec_old_one\n").unwrap();
        let flags = Flags {
            webhook_secrets_file: Some(path.clone()),
            ..Default::default()
        };
        let s = Settings::resolve(&flags).unwrap();
        assert_eq!(s.keys.webhook_signing, ["whsec_new_one", "whsec_old_one"]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_sample_config_parses_and_flags_override_it() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../host-harness.sample.toml");
        let flags = Flags {
            config: Some(sample.into()),
            account: Some("acct_flag".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&flags).unwrap();
        assert_eq!(s.merchant.account_id.as_deref(), Some("acct_flag"));
        assert_eq!(s.stripe_api_base, "https://api.stripe.com");
        assert_eq!(s.keys.webhook_signing.len(), 2);
        assert_eq!(s.webhook_tolerance_secs, 300);
    }
}
