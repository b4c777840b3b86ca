//! Stripe's form bodies with bracket notation (`a[b][0][c]=v`) as nested JSON,
//! the way Stripe's API reads them.

use serde_json::{Map, Value};

/// Parses `body` into an object; `[0]`, `[1]` ... segments become arrays.
pub fn parse(body: &[u8]) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(body) {
        let mut path = Vec::new();
        let (head, mut rest) = key
            .split_once('[')
            .map_or((key.as_ref(), ""), |(h, r)| (h, r));
        path.push(head.to_string());
        while let Some((seg, after)) = rest.split_once(']') {
            path.push(seg.to_string());
            rest = after.strip_prefix('[').unwrap_or(after);
        }
        insert(&mut root, &path, Value::String(value.into_owned()));
    }
    arrays(root)
}

fn insert(node: &mut Value, path: &[String], value: Value) {
    let Value::Object(map) = node else { return };
    match path {
        [] => {}
        // `a[]=x`: appended, as the next index.
        [last] if last.is_empty() => {
            map.insert(map.len().to_string(), value);
        }
        [last] => {
            map.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let child = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            insert(child, rest, value);
        }
    }
}

fn arrays(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let indexed = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
            if indexed {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), arrays(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

/// The decoded `(key, value)` pairs in order, for logs and snapshots.
pub fn pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_brackets_and_indexes() {
        let v = parse(b"mode=payment&line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=100&line_items[1][quantity]=2&metadata[a]=x+y");
        assert_eq!(
            v,
            serde_json::json!({"mode": "payment", "line_items": [{"price_data": {"unit_amount": "100"}}, {"quantity": "2"}], "metadata": {"a": "x y"}})
        );
    }

    /// Stripe's own curl examples write lists with empty brackets
    /// (`-d "payment_method_types[]"=card`), each one appending.
    /// https://docs.stripe.com/api/payment_intents/create
    #[test]
    fn empty_brackets_append_to_a_list() {
        let v = parse(b"payment_method_types[]=card&payment_method_types%5B%5D=bacs_debit&expand[]=latest_charge");
        assert_eq!(
            v,
            serde_json::json!({"payment_method_types": ["card", "bacs_debit"], "expand": ["latest_charge"]})
        );
    }
}
