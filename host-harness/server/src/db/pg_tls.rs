//! TLS to PostgreSQL. A URL with `sslmode=require` is served over TLS by
//! rustls, and the server's
//! certificate is verified, for its name, against Mozilla's roots and the
//! CA in `sslrootcert` (a PEM file, as libpq names it): stricter than
//! libpq's `require`, which checks no certificate at all. Any other mode
//! connects in plain text, as before (a loopback or a private network).

use anyhow::{Context, Result, bail};
use postgres::config::SslMode;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What `tokio-postgres` reads of a URL, and the connector for it.
pub fn config(url: &str) -> Result<(postgres::Config, MakeRustlsConnect)> {
    let (url, root_cert) = without_sslrootcert(url)?;
    let mut config: postgres::Config = url.parse().context("parsing the PostgreSQL URL")?;
    if config.get_ssl_mode() != SslMode::Require {
        if root_cert.is_some() {
            bail!(
                "sslrootcert is given, but sslmode is not require: the connection would not use it"
            );
        }
        config.ssl_mode(SslMode::Disable);
    }
    Ok((
        config,
        MakeRustlsConnect::new(client_config(root_cert.as_deref())?),
    ))
}

/// The URL without `sslrootcert` (which `tokio-postgres` does not know),
/// and that file's path.
fn without_sslrootcert(url: &str) -> Result<(String, Option<String>)> {
    let mut parsed = url::Url::parse(url).context("parsing the PostgreSQL URL")?;
    let mut root = None;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "sslrootcert" {
                root = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.to_string(), root))
}

fn client_config(root_cert: Option<&str>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = root_cert {
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading sslrootcert {path}"))?
        {
            let cert = cert.with_context(|| format!("reading sslrootcert {path}"))?;
            roots
                .add(cert)
                .with_context(|| format!("a certificate of {path}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_ours_and_require_means_tls() {
        let (url, root) =
            without_sslrootcert("postgres://u@h/db?sslmode=require&sslrootcert=/etc/ca.pem")
                .unwrap();
        assert_eq!(url, "postgres://u@h/db?sslmode=require");
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (c, _) = config("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        let (c, _) = config("postgres://u@h/db").unwrap();
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
        assert!(config("postgres://u@h/db?sslrootcert=/etc/ca.pem").is_err());
    }
}

/// Against the tests' PostgreSQL (tests/postgres/start turns TLS on with a
/// CA of its own), when tests/run names it.
#[cfg(test)]
mod against_a_server {
    use super::*;

    fn server() -> Option<(String, String)> {
        let server = std::env::var("STRIPE_PLUGIN_TEST_POSTGRES").ok()?;
        let ca = std::env::var("STRIPE_PLUGIN_TEST_POSTGRES_CA").ok()?;
        Some((server, ca))
    }

    /// Security review S11: sslmode=require is honoured, and verified.
    #[test]
    fn require_is_tls_with_a_verified_certificate() {
        let Some((server, ca)) = server() else {
            eprintln!("not run: STRIPE_PLUGIN_TEST_POSTGRES(_CA) not set (tests/run sets them)");
            return;
        };
        let name = format!("tls_{}", std::process::id());
        let plain = crate::db::postgres::create_database(&server, &name).unwrap();
        let tls = format!("{plain}?sslmode=require&sslrootcert={ca}");
        let (tls_config, connector) = config(&tls).unwrap();
        let mut client = tls_config.connect(connector).unwrap();
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .unwrap();
        assert!(row.get::<_, bool>(0), "the connection is not TLS");
        let db = crate::db::Db::open(&tls).expect("the store over TLS migrates");
        db.kv_set("ns", "k", b"v", None).unwrap();
        let (unknown_ca, connector) = config(&format!("{plain}?sslmode=require")).unwrap();
        let refused = unknown_ca
            .connect(connector)
            .err()
            .map(|e| format!("{e:#}"));
        assert!(
            refused.is_some(),
            "a certificate of an unknown CA was accepted"
        );
    }
}
