//! on-sync: the webhooks that never arrived, read back from Stripe's
//! `/v1/events` and applied through the same path as on-webhook.
//!
//! A pass walks the window from the last sync to now, newest first (as
//! Stripe lists), a few pages per call; when the budget ends mid-window, the
//! next call goes on below the oldest event read (`until`). When a pass
//! reaches the start of its window, the next window starts at the newest
//! event the pass saw. Events in the same second may be read twice; their
//! seen-markers make the second reading a no-op.
//!
//! Only the types the plugin handles are listed, and each event is read on
//! its own: one it cannot read is counted and passed over. An event that
//! must wait for another (a refund listed before its payment, as newest
//! first makes usual after an outage) never stalls the window: it is
//! deferred, tried again at the end of the call, and carried in the cursor
//! (read again by id) until it applies or Stripe forgets it.
//! https://docs.stripe.com/api/events/list
//! https://docs.stripe.com/webhooks#retries (Stripe keeps events 30 days)

use super::webhook::{Seen, apply_event};
use crate::contract::{Merchant, PluginError, SyncOutcome};
use crate::events::{Event, Listed};
use crate::imports::{self, CallError};
use crate::stripe::request;

/// Pages of 100 events read per call.
const PAGES_PER_CALL: u32 = 5;
/// How far back the first sync looks: as long as Stripe keeps events.
const FIRST_LOOK_BACK_SECS: u64 = 30 * 24 * 3600;
/// Events carried in the cursor while they wait for another; beyond this a
/// call fails (retryable) rather than forget one.
const MAX_DEFERRED: usize = 100;

/// Where the sync stands: the `next-cursor` the host keeps between calls.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Cursor {
    /// The window starts here (Unix seconds).
    since: u64,
    /// A pass in progress goes on at or below this.
    until: Option<u64>,
    /// The newest event the pass in progress has seen.
    high: Option<u64>,
    /// Events that had to wait for another, to be read again by id.
    deferred: Vec<String>,
}

impl Cursor {
    fn encode(&self) -> String {
        let mut f = form_urlencoded::Serializer::new(String::new());
        f.append_pair("since", &self.since.to_string());
        if let Some(u) = self.until {
            f.append_pair("until", &u.to_string());
        }
        if let Some(h) = self.high {
            f.append_pair("high", &h.to_string());
        }
        for id in &self.deferred {
            f.append_pair("defer", id);
        }
        f.finish()
    }

    fn decode(text: &str) -> Option<Self> {
        let mut c = Cursor::default();
        for (k, v) in form_urlencoded::parse(text.as_bytes()) {
            match k.as_ref() {
                "since" => c.since = v.parse().ok()?,
                "until" => c.until = Some(v.parse().ok()?),
                "high" => c.high = Some(v.parse().ok()?),
                "defer" => c.deferred.push(v.into_owned()),
                _ => {}
            }
        }
        Some(c)
    }

    /// After a pass read everything down to `since`.
    fn finished(self, newest_read: Option<u64>) -> Self {
        let top = self.high.max(newest_read).unwrap_or(self.since);
        Cursor {
            since: top.max(self.since),
            until: None,
            high: None,
            deferred: self.deferred,
        }
    }

    /// After a call whose budget ended at `oldest_read`.
    fn paused(self, newest_read: Option<u64>, oldest_read: u64) -> Self {
        Cursor {
            since: self.since,
            until: Some(oldest_read),
            high: self.high.max(newest_read),
            deferred: self.deferred,
        }
    }
}

fn start(given: Option<&str>, now_secs: u64) -> Result<Cursor, PluginError> {
    match given {
        Some(text) => Cursor::decode(text)
            .ok_or_else(|| PluginError::InvalidInput(format!("not a sync cursor: '{text}'"))),
        None => Ok(Cursor {
            since: now_secs.saturating_sub(FIRST_LOOK_BACK_SECS),
            ..Cursor::default()
        }),
    }
}

pub fn on_sync(m: &Merchant, given: Option<&str>) -> Result<SyncOutcome, PluginError> {
    let now = u64::try_from(imports::now_secs()).unwrap_or(0);
    let mut cursor = start(given, now)?;
    let mut out = SyncOutcome {
        read: 0,
        applied: 0,
        more: false,
        next_cursor: String::new(),
        transitions: Vec::new(),
    };
    let (mut newest, mut oldest): (Option<u64>, Option<u64>) = (None, None);
    let mut after: Option<String> = None;
    let mut more = true;
    let mut waiting: Vec<Box<Event>> = Vec::new();
    for _ in 0..PAGES_PER_CALL {
        let page = imports::events(
            m,
            &request::list_events(cursor.since, cursor.until, after.as_deref()),
        )?;
        more = page.has_more == Some(true);
        after = page.data.last().and_then(|e| e.id()).map(str::to_string);
        // Oldest first within the page, as they happened.
        for listed in page.data.into_iter().rev() {
            let created = listed.created().unwrap_or(cursor.since);
            newest = newest.max(Some(created));
            oldest = Some(oldest.map_or(created, |o| o.min(created)));
            out.read += 1;
            match listed {
                Listed::Event(event) => {
                    if !apply(m, &event, &mut out)? {
                        waiting.push(event);
                    }
                }
                Listed::Unreadable(_) => imports::count("unreadable-events")?,
            }
        }
        if !more || after.is_none() {
            break;
        }
    }
    // What waited may apply now that older events were read.
    let mut still = Vec::new();
    for event in waiting {
        if !apply(m, &event, &mut out)? {
            still.push(event.id.clone());
        }
    }
    cursor.deferred = retry_deferred(m, std::mem::take(&mut cursor.deferred), &mut out)?;
    cursor.deferred.extend(still);
    if cursor.deferred.len() > MAX_DEFERRED {
        return Err(PluginError::NotReady(format!(
            "{} events are waiting for others; retry the sync later",
            cursor.deferred.len()
        )));
    }
    let next = match (more, oldest) {
        (true, Some(oldest)) => cursor.paused(newest, oldest),
        _ => cursor.finished(newest),
    };
    out.more = next.until.is_some();
    out.next_cursor = next.encode();
    Ok(out)
}

/// Applies one event; false when it must wait for another (`not-ready`).
fn apply(m: &Merchant, event: &Event, out: &mut SyncOutcome) -> Result<bool, PluginError> {
    match apply_event(m, event) {
        Ok(applied) => {
            if applied.before == Seen::New {
                out.applied += 1;
            }
            out.transitions.extend(applied.settled.transitions);
            Ok(true)
        }
        Err(PluginError::NotReady(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Events deferred by earlier calls, read again by id and applied; returns
/// those that must still wait. One Stripe no longer has is forgotten.
fn retry_deferred(
    m: &Merchant,
    ids: Vec<String>,
    out: &mut SyncOutcome,
) -> Result<Vec<String>, PluginError> {
    let mut still = Vec::new();
    for id in ids {
        let raw = match imports::call_raw_public(m, &request::retrieve_event(&id)) {
            Ok(raw) => raw,
            Err(CallError::Stripe(f)) if f.error.status == 404 => {
                imports::count("deferred-events-forgotten")?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match Event::parse(&raw) {
            Some(event) if apply(m, &event, out)? => {}
            Some(_) => still.push(id),
            None => imports::count("unreadable-events")?,
        }
    }
    Ok(still)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_round_trips_and_moves_as_a_pass_goes() {
        let start = Cursor {
            since: 100,
            ..Cursor::default()
        };
        assert_eq!(Cursor::decode(&start.encode()), Some(start.clone()));
        let paused = start.clone().paused(Some(500), 300);
        assert_eq!(
            paused,
            Cursor {
                since: 100,
                until: Some(300),
                high: Some(500),
                deferred: Vec::new(),
            }
        );
        assert_eq!(Cursor::decode(&paused.encode()), Some(paused.clone()));
        // The pass goes on below 300 and finishes: the next window starts at
        // the newest event of the whole pass.
        assert_eq!(
            paused.finished(Some(290)),
            Cursor {
                since: 500,
                ..Cursor::default()
            }
        );
        // A pass that read nothing keeps its start.
        assert_eq!(start.clone().finished(None), start);
        // Deferred events ride along, in order.
        let waiting = Cursor {
            deferred: vec!["evt_1".into(), "evt&2".into()],
            ..start
        };
        assert_eq!(Cursor::decode(&waiting.encode()), Some(waiting));
    }
}
