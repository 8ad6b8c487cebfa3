//! Messages addressed to one replica, through Redis pub/sub: each replica subscribes to its own channel
//! (`{prefix}relay:{replica}`) and any replica publishes to it. Pub/sub keeps nothing: a message published while
//! its addressee is not subscribed (gone, or reconnecting) is lost, and the publisher learns so (no subscriber
//! heard it). Messages are opaque bytes here, at most [`MAX_MESSAGE`] long.
//!
//! The subscription is a connection of its own, reconnected with backoff and pinged so that a dead connection is
//! noticed within [`PING_EVERY`] + the command bound.

use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{Redis, StoreError};
use crate::backoff::Backoff;

/// The largest message relayed (an answer to a confirmation is about 100 bytes).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// How often the subscription's connection is checked.
const PING_EVERY: Duration = Duration::from_secs(5);

/// What became of a published message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// The addressee's subscription received it.
    Heard,
    /// Nobody is subscribed to the addressee's channel: the replica is gone, or its subscription is reconnecting.
    Unheard,
    /// Longer than [`MAX_MESSAGE`]: not sent.
    TooLarge,
}

/// The relay channels of one deployment (`key_prefix`).
#[derive(Clone)]
pub struct RedisRelay {
    redis: Redis,
}

impl RedisRelay {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn channel(&self, replica: &str) -> String {
        self.redis.key(&format!("relay:{replica}"))
    }

    /// Sends `message` to `replica`'s channel, within the store's command bound.
    ///
    /// # Errors
    /// The store did not answer.
    pub async fn publish(&self, replica: &str, message: &[u8]) -> Result<Published, StoreError> {
        if message.len() > MAX_MESSAGE {
            return Ok(Published::TooLarge);
        }
        let channel = self.channel(replica);
        let (heard,): (i64,) = self
            .redis
            .run(|p| {
                p.publish(channel, message);
            })
            .await?;
        Ok(if heard > 0 {
            Published::Heard
        } else {
            Published::Unheard
        })
    }

    /// Subscribes to `replica`'s channel and hands each message (at most [`MAX_MESSAGE`] long; longer ones are
    /// dropped) to `deliver`, one at a time, until `stop`. A lost subscription is re-established with backoff; the
    /// first failure of an outage is logged as a warning.
    pub async fn listen<F, Fut>(&self, replica: &str, mut deliver: F, stop: CancellationToken)
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let channel = self.channel(replica);
        let mut backoff = Backoff::try_new(Duration::from_millis(100), Duration::from_secs(5))
            .expect("a valid backoff policy");
        let mut failing = false;
        loop {
            let subscribed = tokio::select! {
                () = stop.cancelled() => return,
                r = tokio::time::timeout(self.redis.limit, self.subscribe(&channel)) => r,
            };
            let cause = match subscribed {
                Ok(Ok(pubsub)) => {
                    tracing::info!(channel = %channel, "relay: listening for answers meant for this replica");
                    failing = false;
                    backoff.reset();
                    let (mut sink, mut messages) = pubsub.split();
                    let mut ping = tokio::time::interval(PING_EVERY);
                    ping.tick().await;
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            message = messages.next() => match message {
                                Some(m) if m.get_payload_bytes().len() <= MAX_MESSAGE => {
                                    deliver(m.get_payload_bytes().to_vec()).await;
                                }
                                Some(m) => tracing::warn!(
                                    bytes = m.get_payload_bytes().len(),
                                    "relay: message over the size limit dropped"
                                ),
                                None => break "connection closed".to_string(),
                            },
                            _ = ping.tick() => {
                                match tokio::time::timeout(self.redis.limit, sink.ping::<redis::Value>()).await {
                                    Ok(Ok(_)) => {}
                                    Ok(Err(e)) => break e.to_string(),
                                    Err(_) => break format!(
                                        "no answer to a ping within {} ms",
                                        self.redis.limit.as_millis()
                                    ),
                                }
                            }
                        }
                    }
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {} ms", self.redis.limit.as_millis()),
            };
            let e = self.redis.unavailable(cause);
            if failing {
                tracing::debug!(cause = %e, "relay: still not subscribed");
            } else {
                tracing::warn!(
                    cause = %e,
                    "relay: not subscribed; answers to this replica's questions that land on other replicas are \
                     lost until the store answers again"
                );
                failing = true;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    async fn subscribe(&self, channel: &str) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub = self.redis.client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    }
}
