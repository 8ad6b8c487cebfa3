//! What the driver sees of the deployment, from its SDAM events: the members (address, type, round trip), the
//! replica set's name and primary. Feeds `nexus_mongo_servers{type}`, `nexus_mongo_primary_changes_total`,
//! `/ready?verbose`, `check` and the explanation of an unhealthy MongoDB. No credentials: addresses come from the
//! servers' `hello`, and member errors are reduced to their class.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mongodb::ServerType;
use mongodb::event::EventHandler;
use mongodb::event::sdam::{SdamEvent, TopologyDescription};
use mongodb::options::SelectionCriteria;
use serde::Serialize;
use tokio::sync::watch;

use super::metrics::{MongoMetrics, SERVER_TYPES};

use super::MongoError;

/// One server the driver knows.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub address: String,
    /// `primary`, `secondary`, `arbiter`, `standalone`, `mongos`, `other` or `unknown`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trip_ms: Option<f64>,
    /// Why the driver could not check it (a class summary such as "unreachable").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// The driver's first line about it (e.g. "invalid peer certificate: UnknownIssuer"), for explanations only:
    /// not in probe bodies, which carry classes.
    #[serde(skip)]
    pub cause: Option<String>,
}

/// The latest view.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct View {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    pub members: Vec<Member>,
}

impl View {
    /// Every member known has been checked once (or failed), so the view tells the truth.
    pub fn settled(&self) -> bool {
        !self.members.is_empty()
            && self
                .members
                .iter()
                .all(|m| m.kind != "unknown" || m.error.is_some())
    }
}

/// Follows the driver's topology; cheap to clone.
#[derive(Clone)]
pub struct Topology {
    inner: Arc<Mutex<State>>,
    view: watch::Sender<View>,
    metrics: MongoMetrics,
}

#[derive(Default)]
struct State {
    description: Option<TopologyDescription>,
    /// The last primary seen (kept while there is none), to count changes rather than rediscoveries.
    last_primary: Option<String>,
}

impl Topology {
    pub fn new(metrics: MongoMetrics) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State::default())),
            view: watch::Sender::new(View::default()),
            metrics,
        }
    }

    /// The driver's SDAM event handler that keeps this view current.
    pub fn handler(&self) -> EventHandler<SdamEvent> {
        let topology = self.clone();
        EventHandler::callback(move |event| {
            if let SdamEvent::TopologyDescriptionChanged(changed) = event {
                topology.update(&changed.new_description);
            }
        })
    }

    /// The latest view (empty before the driver's first event).
    pub fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// Waits (up to `limit`) until every member the driver knows has been checked once; returns the view then.
    pub async fn settled(&self, limit: Duration) -> View {
        let mut view = self.view.subscribe();
        let _ = tokio::time::timeout(limit, view.wait_for(View::settled)).await;
        self.view()
    }

    /// Whether the latest description has a server that `criteria` (or, with `None`, a writable primary) can
    /// select; `None` before the driver described the topology.
    pub fn can_select(&self, criteria: Option<&SelectionCriteria>) -> Option<bool> {
        let state = self.lock();
        let description = state.description.as_ref()?;
        Some(match criteria {
            None => description.has_writable_server(),
            Some(c) => description.has_readable_server(Some(c.clone())),
        })
    }

    /// "replica set rs0: no primary; members 127.0.0.2:27017 secondary, 127.0.0.3:27017 unknown (unreachable)".
    pub fn describe(&self) -> String {
        let view = self.view();
        let members = view
            .members
            .iter()
            .map(|m| match (m.error, &m.cause) {
                (Some(e), Some(cause)) => format!("{} {} ({e}: {cause})", m.address, m.kind),
                (Some(e), None) => format!("{} {} ({e})", m.address, m.kind),
                _ => format!("{} {}", m.address, m.kind),
            })
            .collect::<Vec<_>>()
            .join(", ");
        match view.set_name {
            Some(name) => format!(
                "replica set {name}: {}; members {members}",
                view.primary
                    .as_deref()
                    .map_or_else(|| "no primary".to_string(), |p| format!("primary {p}"))
            ),
            None => format!("servers {members}"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, description: &TopologyDescription) {
        let mut members: Vec<Member> = description
            .servers()
            .into_iter()
            .map(|(address, info)| Member {
                address: address.to_string(),
                kind: kind(info.server_type()),
                round_trip_ms: info
                    .average_round_trip_time()
                    .map(|d| (d.as_secs_f64() * 1e4).round() / 10.0),
                error: info
                    .error()
                    .map(|e| MongoError::from(e.clone()).class().summary()),
                cause: info.error().map(super::driver_message),
            })
            .collect();
        members.sort_by(|a, b| a.address.cmp(&b.address));
        let primary = members
            .iter()
            .find(|m| m.kind == "primary")
            .map(|m| m.address.clone());
        for t in SERVER_TYPES {
            let n = members.iter().filter(|m| m.kind == t).count();
            self.metrics
                .servers
                .with_label_values(&[t])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut state = self.lock();
        if let Some(p) = &primary {
            match &state.last_primary {
                Some(last) if last != p => {
                    self.metrics.primary_changes.inc();
                    tracing::warn!(from = %last, to = %p, "mongodb: new primary");
                }
                None => tracing::info!(primary = %p, "mongodb: primary found"),
                Some(_) => {}
            }
            state.last_primary = Some(p.clone());
        }
        state.description = Some(description.clone());
        drop(state);
        // With one direct connection the topology has no set name, but the member still says which set it is in.
        let set_name = description.set_name().cloned().or_else(|| {
            description
                .servers()
                .values()
                .find_map(|info| info.replica_set_name().map(str::to_string))
        });
        self.view.send_replace(View {
            set_name,
            primary,
            members,
        });
    }
}

fn kind(t: ServerType) -> &'static str {
    match t {
        ServerType::RsPrimary => "primary",
        ServerType::RsSecondary => "secondary",
        ServerType::RsArbiter => "arbiter",
        ServerType::Standalone => "standalone",
        ServerType::Mongos | ServerType::LoadBalancer => "mongos",
        ServerType::RsOther | ServerType::RsGhost => "other",
        _ => "unknown",
    }
}
