//! Records the calls a `Runtime` makes as a portable scenario: each call's
//! handler, clock and arguments, each merchant's keys, and every answer the
//! plugin got over HTTP. The test suite taps the runtimes behind its snapshots
//! (`STRIPE_PLUGIN_SCENARIO_DIR`), so the portability check replays the very
//! inputs the snapshots were made from.

use super::canonical::from_serde;
use super::{Answer, Call, FORMAT, Scenario, answer_keys};
use crate::bindings::billing::stripe_plugin::http::{HttpError, Request, Response};
use crate::imports::MerchantKeys;
use crate::ports::CallTap;
use crate::runtime::Runtime;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentFunc;
use wasmtime::component::types::{ComponentItem, Type};

/// A scenario being recorded; written to `<dir>/<name>.json` when dropped.
pub struct Tap {
    path: PathBuf,
    funcs: HashMap<String, ComponentFunc>,
    scenario: Mutex<Scenario>,
}

impl Tap {
    pub fn new(engine: &Engine, component: &Component, dir: PathBuf, name: &str) -> Self {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            path: dir.join(format!("{safe}.json")),
            funcs: handlers(engine, component),
            scenario: Mutex::new(Scenario {
                format: FORMAT.into(),
                name: name.into(),
                ..Scenario::default()
            }),
        }
    }

    /// Records every call `runtime` makes from now on as the portable
    /// scenario `name`, written into `dir` when the runtime is dropped.
    pub fn attach(runtime: &mut Runtime, dir: PathBuf, name: &str) {
        let tap = Tap::new(runtime.engine(), runtime.component(), dir, name);
        runtime.set_tap(std::sync::Arc::new(tap));
    }
}

impl CallTap for Tap {
    /// Records a call about to be made, its arguments as serde gave them.
    fn call(
        &self,
        handler: &str,
        now_ms: u64,
        namespace: &str,
        keys: &dyn Fn() -> MerchantKeys,
        args: &[Value],
    ) {
        let types: Vec<Type> = self
            .funcs
            .get(handler)
            .map(|f| f.params().map(|(_, ty)| ty).collect())
            .unwrap_or_default();
        let args = types
            .iter()
            .zip(args)
            .map(|(ty, v)| from_serde(ty, v))
            .collect();
        let mut s = self.scenario.lock().unwrap_or_else(|p| p.into_inner());
        s.keys.entry(namespace.to_string()).or_insert_with(keys);
        s.calls.push(Call {
            handler: handler.into(),
            now_ms,
            namespace: Some(namespace.to_string()),
            args,
            expect: None,
        });
    }

    /// Records the outcome of the call just made (serde's form; `None`: a trap).
    fn outcome(&self, result: Option<Value>) {
        let mut s = self.scenario.lock().unwrap_or_else(|p| p.into_inner());
        let Some(call) = s.calls.last_mut() else {
            return;
        };
        let ty = self
            .funcs
            .get(&call.handler)
            .and_then(|f| f.results().next());
        call.expect = Some(match (result, ty) {
            (Some(v), Some(ty)) => from_serde(&ty, &v),
            _ => json!({"trap": true}),
        });
    }

    /// Records what the plugin got for a request.
    fn answer(&self, req: &Request, result: &Result<Response, HttpError>) {
        let (key, _) = answer_keys(req.method.as_str(), &req.url);
        let answer = match result {
            Ok(r) => Answer {
                status: Some(r.status),
                headers: r.headers.clone(),
                body: String::from_utf8_lossy(&r.body).into_owned(),
                error: None,
            },
            Err(e) => Answer {
                status: None,
                headers: Vec::new(),
                body: String::new(),
                error: Some(http_error(e)),
            },
        };
        let mut s = self.scenario.lock().unwrap_or_else(|p| p.into_inner());
        s.http.entry(key).or_default().push(answer);
    }
}

fn http_error(e: &HttpError) -> Value {
    match e {
        HttpError::Timeout => json!({"tag": "timeout"}),
        HttpError::Connection(m) => json!({"tag": "connection", "val": m}),
        HttpError::Denied(m) => json!({"tag": "denied", "val": m}),
        HttpError::Other(m) => json!({"tag": "other", "val": m}),
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let s = self.scenario.get_mut().unwrap_or_else(|p| p.into_inner());
        if s.calls.is_empty() {
            return;
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(text) = serde_json::to_string_pretty(s) {
            let _ = std::fs::write(&self.path, text);
        }
    }
}

/// Each export of `handlers` by name, with its type.
fn handlers(engine: &Engine, component: &Component) -> HashMap<String, ComponentFunc> {
    let mut out = HashMap::new();
    for (_, item) in component.component_type().exports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        for (name, item) in instance.exports(engine) {
            if let ComponentItem::ComponentFunc(f) = item.ty {
                out.insert(name.to_string(), f);
            }
        }
    }
    out
}
