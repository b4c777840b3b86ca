//! `host-harness replay`: runs portable scenarios through wasmtime with
//! in-memory imports that do exactly what the scenario says, and prints one
//! canonical JSON line per call. The Node runner (`tests/portability/node`)
//! implements the same imports; the two outputs must be identical.

use super::canonical::{self, bytes, from_val, print};
use super::{Answer, Call, FORMAT, KvEntry, Scenario, answer_keys};
use crate::bindings::Plugin;
use crate::bindings::billing::stripe_plugin::{clock, email, errors, http, kv, mac};
use crate::bindings::billing::stripe_plugin::{outcomes, payments, platform};
use crate::imports::MerchantKeys;
use crate::imports::{hmac_sha256, signs, verify};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use wasmtime::component::{Component, HasSelf, Linker, Val};
use wasmtime::{Engine, Store};

/// The imports' state across one scenario's calls.
#[derive(Default)]
pub struct ReplayState {
    keys: BTreeMap<String, MerchantKeys>,
    kv: BTreeMap<String, BTreeMap<String, (Vec<u8>, Option<u64>)>>,
    answers: HashMap<String, (Vec<Answer>, usize)>,
    sent: BTreeSet<(String, String)>,
    namespace: String,
    now_ms: u64,
    emails: Vec<Value>,
    requests: Vec<Value>,
}

impl ReplayState {
    fn new(s: &Scenario) -> Result<Self> {
        let mut kv = BTreeMap::new();
        for (ns, entries) in &s.kv {
            let mut m = BTreeMap::new();
            for (k, e) in entries {
                m.insert(k.clone(), (canonical::parse_bytes(&e.value)?, e.expires_ms));
            }
            kv.insert(ns.clone(), m);
        }
        Ok(Self {
            keys: s.keys.clone(),
            kv,
            answers: s
                .http
                .iter()
                .map(|(k, v)| (k.clone(), (v.clone(), 0)))
                .collect(),
            ..Self::default()
        })
    }

    fn entry(&self, key: &str) -> Option<&Vec<u8>> {
        let (value, expires) = self.kv.get(&self.namespace)?.get(key)?;
        match expires {
            Some(at) if *at <= self.now_ms => None,
            _ => Some(value),
        }
    }

    fn store(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) {
        let expires = ttl_ms.map(|t| self.now_ms.saturating_add(t));
        self.kv
            .entry(self.namespace.clone())
            .or_default()
            .insert(key, (value, expires));
    }

    fn kv_dump(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (ns, entries) in &self.kv {
            let m: serde_json::Map<String, Value> = entries
                .iter()
                .map(|(k, (v, exp))| {
                    let e = KvEntry {
                        value: bytes(v),
                        expires_ms: *exp,
                    };
                    (k.clone(), serde_json::to_value(e).unwrap_or(Value::Null))
                })
                .collect();
            out.insert(ns.clone(), Value::Object(m));
        }
        Value::Object(out)
    }

    fn next_answer(&mut self, method: &str, url: &str) -> Option<Answer> {
        let (exact, bare) = answer_keys(method, url);
        let key = if self.answers.contains_key(&exact) {
            exact
        } else {
            bare
        };
        let (list, taken) = self.answers.get_mut(&key)?;
        let answer = list
            .get((*taken).min(list.len().saturating_sub(1)))?
            .clone();
        *taken += 1;
        Some(answer)
    }
}

impl http::Host for ReplayState {
    fn fetch(&mut self, req: http::Request) -> Result<http::Response, http::HttpError> {
        let method = req.method.as_str();
        self.requests.push(json!({
            "method": method.to_lowercase(),
            "url": req.url,
            "headers": req.headers,
            "body": bytes(&req.body),
        }));
        let Some(answer) = self.next_answer(method, &req.url) else {
            return Err(http::HttpError::Connection(format!(
                "no canned answer for {method} {}",
                req.url
            )));
        };
        match (&answer.error, answer.status) {
            (Some(e), _) => Err(http_error(e)),
            (None, status) => Ok(http::Response {
                status: status.unwrap_or(200),
                headers: answer.headers,
                body: answer.body.into_bytes(),
            }),
        }
    }
}

fn http_error(e: &Value) -> http::HttpError {
    let val = e["val"].as_str().unwrap_or_default().to_string();
    match e["tag"].as_str() {
        Some("timeout") => http::HttpError::Timeout,
        Some("connection") => http::HttpError::Connection(val),
        Some("denied") => http::HttpError::Denied(val),
        _ => http::HttpError::Other(val),
    }
}

impl kv::Host for ReplayState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        Ok(self.entry(&key).cloned())
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), kv::KvError> {
        self.store(key, value, ttl_ms);
        Ok(())
    }

    fn delete(&mut self, key: String) -> Result<(), kv::KvError> {
        if let Some(m) = self.kv.get_mut(&self.namespace) {
            m.remove(&key);
        }
        Ok(())
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<bool, kv::KvError> {
        if self.entry(&key) != expected.as_ref() {
            return Ok(false);
        }
        self.store(key, new, ttl_ms);
        Ok(true)
    }
}

impl email::Host for ReplayState {
    fn send(&mut self, msg: email::Message) -> Result<email::Delivery, email::EmailError> {
        let first = self
            .sent
            .insert((self.namespace.clone(), msg.dedupe_key.clone()));
        let delivery = if first { "sent" } else { "duplicate" };
        self.emails.push(json!({
            "namespace": self.namespace,
            "delivery": delivery,
            "message": {
                "to": msg.to, "cc": msg.cc, "subject": msg.subject,
                "text-body": msg.text_body, "html-body": msg.html_body,
                "dedupe-key": msg.dedupe_key,
            },
        }));
        Ok(if first {
            email::Delivery::Sent
        } else {
            email::Delivery::Duplicate
        })
    }
}

impl clock::Host for ReplayState {
    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
}

impl mac::Host for ReplayState {
    fn key_count(&mut self, purpose: mac::KeyPurpose) -> u32 {
        let n = self
            .keys
            .get(&self.namespace)
            .map_or(0, |k| k.of(purpose).len());
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn hmac_sha256(
        &mut self,
        purpose: mac::KeyPurpose,
        index: u32,
        message: Vec<u8>,
    ) -> Result<Vec<u8>, mac::MacError> {
        if !signs(purpose) {
            return Err(mac::MacError::VerifyOnly);
        }
        let keys = self
            .keys
            .get(&self.namespace)
            .ok_or(mac::MacError::NoSuchKey)?;
        let secret = keys
            .of(purpose)
            .get(index as usize)
            .ok_or(mac::MacError::NoSuchKey)?;
        hmac_sha256(secret, &message)
    }

    fn verify_hmac_sha256(
        &mut self,
        purpose: mac::KeyPurpose,
        message: Vec<u8>,
        tags: Vec<Vec<u8>>,
    ) -> Result<bool, mac::MacError> {
        let secrets = self
            .keys
            .get(&self.namespace)
            .map_or(&[][..], |k| k.of(purpose));
        verify(secrets, &message, &tags)
    }
}

impl platform::Host for ReplayState {}
impl payments::Host for ReplayState {}
impl errors::Host for ReplayState {}
impl outcomes::Host for ReplayState {}

/// The component, ready to replay scenarios against.
pub struct Replayer {
    engine: Engine,
    component: Component,
    linker: Linker<ReplayState>,
}

const HANDLERS: &str = "billing:stripe-plugin/handlers@0.3.0";

impl Replayer {
    pub fn new(wasm: &[u8]) -> Result<Self> {
        let engine = Engine::default();
        let component = Component::new(&engine, wasm)?;
        let mut linker = Linker::new(&engine);
        Plugin::add_to_linker::<ReplayState, HasSelf<ReplayState>>(&mut linker, |s| s)?;
        Ok(Self {
            engine,
            component,
            linker,
        })
    }

    /// Every call of `scenario`, one canonical line each, after a header line.
    pub fn run(&self, scenario: &Scenario) -> Result<Vec<String>> {
        if scenario.format != FORMAT {
            bail!(
                "{}: format \"{}\" is not {FORMAT}",
                scenario.name,
                scenario.format
            );
        }
        let mut state = ReplayState::new(scenario)?;
        let mut lines = vec![print(&json!({"scenario": scenario.name}))];
        for (i, call) in scenario.calls.iter().enumerate() {
            let (outcome, next) = self.call(state, call)?;
            state = next;
            let line = json!({
                "call": i,
                "handler": call.handler,
                "outcome": outcome,
                "kv": state.kv_dump(),
                "emails": std::mem::take(&mut state.emails),
                "http": std::mem::take(&mut state.requests),
            });
            lines.push(print(&line));
        }
        Ok(lines)
    }

    /// One call on a fresh instance; a trap is an outcome, not an error.
    fn call(&self, mut state: ReplayState, call: &Call) -> Result<(Value, ReplayState)> {
        state.now_ms = call.now_ms;
        state.namespace = match &call.namespace {
            Some(ns) => ns.clone(),
            None => call
                .args
                .first()
                .and_then(|m| m["account-id"].as_str())
                .unwrap_or_default()
                .to_string(),
        };
        let mut store = Store::new(&self.engine, state);
        let instance = self.linker.instantiate(&mut store, &self.component)?;
        let iface = instance
            .get_export_index(&mut store, None, HANDLERS)
            .ok_or_else(|| anyhow!("the component exports no {HANDLERS}"))?;
        let index = instance
            .get_export_index(&mut store, Some(&iface), &call.handler)
            .ok_or_else(|| anyhow!("no handler {}", call.handler))?;
        let func = instance
            .get_func(&mut store, index)
            .ok_or_else(|| anyhow!("{} is not a function", call.handler))?;
        let ty = func.ty(&store);
        let params: Vec<Val> = ty
            .params()
            .zip(&call.args)
            .map(|((name, ty), v)| {
                canonical::to_val(&ty, v).with_context(|| format!("{}: {name}", call.handler))
            })
            .collect::<Result<_>>()?;
        if params.len() != call.args.len() || params.len() != ty.params().len() {
            bail!("{} takes {} arguments", call.handler, ty.params().len());
        }
        let mut results = vec![Val::Bool(false); ty.results().len()];
        let outcome = match func.call(&mut store, &params, &mut results) {
            Ok(()) => results.first().map_or(Value::Null, from_val),
            Err(_) => json!({"trap": true}),
        };
        Ok((outcome, store.into_data()))
    }
}

/// `host-harness replay FILE...`: prints every scenario's lines.
pub fn main(files: &[std::path::PathBuf]) -> Result<()> {
    let replayer = Replayer::new(crate::runtime::PLUGIN_WASM)?;
    let mut out = std::io::stdout().lock();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| f.display().to_string())?;
        let scenario: Scenario =
            serde_json::from_str(&text).with_context(|| f.display().to_string())?;
        for line in replayer.run(&scenario)? {
            std::io::Write::write_all(&mut out, line.as_bytes())?;
            std::io::Write::write_all(&mut out, b"\n")?;
        }
    }
    Ok(())
}
