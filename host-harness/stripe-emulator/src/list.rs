//! Lists as Stripe lists: newest first, `limit` (1 to 100, default 10),
//! cursor pagination by `starting_after` or `ending_before`, `has_more`, and
//! the filters each list documents (`customer`, `type`, `created`, ...).
//! https://docs.stripe.com/api/pagination

use crate::error::invalid;
use crate::params::int_param;
use crate::{Emulator, Reply};
use serde_json::{Value, json};

/// A filter on a listed object.
pub enum Filter<'a> {
    /// `field` equals the parameter of the same name, when it is given.
    Equals(&'a str),
    /// `field` matches a pattern with a trailing `*` (`charge.dispute.*`).
    Prefix(&'a str),
    /// `created` with `gt`, `gte`, `lt`, `lte` (or an exact timestamp).
    Created,
    /// `field` is one of the list parameter named, when it is given (`types[]`).
    OneOf(&'a str, &'a str),
}

fn created_matches(object: &Value, param: &Value) -> bool {
    let created = object["created"].as_i64().unwrap_or(0);
    let bound = |k: &str| param[k].as_str().and_then(|s| s.parse::<i64>().ok());
    if let Some(exact) = param.as_str().and_then(|s| s.parse::<i64>().ok()) {
        return created == exact;
    }
    bound("gt").is_none_or(|b| created > b)
        && bound("gte").is_none_or(|b| created >= b)
        && bound("lt").is_none_or(|b| created < b)
        && bound("lte").is_none_or(|b| created <= b)
}

impl Filter<'_> {
    fn keeps(&self, object: &Value, params: &Value) -> bool {
        match self {
            Filter::Equals(field) => params[*field]
                .as_str()
                .is_none_or(|want| object[*field] == want),
            Filter::Prefix(field) => params[*field].as_str().is_none_or(|want| {
                let stem = want.trim_end_matches('*');
                object[*field].as_str().is_some_and(|v| v.starts_with(stem))
            }),
            Filter::Created => {
                params["created"].is_null() || created_matches(object, &params["created"])
            }
            Filter::OneOf(field, list) => params[*list]
                .as_array()
                .is_none_or(|wanted| wanted.iter().any(|w| object[*field] == *w)),
        }
    }
}

impl Emulator {
    /// One page of `kind` objects of `account` that pass every filter.
    pub(crate) fn list(
        &self,
        account: &str,
        kind: &str,
        url: &str,
        params: &Value,
        filters: &[Filter],
        show: impl Fn(Value) -> Value,
    ) -> Reply {
        let limit = match int_param(params, "limit") {
            Ok(None) => 10,
            Ok(Some(l)) if (1..=100).contains(&l) => l as usize,
            Ok(Some(_)) => {
                return invalid(
                    None,
                    "Invalid limit: must be an integer between 1 and 100.",
                    Some("limit"),
                );
            }
            Err(e) => return e,
        };
        let all: Vec<Value> = self
            .store()
            .of_kind(account, kind)
            .filter(|s| s.object["deleted"] != true)
            .filter(|s| filters.iter().all(|f| f.keeps(&s.object, params)))
            .map(|s| s.object.clone())
            .collect();
        let position = |cursor: &str| all.iter().position(|o| o["id"] == cursor);
        let (page, has_more) = match (
            params["starting_after"].as_str(),
            params["ending_before"].as_str(),
        ) {
            (Some(after), _) => {
                let Some(start) = position(after)
                    .map(|at| at + 1)
                    .or_else(|| self.first_older(after, &all))
                else {
                    return crate::error::missing(kind, after);
                };
                let rest = &all[start..];
                (
                    rest.iter().take(limit).cloned().collect::<Vec<_>>(),
                    rest.len() > limit,
                )
            }
            (None, Some(before)) => {
                let Some(at) = position(before) else {
                    return crate::error::missing(kind, before);
                };
                let newer = &all[..at];
                let from = newer.len().saturating_sub(limit);
                (newer[from..].to_vec(), from > 0)
            }
            (None, None) => (all.iter().take(limit).cloned().collect(), all.len() > limit),
        };
        let data: Vec<Value> = page.into_iter().map(show).collect();
        Reply::json(
            200,
            &json!({"object": "list", "url": url, "has_more": has_more, "data": data}),
        )
    }

    /// Where the objects older than `cursor` start, when a filter left the
    /// cursor itself out of the list.
    fn first_older(&self, cursor: &str, all: &[Value]) -> Option<usize> {
        let store = self.store();
        let seq = store.stored(cursor)?.seq;
        let older = |o: &Value| {
            o["id"]
                .as_str()
                .and_then(|id| store.stored(id))
                .is_some_and(|s| s.seq < seq)
        };
        Some(all.iter().position(older).unwrap_or(all.len()))
    }
}
