//! `--record-http`: every request the plugin sent and what came back, as JSON
//! lines, without `Authorization` (the gate adds it after the copy is taken).

use crate::bindings::billing::stripe_plugin::http::{HttpError, Request, Response};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: Option<u16>,
    pub response: String,
    pub error: Option<String>,
}

impl Exchange {
    pub fn new(req: &Request, result: &Result<Response, HttpError>) -> Self {
        let (status, response, error) = match result {
            Ok(r) => (
                Some(r.status),
                String::from_utf8_lossy(&r.body).into_owned(),
                None,
            ),
            Err(e) => (
                None,
                String::new(),
                Some(crate::bindings::http_error_text(e)),
            ),
        };
        Self {
            method: req.method.as_str().to_string(),
            url: req.url.clone(),
            headers: req.headers.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            status,
            response,
            error,
        }
    }
}

/// Where exchanges go: a JSON-lines file, memory (for the demo and tests), both or neither.
#[derive(Default)]
pub struct Recorder {
    file: Option<Mutex<File>>,
    memory: Option<Mutex<Vec<Exchange>>>,
}

impl Recorder {
    /// Appends to `path`, made `0600`: the answers hold client secrets and
    /// customers' details (security review S11).
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(Self {
            file: Some(Mutex::new(file)),
            memory: None,
        })
    }

    /// A recorder for a test run: in memory, and also appended to a file in
    /// `$STRIPE_PLUGIN_RECORD_DIR` when set, so that the suite's requests can be
    /// checked against Stripe's SDK afterwards (tests/conformance).
    pub fn for_tests(name: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let file = std::env::var_os("STRIPE_PLUGIN_RECORD_DIR").and_then(|dir| {
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path =
                std::path::Path::new(&dir).join(format!("{name}-{}-{n}.jsonl", std::process::id()));
            std::fs::create_dir_all(&dir).ok()?;
            Self::to_file(&path).ok()
        });
        file.unwrap_or_default().in_memory()
    }

    pub fn in_memory(mut self) -> Self {
        self.memory = Some(Mutex::new(Vec::new()));
        self
    }

    pub fn record(&self, x: Exchange) {
        if let Some(f) = &self.file
            && let Ok(line) = serde_json::to_string(&x)
        {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(f, "{line}");
        }
        if let Some(m) = &self.memory {
            m.lock().unwrap_or_else(|p| p.into_inner()).push(x);
        }
    }

    /// Takes what was recorded in memory so far.
    pub fn drain(&self) -> Vec<Exchange> {
        self.memory
            .as_ref()
            .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner())))
            .unwrap_or_default()
    }
}

/// Every Stripe exchange the runtime reports, recorded.
impl crate::ports::Observer for Recorder {
    fn stripe_exchange(&self, req: &Request, result: &Result<Response, HttpError>) {
        self.record(Exchange::new(req, result));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Security review S11: the recording holds client secrets and PII.
    #[test]
    fn a_recording_is_readable_by_this_user_only() {
        let path = std::env::temp_dir().join(format!("record-mode-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        drop(Recorder::to_file(&path).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o077, 0);
        std::fs::remove_file(&path).unwrap();
    }
}
