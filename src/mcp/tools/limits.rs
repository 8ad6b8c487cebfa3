//! What a read returns at most: [`AppliedLimits`] (reported back as `appliedLimits`), [`cap_items`] for answers
//! that are lists of names or values, and [`response_bytes`] for a caller's own byte limit.

use super::ToolContext;
use crate::mcp::guard::ReadLimits;
use crate::mongo::collect::{Collected, Cut};

/// The limits a read applied, as reported in `appliedLimits`.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedLimits {
    /// Documents returned at most.
    pub limit: u64,
    /// Whether the requested limit was lowered to mcp.max_documents.
    pub limit_capped_by_max_documents: bool,
    /// Bytes of BSON returned at most.
    pub max_bytes: u64,
    /// Which limit cut the result short: "maxDocuments" or "maxBytes"; absent when the result is complete
    /// (for `find`, reaching `limit` is not reported as a cut).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated_by: Option<String>,
}

impl AppliedLimits {
    pub fn new(limits: &ReadLimits, max_bytes: u64, collected: &Collected) -> Self {
        Self {
            limit: limits.limit,
            limit_capped_by_max_documents: limits.capped_by_max_documents,
            max_bytes,
            truncated_by: collected.cut.map(|c| match c {
                Cut::MaxDocuments => "maxDocuments".into(),
                Cut::MaxBytes => "maxBytes".into(),
            }),
        }
    }

    /// The parenthesised note of the summary line.
    pub fn note(&self, returned: usize) -> String {
        let mut notes = Vec::new();
        if self.limit_capped_by_max_documents {
            notes.push(format!(
                "limit lowered to mcp.max_documents = {}",
                self.limit
            ));
        } else if returned as u64 == self.limit {
            notes.push(format!("limit {} applied", self.limit));
        }
        match self.truncated_by.as_deref() {
            Some("maxBytes") => notes.push(format!(
                "truncated at {} bytes: more documents matched",
                self.max_bytes
            )),
            Some(_) => notes.push(format!(
                "truncated at {} documents: more matched",
                self.limit
            )),
            None => {}
        }
        if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        }
    }
}

/// Keeps the leading items that fit `mcp.max_documents` items and `mcp.max_bytes` of JSON, for answers that are
/// lists of names or values rather than documents (`distinct`, `list-collections`, `list-databases`); the limits
/// say which cut, if any.
pub fn cap_items<T: serde::Serialize>(ctx: &ToolContext, items: Vec<T>) -> (Vec<T>, AppliedLimits) {
    let max = ctx.guard.max_documents();
    let max_bytes = ctx.guard.max_bytes();
    let mut kept = Vec::with_capacity(items.len().min(max as usize));
    let mut bytes = 0u64;
    let mut cut = None;
    for item in items {
        if kept.len() as u64 == max {
            cut = Some(Cut::MaxDocuments);
            break;
        }
        let size = serde_json::to_vec(&item).map_or(0, |v| v.len() as u64 + 1);
        if bytes + size > max_bytes {
            cut = Some(Cut::MaxBytes);
            break;
        }
        bytes += size;
        kept.push(item);
    }
    let limits = AppliedLimits {
        limit: max,
        limit_capped_by_max_documents: false,
        max_bytes,
        truncated_by: cut.map(|c| match c {
            Cut::MaxDocuments => "maxDocuments".into(),
            Cut::MaxBytes => "maxBytes".into(),
        }),
    };
    (kept, limits)
}

impl AppliedLimits {
    /// " (showing the first N: mcp.max_…)" when `cap_items` cut the list.
    pub fn showing(&self, shown: usize) -> String {
        match self.truncated_by.as_deref() {
            Some("maxBytes") => format!(
                " (showing the first {shown}: mcp.max_bytes = {})",
                self.max_bytes
            ),
            Some(_) => format!(" (showing the first {shown}: mcp.max_documents)"),
            None => String::new(),
        }
    }
}

/// A byte limit requested by the tool caller, never above `mcp.max_bytes`.
pub fn response_bytes(ctx: &ToolContext, requested: Option<u64>) -> u64 {
    requested.map_or(ctx.guard.max_bytes(), |b| b.min(ctx.guard.max_bytes()))
}
