//! on-sync: the webhooks that never arrived, read back from Stripe's
//! `/v1/events` and applied through the same path as on-webhook.
//!
//! A pass walks the window from the last sync to now, newest first (as
//! Stripe lists), a few pages per call; when the budget ends mid-window, the
//! next call goes on below the oldest event read (`until`). When a pass
//! reaches the start of its window, the next window starts at the newest
//! event the pass saw. Events in the same second may be read twice; their
//! seen-markers make the second reading a no-op.
//! https://docs.stripe.com/api/events/list
//! https://docs.stripe.com/webhooks#retries (Stripe keeps events 30 days)

use super::webhook::{Seen, apply_event};
use crate::contract::{Merchant, PluginError, SyncOutcome};
use crate::imports;
use crate::stripe::request;

/// Pages of 100 events read per call.
const PAGES_PER_CALL: u32 = 5;
/// How far back the first sync looks: as long as Stripe keeps events.
const FIRST_LOOK_BACK_SECS: u64 = 30 * 24 * 3600;

/// Where the sync stands: the `next-cursor` the host keeps between calls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    /// The window starts here (Unix seconds).
    since: u64,
    /// A pass in progress goes on at or below this.
    until: Option<u64>,
    /// The newest event the pass in progress has seen.
    high: Option<u64>,
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
        f.finish()
    }

    fn decode(text: &str) -> Option<Self> {
        let mut c = Cursor::default();
        for (k, v) in form_urlencoded::parse(text.as_bytes()) {
            let n = v.parse().ok()?;
            match k.as_ref() {
                "since" => c.since = n,
                "until" => c.until = Some(n),
                "high" => c.high = Some(n),
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
        }
    }

    /// After a call whose budget ended at `oldest_read`.
    fn paused(self, newest_read: Option<u64>, oldest_read: u64) -> Self {
        Cursor {
            since: self.since,
            until: Some(oldest_read),
            high: self.high.max(newest_read),
        }
    }
}

fn start(given: Option<&str>, now_secs: u64) -> Result<Cursor, PluginError> {
    match given {
        Some(text) => Cursor::decode(text)
            .ok_or_else(|| PluginError::InvalidInput(format!("not a sync cursor: '{text}'"))),
        None => Ok(Cursor {
            since: now_secs.saturating_sub(FIRST_LOOK_BACK_SECS),
            until: None,
            high: None,
        }),
    }
}

pub fn on_sync(m: &Merchant, given: Option<&str>) -> Result<SyncOutcome, PluginError> {
    let now = u64::try_from(imports::now_secs()).unwrap_or(0);
    let cursor = start(given, now)?;
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
    for _ in 0..PAGES_PER_CALL {
        let page = imports::events(
            m,
            &request::list_events(cursor.since, cursor.until, after.as_deref()),
        )?;
        more = page.has_more == Some(true);
        after = page.data.last().map(|e| e.id.clone());
        // Oldest first within the page, as they happened.
        for event in page.data.iter().rev() {
            let created = event.created.unwrap_or(cursor.since);
            newest = newest.max(Some(created));
            oldest = Some(oldest.map_or(created, |o| o.min(created)));
            out.read += 1;
            let applied = apply_event(m, event)?;
            if applied.before == Seen::New {
                out.applied += 1;
            }
            out.transitions.extend(applied.settled.transitions);
        }
        if !more || after.is_none() {
            break;
        }
    }
    let next = match (more, oldest) {
        (true, Some(oldest)) => cursor.paused(newest, oldest),
        _ => cursor.finished(newest),
    };
    out.more = next.until.is_some();
    out.next_cursor = next.encode();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_round_trips_and_moves_as_a_pass_goes() {
        let start = Cursor {
            since: 100,
            until: None,
            high: None,
        };
        assert_eq!(Cursor::decode(&start.encode()), Some(start));
        let paused = start.paused(Some(500), 300);
        assert_eq!(
            paused,
            Cursor {
                since: 100,
                until: Some(300),
                high: Some(500)
            }
        );
        assert_eq!(Cursor::decode(&paused.encode()), Some(paused));
        // The pass goes on below 300 and finishes: the next window starts at
        // the newest event of the whole pass.
        assert_eq!(
            paused.finished(Some(290)),
            Cursor {
                since: 500,
                until: None,
                high: None
            }
        );
        // A pass that read nothing keeps its start.
        assert_eq!(start.finished(None), start);
    }
}
