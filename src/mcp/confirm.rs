//! Asking the user to confirm a destructive call, by the means the client's protocol allows:
//! - legacy sessions: a server→client elicitation request while the call waits (the HTTP edge's request deadline
//!   pauses meanwhile);
//! - stateless 2026-07-28 requests (MRTR): the call ends with an `InputRequiredResult` carrying a sealed state,
//!   and the client retries with the user's answer and that state. The state is bound to the caller, the tool and
//!   its exact arguments, and expires.
//!
//! The tools see only [`Confirmer`]; this module knows nothing of MongoDB.

use std::time::Duration;

use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationSchema, InputRequest, InputRequests,
    InputRequiredResult, InputResponses, ProtocolVersion, RequestStateCodec, SealOptions,
};
use rmcp::service::{ElicitationError, RequestContext, RoleServer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tools::{Confirmation, Confirmer};
use crate::deadline::Deadline;

/// How long a legacy-session client may take to answer a confirmation, and how long a stateless one stays valid.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(300);
/// The MRTR input request key of the confirmation.
const CONFIRM_KEY: &str = "confirm";

/// The confirmation form shown to the user.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct ConfirmForm {
    /// Check to confirm this destructive operation.
    confirm: bool,
}
rmcp::elicit_safe!(ConfirmForm);

/// The MRTR answer to a stateless call that needs confirmation: ask `question`, and expect back a state sealed
/// over `binding`.
pub fn confirmation_request(
    codec: &RequestStateCodec,
    binding: &str,
    question: String,
) -> InputRequiredResult {
    let state = codec.seal_with(
        b"confirm",
        &SealOptions::new()
            .associated_data(binding.as_bytes())
            .ttl(CONFIRM_TIMEOUT),
    );
    let schema =
        ElicitationSchema::from_type::<ConfirmForm>().expect("ConfirmForm is a flat object schema");
    let mut requests = InputRequests::new();
    requests.insert(
        CONFIRM_KEY.to_string(),
        InputRequest::Elicitation(ElicitRequest::new(
            ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: question,
                requested_schema: schema,
            },
        )),
    );
    InputRequiredResult::new(Some(requests), Some(state))
}

/// What a stateless confirmation is bound to: the caller, the tool and a digest of its exact arguments. The
/// state handed to the client is sealed over it (HMAC with a per-process key, with an expiry), so a client can
/// neither forge an accepted confirmation nor replay one for other arguments, another caller or after it expired.
pub fn binding<A: Serialize>(caller: &str, tool: &str, args: &A) -> String {
    let digest = Sha256::digest(serde_json::to_vec(args).unwrap_or_default());
    format!("confirm-v2|{caller}|{tool}|{digest:x}")
}

/// Seals confirmation states with `mcp.confirm_key_file`'s key (every replica that shares it accepts the others'
/// states), or a key random per process (a state from another process is not accepted: the user is asked again).
pub fn codec(shared: Option<&crate::secret::Secret>) -> RequestStateCodec {
    match shared {
        Some(key) => RequestStateCodec::try_new(key.expose().as_bytes().to_vec())
            .expect("the config loader checked the key's length"),
        None => new_codec(),
    }
}

/// A codec with a key random per process.
pub fn new_codec() -> RequestStateCodec {
    let key: [u8; 32] = rand::random();
    RequestStateCodec::try_new(key.to_vec()).expect("a 32-byte key is long enough")
}

/// Prefixed to the question when a stateless answer's state could not be opened.
pub const ASK_AGAIN: &str = "Your earlier confirmation could not be used (it expired, was for other arguments, or \
    was issued by another nexus-mcp process; replicas share confirmations only with mcp.confirm_key_file): please \
    confirm again.";

/// Asks the connected client's user, by the means its protocol version allows.
pub struct ClientConfirm<'a> {
    pub rc: &'a RequestContext<RoleServer>,
    pub codec: &'a RequestStateCodec,
    /// What an accepted stateless answer must have been sealed over ([`binding`]).
    pub binding: String,
    /// The sealed state a stateless retry carries back.
    pub state: Option<String>,
    /// The user's answers a stateless retry carries.
    pub responses: Option<InputResponses>,
}

impl ClientConfirm<'_> {
    fn stateless(&self) -> bool {
        self.rc
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
    }

    fn client_can_elicit(&self) -> bool {
        self.rc
            .client_capabilities()
            .is_some_and(|c| c.elicitation.is_some())
    }
}

impl Confirmer for ClientConfirm<'_> {
    async fn confirm(&self, question: String) -> Confirmation {
        if self.stateless() {
            let answer = self.responses.as_ref().and_then(|r| r.get(CONFIRM_KEY));
            return match (self.state.as_deref(), answer) {
                (Some(state), Some(answer))
                    if self.codec.open_with(state, self.binding.as_bytes()).is_ok() =>
                {
                    let accepted =
                        answer["action"] == "accept" && answer["content"]["confirm"] == true;
                    if accepted {
                        Confirmation::Accepted
                    } else {
                        Confirmation::Declined
                    }
                }
                (Some(_), _) if self.client_can_elicit() => {
                    Confirmation::AskFirst(format!("{ASK_AGAIN} {question}"))
                }
                _ if self.client_can_elicit() => Confirmation::AskFirst(question),
                _ => Confirmation::Unsupported,
            };
        }
        // A person answers this: the HTTP edge's request_timeout stops counting meanwhile (CONFIRM_TIMEOUT bounds it).
        let _paused = self
            .rc
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Deadline>())
            .map(Deadline::pause);
        match self
            .rc
            .peer
            .elicit_with_timeout::<ConfirmForm>(question, Some(CONFIRM_TIMEOUT))
            .await
        {
            Ok(Some(ConfirmForm { confirm: true })) => Confirmation::Accepted,
            Ok(_) | Err(ElicitationError::UserDeclined | ElicitationError::UserCancelled) => {
                Confirmation::Declined
            }
            Err(ElicitationError::CapabilityNotSupported) => Confirmation::Unsupported,
            Err(e) => {
                tracing::warn!(cause = %e, "confirmation request failed; treating it as unsupported");
                Confirmation::Unsupported
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bindings_tie_a_confirmation_to_the_caller_tool_and_exact_arguments() {
        let a = json!({"database": "shop", "collection": "orders", "filter": {}});
        let b = json!({"database": "shop", "collection": "customers", "filter": {}});
        assert_eq!(
            binding("c", "delete-many", &a),
            binding("c", "delete-many", &a)
        );
        assert_ne!(
            binding("c", "delete-many", &a),
            binding("c", "delete-many", &b)
        );
        assert_ne!(
            binding("c", "delete-many", &a),
            binding("c", "drop-collection", &a)
        );
        assert_ne!(
            binding("c", "delete-many", &a),
            binding("d", "delete-many", &a)
        );
    }

    #[test]
    fn sealed_states_cannot_be_forged_or_moved() {
        let codec = new_codec();
        let bound = binding("c", "delete-many", &json!({"filter": {}}));
        let seal = |ad: &str| {
            confirmation_request(&codec, ad, "sure?".into())
                .request_state
                .expect("a state")
        };
        assert!(codec.open_with(&seal(&bound), bound.as_bytes()).is_ok());
        let other = binding("c", "delete-many", &json!({"filter": {"x": 1}}));
        assert!(codec.open_with(&seal(&bound), other.as_bytes()).is_err());
        assert!(
            codec.open_with(&bound, bound.as_bytes()).is_err(),
            "a bare binding is no state"
        );
        assert!(
            new_codec()
                .open_with(&seal(&bound), bound.as_bytes())
                .is_err(),
            "another process's key"
        );
    }
}
