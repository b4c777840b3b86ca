//! The portable form of the contract's values, the same from every runtime:
//! records are objects keyed by their WIT (kebab-case) field names, variant
//! cases `{"tag": case, "val": payload}` (no `val` without a payload), enum
//! cases their name, `none` is `null`, results `{"ok": ..}` or `{"err": ..}`,
//! lists and tuples arrays (`list<u8>` an array of numbers). Printed with
//! sorted keys and no spaces, so two runtimes' outputs compare byte for byte.

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value, json};
use wasmtime::component::Val;
use wasmtime::component::types::Type;

/// A value as wasmtime's dynamic API gave it.
pub fn from_val(v: &Val) -> Value {
    match v {
        Val::Bool(b) => json!(b),
        Val::U8(n) => json!(n),
        Val::U16(n) => json!(n),
        Val::U32(n) => json!(n),
        Val::U64(n) => json!(n),
        Val::S8(n) => json!(n),
        Val::S16(n) => json!(n),
        Val::S32(n) => json!(n),
        Val::S64(n) => json!(n),
        Val::Float32(n) => json!(n),
        Val::Float64(n) => json!(n),
        Val::Char(c) => json!(c.to_string()),
        Val::String(s) => json!(s),
        Val::List(items) | Val::Tuple(items) => Value::Array(items.iter().map(from_val).collect()),
        Val::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, v)| (name.clone(), from_val(v)))
                .collect(),
        ),
        Val::Variant(case, payload) => case_value(case, payload.as_deref()),
        Val::Enum(case) => json!(case),
        Val::Option(v) => v.as_deref().map_or(Value::Null, from_val),
        Val::Result(r) => match r {
            Ok(v) => json!({"ok": v.as_deref().map_or(Value::Null, from_val)}),
            Err(v) => json!({"err": v.as_deref().map_or(Value::Null, from_val)}),
        },
        Val::Flags(names) => json!(names),
        // Resources and async values: the contract has none.
        _ => json!({"unsupported": true}),
    }
}

fn case_value(case: &str, payload: Option<&Val>) -> Value {
    let mut m = Map::new();
    m.insert("tag".into(), json!(case));
    if let Some(p) = payload {
        m.insert("val".into(), from_val(p));
    }
    Value::Object(m)
}

/// A portable value, as wasmtime's dynamic API takes it for a value of `ty`.
pub fn to_val(ty: &Type, v: &Value) -> Result<Val> {
    let int = || {
        v.as_u64()
            .ok_or_else(|| anyhow!("expected an unsigned integer, got {v}"))
    };
    Ok(match ty {
        Type::Bool => Val::Bool(v.as_bool().ok_or_else(|| anyhow!("expected a bool"))?),
        Type::U8 => Val::U8(u8::try_from(int()?)?),
        Type::U16 => Val::U16(u16::try_from(int()?)?),
        Type::U32 => Val::U32(u32::try_from(int()?)?),
        Type::U64 => Val::U64(int()?),
        Type::S64 => Val::S64(v.as_i64().ok_or_else(|| anyhow!("expected an integer"))?),
        Type::String => Val::String(text(v)?.to_string()),
        Type::List(l) => Val::List(
            array(v)?
                .iter()
                .map(|x| to_val(&l.ty(), x))
                .collect::<Result<_>>()?,
        ),
        Type::Tuple(t) => Val::Tuple(
            t.types()
                .zip(array(v)?)
                .map(|(ty, x)| to_val(&ty, x))
                .collect::<Result<_>>()?,
        ),
        Type::Record(r) => Val::Record(
            r.fields()
                .map(|f| {
                    let x = v.get(f.name).unwrap_or(&Value::Null);
                    Ok((f.name.to_string(), to_val(&f.ty, x)?))
                })
                .collect::<Result<_>>()?,
        ),
        Type::Variant(var) => {
            let tag = text(&v["tag"])?;
            let case = var
                .cases()
                .find(|c| c.name == tag)
                .ok_or_else(|| anyhow!("no case {tag}"))?;
            let payload = match case.ty {
                Some(ty) => Some(Box::new(to_val(&ty, &v["val"])?)),
                None => None,
            };
            Val::Variant(tag.to_string(), payload)
        }
        Type::Enum(_) => Val::Enum(text(v)?.to_string()),
        Type::Option(o) => Val::Option(match v {
            Value::Null => None,
            x => Some(Box::new(to_val(&o.ty(), x)?)),
        }),
        _ => bail!("the contract has no argument of this type (floats, chars, flags, resources)"),
    })
}

fn text(v: &Value) -> Result<&str> {
    v.as_str()
        .ok_or_else(|| anyhow!("expected a string, got {v}"))
}

fn array(v: &Value) -> Result<&Vec<Value>> {
    v.as_array()
        .ok_or_else(|| anyhow!("expected an array, got {v}"))
}

/// A value of `ty` as serde serialized the host's generated bindings
/// (snake_case fields, PascalCase cases, externally tagged), in portable form.
pub fn from_serde(ty: &Type, v: &Value) -> Value {
    match ty {
        Type::List(l) => Value::Array(
            v.as_array()
                .map(|a| a.iter().map(|x| from_serde(&l.ty(), x)).collect())
                .unwrap_or_default(),
        ),
        Type::Tuple(t) => Value::Array(
            t.types()
                .zip(v.as_array().into_iter().flatten())
                .map(|(ty, x)| from_serde(&ty, x))
                .collect(),
        ),
        Type::Record(r) => Value::Object(
            r.fields()
                .map(|f| {
                    let rust = f.name.replace('-', "_");
                    let x = v
                        .get(&rust)
                        .or_else(|| v.get(format!("{rust}_")))
                        .unwrap_or(&Value::Null);
                    (f.name.to_string(), from_serde(&f.ty, x))
                })
                .collect(),
        ),
        Type::Variant(var) => {
            let (pascal, payload) = externally_tagged(v);
            let Some(case) = var.cases().find(|c| to_pascal(c.name) == pascal) else {
                return Value::Null;
            };
            let mut m = Map::new();
            m.insert("tag".into(), json!(case.name));
            if let (Some(ty), Some(p)) = (case.ty, payload) {
                m.insert("val".into(), from_serde(&ty, p));
            }
            Value::Object(m)
        }
        Type::Enum(e) => {
            let pascal = v.as_str().unwrap_or_default();
            e.names()
                .find(|n| to_pascal(n) == pascal)
                .map_or(Value::Null, |n| json!(n))
        }
        Type::Option(o) => match v {
            Value::Null => Value::Null,
            x => from_serde(&o.ty(), x),
        },
        Type::Result(r) => {
            let (tag, payload) = externally_tagged(v);
            let (key, ty) = if tag == "Ok" {
                ("ok", r.ok())
            } else {
                ("err", r.err())
            };
            let inner = match (ty, payload) {
                (Some(ty), Some(p)) => from_serde(&ty, p),
                _ => Value::Null,
            };
            json!({ key: inner })
        }
        _ => v.clone(),
    }
}

/// `"Case"` or `{"Case": payload}`.
fn externally_tagged(v: &Value) -> (String, Option<&Value>) {
    match v {
        Value::String(s) => (s.clone(), None),
        Value::Object(m) => m
            .iter()
            .next()
            .map(|(k, p)| (k.clone(), Some(p)))
            .unwrap_or_default(),
        _ => (String::new(), None),
    }
}

/// `status-changed` -> `StatusChanged`, as bindgen names a case.
fn to_pascal(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// Canonical text: keys sorted, no whitespace.
pub fn print(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Bytes as the portable form shows stored data: the text when it is UTF-8,
/// otherwise `{"hex": ..}`.
pub fn bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => json!(s),
        Err(_) => json!({ "hex": hex::encode(b) }),
    }
}

/// The inverse of [`bytes`].
pub fn parse_bytes(v: &Value) -> Result<Vec<u8>> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        other => Ok(hex::decode(text(&other["hex"])?)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_sorts_keys_and_leaves_no_space() {
        let v = json!({"b": [1, {"z": null, "a": "x\n"}], "a": true});
        assert_eq!(print(&v), r#"{"a":true,"b":[1,{"a":"x\n","z":null}]}"#);
    }

    #[test]
    fn pascal_case_is_what_bindgen_names_a_case() {
        assert_eq!(to_pascal("status-changed"), "StatusChanged");
        assert_eq!(to_pascal("paid"), "Paid");
    }
}
