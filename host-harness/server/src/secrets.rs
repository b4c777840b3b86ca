//! Where the host's own secrets come from, and where they never go: the
//! webhook signing secrets and the pay-link keys come from a flag, the
//! environment (`STRIPE_PLUGIN_WEBHOOK_SECRETS`,
//! `STRIPE_PLUGIN_PAY_LINK_SECRETS`: comma-separated) or a file (one per
//! line), so that none needs to sit in argv, where every local user reads
//! it. A pay-link key made by the host itself lives in a `0600` file beside
//! the SQLite database, never in the database beside the tokens it signs
//! (security review S11); many workers on PostgreSQL must be given theirs.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The secrets in `path`: one per line; blank lines and `#` comments skipped.
pub fn read_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading secrets from {}", path.display()))?;
    if std::fs::metadata(path).is_ok_and(|m| m.mode() & 0o077 != 0) {
        tracing::warn!(path = %path.display(), "a secrets file is readable by other users; make it 0600");
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// A new file only its owner can read (`0600`), never through a symlink,
/// never over an existing file.
pub fn create_private(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("making the private file {}", path.display()))
}

/// The file that holds the pay-link key the host made for a SQLite database.
pub fn key_file_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".pay-link-key");
    PathBuf::from(name)
}

/// The file that holds the webhook signing secrets `stripe-setup` kept for
/// a SQLite database (one per registered endpoint).
pub fn webhook_secrets_file_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".webhook-secrets");
    PathBuf::from(name)
}

/// The pay-link key of a host configured with none. On SQLite: the one in
/// the key file beside the database, made on first start; a key an older
/// version kept in the database moves into the file (links already sent
/// keep working) and leaves the database. On PostgreSQL every worker needs
/// the same key, from its configuration: an older database's key is still
/// used, with a warning, and none is ever made there.
pub fn unconfigured_pay_link_key(db_target: &Path, db: &crate::db::Db) -> Result<String> {
    let legacy = db.legacy_host_secret("pay-link")?;
    if crate::db::is_postgres(&db_target.to_string_lossy()) {
        let Some(key) = legacy else {
            bail!(
                "on PostgreSQL every worker needs the same pay-link key: give it in STRIPE_PLUGIN_PAY_LINK_SECRETS or --pay-link-secrets-file"
            );
        };
        tracing::warn!(
            "the pay-link key is kept in the database beside the tokens it signs; move it to STRIPE_PLUGIN_PAY_LINK_SECRETS"
        );
        return Ok(key);
    }
    let path = key_file_of(db_target);
    if let Ok(keys) = read_file(&path)
        && let Some(key) = keys.into_iter().next()
    {
        return Ok(key);
    }
    let key = match legacy {
        Some(key) => key,
        None => format!("plk_{}", hex::encode(crate::tokens::random_bytes::<32>()?)),
    };
    let mut file = create_private(&path)?;
    writeln!(file, "{key}")?;
    file.sync_all()?;
    db.delete_legacy_host_secret("pay-link")?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_key_lives_in_a_private_file_and_an_old_one_leaves_the_database() {
        let dir = std::env::temp_dir().join(format!("secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("host.db");
        let db = crate::db::Db::open(&path.to_string_lossy()).unwrap();
        db.sqlite()
            .unwrap()
            .execute(
                "INSERT INTO host_secrets (name, value) VALUES ('pay-link', 'plk_old')",
                [],
            )
            .unwrap();
        assert_eq!(unconfigured_pay_link_key(&path, &db).unwrap(), "plk_old");
        assert_eq!(db.legacy_host_secret("pay-link").unwrap(), None);
        let file = key_file_of(&path);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o077, 0);
        assert_eq!(unconfigured_pay_link_key(&path, &db).unwrap(), "plk_old");
        std::fs::remove_file(&file).unwrap();
        let fresh = unconfigured_pay_link_key(&path, &db).unwrap();
        assert!(fresh.starts_with("plk_") && fresh.len() == 68, "{fresh}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
