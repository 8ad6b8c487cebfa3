//! A legacy session's answers relayed to the replica that asked (with `[server.sessions] store = "redis"`).
//!
//! A server→client request — a destructive tool's confirmation, an elicitation — waits in the rmcp session of
//! the replica that sent it. The client's answer is a POST that the balancer may send to any replica; there the
//! session is restored from the store with no such pending request, and rmcp would drop the answer while the
//! asking replica waits out `CONFIRM_TIMEOUT`. So every replica with a shared store:
//! - names the requests it sends `nx-{tag}-{n}` ([`Tagged`], a wrapper of the session's rmcp transport), `tag`
//!   random per process: rmcp numbers a session's requests from 0 in every process, so the plain ids of two
//!   replicas asking in the same session would collide, and the tag says which replica waits for the answer;
//! - hands an answer whose id carries another replica's tag to that replica through the store's relay channel
//!   (`store::relay`) instead of to its own copy of the session ([`Relay::forward`]);
//! - gives the answers meant for it, posted here or relayed, back to rmcp with the plain id it sent.
//!
//! An answer that cannot be relayed (the asking replica is gone, the store does not answer) is counted and logged;
//! the question then ends as it would have on one replica whose client never answered.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::model::{
    ClientJsonRpcMessage, JsonRpcMessage, NumberOrString, RequestId, ServerJsonRpcMessage,
    ServerNotification,
};
use rmcp::transport::Transport;
use serde::{Deserialize, Serialize};

use crate::http::metrics::RelayOutcome;
use crate::metrics::LabelledCounter;
use crate::store::relay::{Published, RedisRelay};

/// What precedes the tag in a tagged id.
const PREFIX: &str = "nx-";

/// A random tag for this process: 12 hex digits.
pub fn new_tag() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// `n` sent by the replica `tag`.
fn tagged(tag: &str, n: i64) -> RequestId {
    NumberOrString::String(format!("{PREFIX}{tag}-{n}").into())
}

/// The replica tag and plain id of a tagged id.
fn parse(id: &RequestId) -> Option<(&str, i64)> {
    let NumberOrString::String(s) = id else {
        return None;
    };
    let (tag, n) = s.strip_prefix(PREFIX)?.split_once('-')?;
    let plain = n.parse().ok()?;
    (!tag.is_empty() && tag.bytes().all(|b| b.is_ascii_hexdigit())).then_some((tag, plain))
}

/// Tags the ids of the requests this replica sends, and of its cancellations of them.
fn tag_outgoing(tag: &str, message: &mut ServerJsonRpcMessage) {
    let id = match message {
        JsonRpcMessage::Request(request) => &mut request.id,
        JsonRpcMessage::Notification(n) => match &mut n.notification {
            ServerNotification::CancelledNotification(c) => match &mut c.params.request_id {
                Some(id) => id,
                None => return,
            },
            _ => return,
        },
        _ => return,
    };
    if let NumberOrString::Number(n) = id {
        *id = tagged(tag, *n);
    }
}

/// The id an answer (a response or an error) answers.
fn answered(message: &ClientJsonRpcMessage) -> Option<&RequestId> {
    match message {
        JsonRpcMessage::Response(r) => Some(&r.id),
        JsonRpcMessage::Error(e) => e.id.as_ref(),
        _ => None,
    }
}

/// Gives an answer to this replica's request its plain id back.
fn untag_incoming(tag: &str, message: &mut ClientJsonRpcMessage) {
    let id = match message {
        JsonRpcMessage::Response(r) => &mut r.id,
        JsonRpcMessage::Error(e) => match &mut e.id {
            Some(id) => id,
            None => return,
        },
        _ => return,
    };
    if let Some((mine, n)) = parse(id)
        && mine == tag
    {
        *id = NumberOrString::Number(n);
    }
}

/// An answer on its way to the replica that asked.
#[derive(Serialize, Deserialize)]
struct Relayed {
    session: String,
    message: ClientJsonRpcMessage,
}

/// This replica's side of the relay.
pub struct Relay {
    tag: Arc<str>,
    store: RedisRelay,
    /// `nexus_sessions_relayed_total{outcome}`.
    outcomes: LabelledCounter<RelayOutcome>,
}

impl Relay {
    pub fn new(tag: String, store: RedisRelay, outcomes: LabelledCounter<RelayOutcome>) -> Self {
        Self {
            tag: tag.into(),
            store,
            outcomes,
        }
    }

    /// This replica's tag (its relay channel's name).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The store's relay channels (this replica listens on its own).
    pub fn store(&self) -> &RedisRelay {
        &self.store
    }

    fn count(&self, outcome: RelayOutcome) {
        self.outcomes.inc(outcome);
    }

    /// The session transport `inner`, speaking tagged ids to the client.
    pub fn wrap<T>(&self, inner: T) -> Tagged<T> {
        Tagged {
            inner,
            tag: Some(self.tag.clone()),
        }
    }

    /// The replica that waits for `message`, when it is an answer to a request another replica sent.
    pub fn elsewhere(&self, message: &ClientJsonRpcMessage) -> Option<String> {
        let (tag, _) = parse(answered(message)?)?;
        (tag != &*self.tag).then(|| tag.to_string())
    }

    /// Sends `message` (an answer in `session`) to the replica `to`, which asked.
    pub async fn forward(&self, to: &str, session: &str, message: ClientJsonRpcMessage) {
        let relayed = Relayed {
            session: session.to_string(),
            message,
        };
        let bytes = serde_json::to_vec(&relayed).unwrap_or_default();
        let outcome = match self.store.publish(to, &bytes).await {
            Ok(Published::Heard) => RelayOutcome::Sent,
            Ok(Published::Unheard) => {
                tracing::warn!(
                    session,
                    replica = to,
                    "an answer to another replica's question was not relayed: that replica is gone or not \
                     listening (its question ends unanswered)"
                );
                RelayOutcome::Unheard
            }
            Ok(Published::TooLarge) => {
                tracing::warn!(
                    session,
                    bytes = bytes.len(),
                    "an answer to another replica's question is too large to relay"
                );
                RelayOutcome::TooLarge
            }
            Err(e) => {
                tracing::warn!(session, cause = %e, "an answer to another replica's question was not relayed");
                RelayOutcome::Failed
            }
        };
        self.count(outcome);
    }

    /// Reads a relayed answer: its session and message (with the id as the client sent it).
    pub fn open(&self, bytes: &[u8]) -> Option<(String, ClientJsonRpcMessage)> {
        match serde_json::from_slice::<Relayed>(bytes) {
            Ok(r) => Some((r.session, r.message)),
            Err(e) => {
                tracing::warn!(cause = %e, "an unreadable relayed answer was dropped");
                self.count(RelayOutcome::Invalid);
                None
            }
        }
    }

    /// Counts what became of a relayed answer on this replica.
    pub fn delivered(&self, session: &str, here: bool) {
        if here {
            tracing::debug!(session, "a relayed answer was handed to its session");
            self.count(RelayOutcome::Delivered);
        } else {
            tracing::info!(
                session,
                "a relayed answer came for a session no longer held here"
            );
            self.count(RelayOutcome::Gone);
        }
    }
}

/// A session's rmcp transport whose outgoing requests carry tagged ids (untagged again in the answers), when
/// the relay is on; otherwise the transport itself.
pub struct Tagged<T> {
    inner: T,
    tag: Option<Arc<str>>,
}

impl<T> Tagged<T> {
    /// `inner` unchanged (no relay: one replica, ids need no tag).
    pub fn plain(inner: T) -> Self {
        Self { inner, tag: None }
    }
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for Tagged<T> {
    type Error = T::Error;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn send(
        &mut self,
        mut item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let Some(tag) = &self.tag {
            tag_outgoing(tag, &mut item);
        }
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        let mut message = self.inner.receive().await?;
        if let Some(tag) = &self.tag {
            untag_incoming(tag, &mut message);
        }
        Some(message)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client(value: serde_json::Value) -> ClientJsonRpcMessage {
        serde_json::from_value(value).expect("a client message")
    }

    fn server(value: serde_json::Value) -> ServerJsonRpcMessage {
        serde_json::from_value(value).expect("a server message")
    }

    /// A relay over a store that is never reached (a runtime is needed to build its client).
    fn relay(tag: &str) -> Relay {
        let config = crate::store::RedisConfig {
            url: crate::secret::Secret::new("redis://127.0.0.1:1/0"),
            key_prefix: "t:".into(),
            connect_timeout: std::time::Duration::from_millis(10),
            command_timeout: std::time::Duration::from_millis(10),
        };
        let redis = crate::store::Redis::new(&config).unwrap();
        Relay::new(
            tag.into(),
            RedisRelay::new(redis),
            LabelledCounter::register(&prometheus::Registry::new(), "r", "test", "outcome"),
        )
    }

    #[test]
    fn requests_and_their_cancellations_are_tagged_and_answers_untagged_only_for_this_replica() {
        let mut ask = server(
            json!({"jsonrpc": "2.0", "id": 0, "method": "elicitation/create",
            "params": {"message": "sure?", "requestedSchema": {"type": "object", "properties": {}}}}),
        );
        tag_outgoing("abc123", &mut ask);
        let JsonRpcMessage::Request(r) = &ask else {
            panic!("a request")
        };
        assert_eq!(r.id, NumberOrString::String("nx-abc123-0".into()));

        let mut cancel = server(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 7, "reason": "timeout"}}),
        );
        tag_outgoing("abc123", &mut cancel);
        assert_eq!(
            serde_json::to_value(&cancel).unwrap()["params"]["requestId"],
            "nx-abc123-7"
        );

        let mut answer = client(json!({"jsonrpc": "2.0", "id": "nx-abc123-0",
            "result": {"action": "accept", "content": {"confirm": true}}}));
        let mut theirs = answer.clone();
        untag_incoming("abc123", &mut answer);
        assert_eq!(answered(&answer), Some(&NumberOrString::Number(0)));
        untag_incoming("fff000", &mut theirs);
        assert_eq!(
            answered(&theirs),
            Some(&NumberOrString::String("nx-abc123-0".into())),
            "another replica's answer keeps its tag"
        );
    }

    #[tokio::test]
    async fn only_answers_tagged_by_another_replica_go_elsewhere() {
        let here = relay("abc123");
        let answer = |id: serde_json::Value| {
            client(json!({"jsonrpc": "2.0", "id": id, "result": {"action": "decline"}}))
        };
        assert_eq!(
            here.elsewhere(&answer(json!("nx-fff000-3"))).as_deref(),
            Some("fff000")
        );
        assert_eq!(here.elsewhere(&answer(json!("nx-abc123-3"))), None);
        assert_eq!(here.elsewhere(&answer(json!(3))), None);
        for foreign in ["nx--3", "nx-xyz-3", "nx-fff000-x", "other-fff000-3"] {
            assert_eq!(here.elsewhere(&answer(json!(foreign))), None, "{foreign}");
        }
        let error = client(json!({"jsonrpc": "2.0", "id": "nx-fff000-1",
            "error": {"code": -1, "message": "no"}}));
        assert_eq!(here.elsewhere(&error).as_deref(), Some("fff000"));
        let call = client(json!({"jsonrpc": "2.0", "id": "nx-fff000-1", "method": "ping"}));
        assert_eq!(
            here.elsewhere(&call),
            None,
            "a client's own request is never relayed"
        );
    }

    #[tokio::test]
    async fn a_relayed_answer_reads_back_as_the_client_sent_it() {
        let here = relay("abc123");
        for body in [
            json!({"jsonrpc": "2.0", "id": "nx-abc123-0",
                "result": {"action": "accept", "content": {"confirm": true}}}),
            json!({"jsonrpc": "2.0", "id": "nx-abc123-1", "result": {"action": "decline"}}),
            json!({"jsonrpc": "2.0", "id": "nx-abc123-2", "error": {"code": -32603, "message": "x"}}),
        ] {
            let message = client(body.clone());
            let bytes = serde_json::to_vec(&Relayed {
                session: "s1".into(),
                message,
            })
            .unwrap();
            let (session, back) = here.open(&bytes).expect("readable");
            assert_eq!(session, "s1");
            assert_eq!(serde_json::to_value(&back).unwrap(), body);
        }
        assert!(here.open(b"{\"session\":1}").is_none());
        assert_eq!(here.outcomes.get(RelayOutcome::Invalid).get(), 1, "counted");
    }

    #[test]
    fn tags_are_twelve_hex_digits_and_parse_back() {
        let tag = new_tag();
        assert_eq!(tag.len(), 12);
        assert_eq!(parse(&tagged(&tag, 41)), Some((tag.as_str(), 41)));
    }
}
