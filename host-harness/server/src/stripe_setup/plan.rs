//! What to do with the webhook endpoints Stripe has, to leave exactly the
//! two the plugin needs: pure, no request made here.
//!
//! Ours are known by `metadata[stripe_plugin_endpoint]` (`platform` or
//! `connect`): Stripe's endpoint object does not show `connect`.
//! `api_version` is fixed at creation, so an endpoint of another version is
//! replaced (a new endpoint, then the old one deleted: a new secret); so is
//! one whose secret this host no longer has. Anything else is updated in
//! place, and the secret stays.
//! https://docs.stripe.com/api/webhook_endpoints/update

/// Which events an endpoint receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Events of the platform's own account (a merchant on it).
    Platform,
    /// Events of every connected account (`connect=true`).
    Connect,
}

impl Role {
    pub const BOTH: [Role; 2] = [Role::Platform, Role::Connect];

    /// Its value of `metadata[stripe_plugin_endpoint]`.
    pub fn tag(self) -> &'static str {
        match self {
            Role::Platform => "platform",
            Role::Connect => "connect",
        }
    }

    pub fn of_tag(tag: &str) -> Option<Role> {
        Role::BOTH.into_iter().find(|r| r.tag() == tag)
    }
}

/// The metadata key that marks the endpoints this command made.
pub const TAG: &str = "stripe_plugin_endpoint";

/// An endpoint as the plugin needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub role: Role,
    pub url: String,
    pub api_version: String,
    pub event_types: Vec<String>,
}

/// An endpoint as Stripe lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub id: String,
    /// From its metadata; none for an endpoint this command did not make.
    pub role: Option<Role>,
    pub url: String,
    pub api_version: Option<String>,
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Whether this host keeps its signing secret.
    pub secret_known: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Already as wanted.
    Keep { id: String },
    /// Same endpoint and secret; url, event types or status set again.
    Update { id: String },
    /// Made anew (none of ours, or one to replace, which is then deleted).
    Create { replacing: Option<String> },
}

/// The step for `wanted`, and the other endpoints of its role to delete
/// (duplicates would deliver every event twice).
pub fn plan(wanted: &Wanted, existing: &[Existing]) -> (Step, Vec<String>) {
    let ours: Vec<&Existing> = existing
        .iter()
        .filter(|e| e.role == Some(wanted.role))
        .collect();
    let best = ours
        .iter()
        .copied()
        .max_by_key(|e| (reusable(wanted, e), as_wanted(wanted, e)));
    let Some(best) = best else {
        return (Step::Create { replacing: None }, Vec::new());
    };
    let extra = ours
        .iter()
        .filter(|e| e.id != best.id)
        .map(|e| e.id.clone())
        .collect();
    let step = if !reusable(wanted, best) {
        Step::Create {
            replacing: Some(best.id.clone()),
        }
    } else if as_wanted(wanted, best) {
        Step::Keep {
            id: best.id.clone(),
        }
    } else {
        Step::Update {
            id: best.id.clone(),
        }
    };
    (step, extra)
}

/// Endpoints not made by this command that send to the same URL: each
/// event would arrive twice (harmless, deduplicated, but worth a warning).
pub fn strangers_at<'a>(url: &str, existing: &'a [Existing]) -> Vec<&'a str> {
    existing
        .iter()
        .filter(|e| e.role.is_none() && e.url == url)
        .map(|e| e.id.as_str())
        .collect()
}

/// Kept as it is, or updated in place: same API version, secret at hand.
fn reusable(wanted: &Wanted, e: &Existing) -> bool {
    e.secret_known && e.api_version.as_deref() == Some(wanted.api_version.as_str())
}

fn as_wanted(wanted: &Wanted, e: &Existing) -> bool {
    e.enabled && e.url == wanted.url && e.event_types == wanted.event_types
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> Wanted {
        Wanted {
            role: Role::Connect,
            url: "https://host.example/webhooks/stripe".into(),
            api_version: "2024-06-20".into(),
            event_types: vec!["charge.refunded".into(), "account.updated".into()],
        }
    }

    fn ours(id: &str) -> Existing {
        let w = wanted();
        Existing {
            id: id.into(),
            role: Some(Role::Connect),
            url: w.url,
            api_version: Some(w.api_version),
            event_types: w.event_types,
            enabled: true,
            secret_known: true,
        }
    }

    #[test]
    fn none_of_ours_is_created_and_ours_as_wanted_is_kept() {
        let stranger = Existing {
            role: None,
            ..ours("we_hand")
        };
        let platform = Existing {
            role: Some(Role::Platform),
            ..ours("we_p")
        };
        assert_eq!(
            plan(&wanted(), &[stranger.clone(), platform]),
            (Step::Create { replacing: None }, vec![])
        );
        assert_eq!(
            plan(&wanted(), &[ours("we_1")]),
            (Step::Keep { id: "we_1".into() }, vec![])
        );
        assert_eq!(strangers_at(&wanted().url, &[stranger]), ["we_hand"]);
    }

    #[test]
    fn a_change_of_url_types_or_status_is_an_update_and_keeps_the_secret() {
        for e in [
            Existing {
                url: "https://old.example/webhooks/stripe".into(),
                ..ours("we_1")
            },
            Existing {
                event_types: vec!["charge.refunded".into()],
                ..ours("we_1")
            },
            Existing {
                enabled: false,
                ..ours("we_1")
            },
        ] {
            assert_eq!(
                plan(&wanted(), &[e]),
                (Step::Update { id: "we_1".into() }, vec![])
            );
        }
    }

    #[test]
    fn another_api_version_or_a_lost_secret_is_a_replacement() {
        for e in [
            Existing {
                api_version: Some("2020-08-27".into()),
                ..ours("we_1")
            },
            Existing {
                api_version: None,
                ..ours("we_1")
            },
            Existing {
                secret_known: false,
                ..ours("we_1")
            },
        ] {
            assert_eq!(
                plan(&wanted(), &[e]),
                (
                    Step::Create {
                        replacing: Some("we_1".into())
                    },
                    vec![]
                )
            );
        }
    }

    #[test]
    fn of_several_of_ours_the_best_is_kept_and_the_others_deleted() {
        let old = Existing {
            api_version: Some("2020-08-27".into()),
            ..ours("we_old")
        };
        assert_eq!(
            plan(&wanted(), &[old, ours("we_good")]),
            (
                Step::Keep {
                    id: "we_good".into()
                },
                vec!["we_old".into()]
            )
        );
    }
}
