//! The databases the tools reach (named targets): each with its own driver, guard, limits and health. A call names
//! one in `connectionId` (the official MongoDB MCP server's argument); without it, the only or the `default` one
//! answers. With one unnamed target (a config without `[targets.*]`) nothing of this shows: no `connectionId` in
//! the schemas, no `list-connections` tool, no `target` in the audit line.

use std::sync::Arc;

use serde_json::{Value, json};

use super::tools::{ToolContext, ToolError};
use crate::health::Health;

/// The argument naming the target.
pub const CONNECTION_ID: &str = "connectionId";
/// The name of the target the top-level `[ssh]`/`[mongo]` sections describe.
pub const DEFAULT: &str = "default";

/// One database the tools can reach.
#[derive(Clone)]
pub struct Target {
    pub name: Arc<str>,
    /// Whether `/ready` needs it (`targets.<name>.required`).
    pub required: bool,
    pub ctx: ToolContext,
    pub health: Health,
    /// Whether the configuration names targets (set by [`Targets::new`]): then what the call touches carries
    /// this name.
    pub named: bool,
}

impl Target {
    /// `ready`, `starting` or `unavailable`, and why when not ready.
    pub fn state(&self) -> (&'static str, Option<String>) {
        if !self.health.is_started() {
            return ("starting", Some(self.health.starting()));
        }
        match self.health.unavailable() {
            Some(why) => ("unavailable", Some(why)),
            None => ("ready", None),
        }
    }

    /// This target as `list-connections` and `nexus://status` show it.
    pub fn describe(&self) -> Value {
        let (state, why) = self.state();
        let mut row = json!({
            "connectionId": self.name.as_ref(),
            "state": state,
            "required": self.required,
            "readOnly": self.ctx.guard.read_only(),
        });
        if let Some(why) = why {
            row["why"] = json!(why);
        }
        row
    }
}

/// Every target, in configuration order.
#[derive(Clone)]
pub struct Targets {
    list: Arc<[Target]>,
    /// Whether the configuration names them (`[targets.*]`): then calls may name one, and what they touch is
    /// labelled with its name.
    named: bool,
}

impl Targets {
    /// `list` must not be empty (the loader guarantees at least one target).
    pub fn new(mut list: Vec<Target>, named: bool) -> Self {
        assert!(!list.is_empty(), "at least one target");
        for t in &mut list {
            t.named = named;
        }
        Self {
            list: list.into(),
            named,
        }
    }

    pub fn named(&self) -> bool {
        self.named
    }

    pub fn iter(&self) -> impl Iterator<Item = &Target> {
        self.list.iter()
    }

    /// The first target: the one whose settings describe the server (instructions, limits) when there is one.
    pub fn first(&self) -> &Target {
        &self.list[0]
    }

    /// The `target` label values of `nexus_mcp_tool_calls_total`: each name, and the one of calls that name none.
    pub fn metric_labels(&self) -> Vec<&str> {
        let mut labels: Vec<&str> = self.list.iter().map(|t| t.name.as_ref()).collect();
        labels.push(super::metrics::NO_TARGET);
        labels
    }

    /// Whether any target allows writes (then the write tools are listed; read-only targets refuse them).
    pub fn any_writable(&self) -> bool {
        self.list.iter().any(|t| !t.ctx.guard.read_only())
    }

    /// The target a call names, or the one it means when it names none.
    pub fn resolve(&self, id: Option<&str>) -> Result<&Target, ToolError> {
        choose(self.list.iter().map(|t| t.name.as_ref()), id)
            .map(|i| &self.list[i])
            .map_err(ToolError::BadArgument)
    }
}

/// Which of `names` a call means: the one named, else the only one, else `default`; or why none.
fn choose<'a>(
    names: impl Iterator<Item = &'a str> + Clone,
    id: Option<&str>,
) -> Result<usize, String> {
    let listed = || names.clone().collect::<Vec<_>>().join(", ");
    let found = |wanted: &str| names.clone().position(|n| n == wanted);
    match id {
        Some(id) => found(id).ok_or_else(|| {
            // The caller's text, echoed bounded (a name is at most 32 characters).
            let id: String = id.chars().take(40).collect();
            format!(
                "unknown {CONNECTION_ID} {id:?}: this server's connections are {} (list-connections shows their \
                 state)",
                listed()
            )
        }),
        None if names.clone().count() == 1 => Ok(0),
        None => found(DEFAULT).ok_or_else(|| {
            format!(
                "this server reaches several databases: name one in {CONNECTION_ID} ({})",
                listed()
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_without_connection_id_means_the_only_or_the_default_target() {
        let pick = |names: &[&str], id| choose(names.iter().copied(), id);
        assert_eq!(pick(&["prod"], None), Ok(0));
        assert_eq!(pick(&["prod", "default"], None), Ok(1));
        assert_eq!(pick(&["prod", "staging"], Some("staging")), Ok(1));
        let err = pick(&["prod", "staging"], None).unwrap_err();
        assert!(err.contains("connectionId (prod, staging)"), "{err}");
        let err = pick(&["prod", "staging"], Some("nope")).unwrap_err();
        assert!(err.contains("unknown connectionId \"nope\""), "{err}");
        assert!(err.contains("prod, staging"), "{err}");
        let huge = "x".repeat(100_000);
        let err = pick(&["prod"], Some(&huge)).unwrap_err();
        assert!(
            err.len() < 300,
            "the unknown id is echoed bounded: {} bytes",
            err.len()
        );
    }
}
