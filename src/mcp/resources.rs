//! The MCP resources: `nexus://status` (live dependency status and tunnel counters, from a source `app` hands in)
//! and `nexus://config` (the effective configuration, secrets redacted). Both are JSON documents read on demand.

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{ListResourcesResult, ReadResourceResult, Resource, ResourceContents};
use serde_json::Value;

/// A JSON document served as a resource (`nexus://status`, `nexus://config`).
pub type ResourceSource = Arc<dyn Fn() -> Value + Send + Sync>;

const STATUS_URI: &str = "nexus://status";
const CONFIG_URI: &str = "nexus://config";

/// What the resources read from.
#[derive(Clone)]
pub struct Resources {
    /// Live dependency status and tunnel counters.
    pub status: ResourceSource,
    /// The effective configuration, secrets redacted.
    pub config: Arc<Value>,
}

impl Resources {
    /// The answer to `resources/list`.
    pub fn list() -> ListResourcesResult {
        let resource = |uri: &str, name: &str, description: &str| {
            let mut r = Resource::new(uri, name);
            r.description = Some(description.into());
            r.mime_type = Some("application/json".into());
            r
        };
        ListResourcesResult::with_all_items(vec![
            resource(
                STATUS_URI,
                "status",
                "Live dependency status (SSH tunnel, MongoDB) and tunnel counters.",
            ),
            resource(
                CONFIG_URI,
                "config",
                "The effective configuration, secrets redacted.",
            ),
        ])
    }

    /// The answer to `resources/read` of `uri`.
    ///
    /// # Errors
    /// `resource_not_found` for any other URI, naming the two that exist.
    pub fn read(&self, uri: String) -> Result<ReadResourceResult, ErrorData> {
        let value = match uri.as_str() {
            STATUS_URI => (self.status)(),
            CONFIG_URI => (*self.config).clone(),
            other => {
                return Err(ErrorData::resource_not_found(
                    format!("no resource {other}; try {STATUS_URI} or {CONFIG_URI}"),
                    None,
                ));
            }
        };
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        Ok(ReadResourceResult::new(vec![ResourceContents::text(
            text, uri,
        )]))
    }
}
