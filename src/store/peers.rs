//! Each replica's dependency checks in Redis, for the fleet readiness policy: a key per replica
//! (`{prefix}replica:{id}`, JSON `{"sshTunnel":true,…}`) that lives three exchange intervals, and a set of the
//! replica ids (`{prefix}replicas`) to find them. A replica that stops publishing (gone, partitioned) drops out when
//! its key expires; readers remove its id from the set.

use std::collections::HashMap;
use std::time::Duration;

use crate::health::{PeerBoard, Peers};

use super::Redis;

/// How many exchange intervals a replica's entry outlives its last publication.
const LIFETIMES: u32 = 3;

/// This replica's place on the board.
pub struct RedisPeers {
    redis: Redis,
    /// This replica's id (host name and a random suffix: a restarted process is a new replica).
    id: String,
    /// `health.peer_interval` × [`LIFETIMES`].
    ttl: Duration,
}

impl RedisPeers {
    pub fn new(redis: Redis, id: String, interval: Duration) -> Self {
        Self {
            redis,
            id,
            ttl: interval * LIFETIMES,
        }
    }

    fn set_key(&self) -> String {
        self.redis.key("replicas")
    }

    fn replica_key(&self, id: &str) -> String {
        self.redis.key(&format!("replica:{id}"))
    }
}

/// A replica id: the host name (the pod's name on Kubernetes) and a random suffix.
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "nexus-mcp".into());
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

impl PeerBoard for RedisPeers {
    async fn exchange(&self, mine: Vec<(&'static str, bool)>) -> Result<Peers, String> {
        let entry: HashMap<&str, bool> = mine.into_iter().collect();
        let value = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
        let (set, me, ttl) = (
            self.set_key(),
            self.replica_key(&self.id),
            u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
        );
        let (ids,): (Vec<String>,) = self
            .redis
            .run(|p| {
                p.pset_ex(&me, value, ttl)
                    .ignore()
                    .sadd(&set, &self.id)
                    .ignore()
                    .smembers(&set);
            })
            .await
            .map_err(|e| e.to_string())?;
        let others: Vec<&String> = ids.iter().filter(|id| **id != self.id).collect();
        if others.is_empty() {
            return Ok(Peers::default());
        }
        let keys: Vec<String> = others.iter().map(|id| self.replica_key(id)).collect();
        let (values,): (Vec<Option<String>>,) = self
            .redis
            .run(|p| {
                p.mget(&keys);
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut peers = Peers::default();
        let mut gone = Vec::new();
        for (id, value) in others.iter().zip(values) {
            let Some(checks) =
                value.and_then(|v| serde_json::from_str::<HashMap<String, bool>>(&v).ok())
            else {
                gone.push((*id).clone());
                continue;
            };
            peers.replicas += 1;
            for (check, healthy) in checks {
                if healthy {
                    *peers.healthy.entry(check).or_default() += 1;
                }
            }
        }
        if !gone.is_empty() {
            // Best effort: another reader may do it too.
            let _ = self
                .redis
                .run::<()>(|p| {
                    p.srem(&set, &gone).ignore();
                })
                .await;
        }
        Ok(peers)
    }

    async fn leave(&self) {
        let (set, me) = (self.set_key(), self.replica_key(&self.id));
        let _ = self
            .redis
            .run::<()>(|p| {
                p.del(&me).ignore().srem(&set, &self.id).ignore();
            })
            .await;
    }
}
