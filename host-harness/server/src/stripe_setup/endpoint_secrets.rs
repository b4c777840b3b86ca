//! The signing secrets of the endpoints `stripe-setup` registered, in one
//! `0600` file: never in the database beside what they protect (security
//! review S11), never in argv or a log. `serve` reads it as it reads any
//! secrets file (one secret a line, `#` comments skipped); the comment
//! above each secret names its endpoint, so that a later run knows which
//! secrets it still has.
//!
//! ```text
//! # we_123 connect
//! whsec_...
//! ```

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Endpoint id → (its role's tag, its secret), in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSecrets(pub BTreeMap<String, (String, String)>);

impl EndpointSecrets {
    /// The file's secrets by endpoint; none when there is no file yet.
    pub fn read(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Ok(Self::default());
        }
        crate::secrets::read_file(path)?; // warns of a file others can read
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::parse(&text))
    }

    fn parse(text: &str) -> Self {
        let mut out = BTreeMap::new();
        let mut named: Option<(String, String)> = None;
        for line in text.lines().map(str::trim) {
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                named = match (words.next(), words.next()) {
                    (Some(id), Some(role)) if id.starts_with("we_") => {
                        Some((id.to_string(), role.to_string()))
                    }
                    _ => None,
                };
            } else if !line.is_empty() {
                if let Some((id, role)) = named.take() {
                    out.insert(id, (role, line.to_string()));
                }
            }
        }
        Self(out)
    }

    fn render(&self) -> String {
        let mut text = String::from(
            "# The webhook signing secrets of the endpoints `host-harness stripe-setup`\n# registered; serve reads them. Keep this file 0600.\n",
        );
        for (id, (role, secret)) in &self.0 {
            text.push_str(&format!("# {id} {role}\n{secret}\n"));
        }
        text
    }

    /// Replaces the file in one step: a new `0600` file beside it, synced,
    /// then renamed over it.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut name = path.as_os_str().to_owned();
        name.push(".new");
        let temporary = std::path::PathBuf::from(name);
        let _ = std::fs::remove_file(&temporary);
        let mut file = crate::secrets::create_private(&temporary)?;
        file.write_all(self.render().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
            .with_context(|| format!("replacing {}", path.display()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_serve_sees_only_the_secrets() {
        let mut s = EndpointSecrets::default();
        s.0.insert("we_2".into(), ("connect".into(), "whsec_b".into()));
        s.0.insert("we_1".into(), ("platform".into(), "whsec_a".into()));
        let text = s.render();
        assert_eq!(EndpointSecrets::parse(&text), s);
        let dir = std::env::temp_dir().join(format!("endpoint-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("host.db.webhook-secrets");
        s.write(&path).unwrap();
        assert_eq!(
            crate::secrets::read_file(&path).unwrap(),
            ["whsec_a", "whsec_b"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
