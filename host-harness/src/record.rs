//! `--record-http`: every request the plugin sent and what came back, as JSON
//! lines, without `Authorization` (the gate adds it after the copy is taken).

use crate::runtime::billing::stripe_plugin::http::{HttpError, Request, Response};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
            Ok(r) => (Some(r.status), String::from_utf8_lossy(&r.body).into_owned(), None),
            Err(e) => (None, String::new(), Some(format!("{e:?}"))),
        };
        Self {
            method: req.method.clone(),
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
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file: Some(Mutex::new(file)), memory: None })
    }

    pub fn in_memory(mut self) -> Self {
        self.memory = Some(Mutex::new(Vec::new()));
        self
    }

    pub fn record(&self, x: Exchange) {
        if let Some(f) = &self.file {
            if let Ok(line) = serde_json::to_string(&x) {
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(f, "{line}");
            }
        }
        if let Some(m) = &self.memory {
            m.lock().unwrap_or_else(|p| p.into_inner()).push(x);
        }
    }

    /// Takes what was recorded in memory so far.
    pub fn drain(&self) -> Vec<Exchange> {
        self.memory.as_ref().map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner()))).unwrap_or_default()
    }
}
