//! Which class of tool each tool is, for OAuth scopes: `read` (reads and resources), `write` (insert, update,
//! rename, create), `admin` (drop-*, delete-many).

use crate::access::ToolClass;

const WRITE: [&str; 5] = [
    "insert-many",
    "update-many",
    "rename-collection",
    "create-collection",
    "create-index",
];
const ADMIN: [&str; 4] = [
    "drop-database",
    "drop-collection",
    "drop-index",
    "delete-many",
];
const READ: [&str; 12] = [
    "list-connections",
    "list-databases",
    "list-collections",
    "find",
    "aggregate",
    "count",
    "distinct",
    "collection-schema",
    "collection-indexes",
    "collection-storage-size",
    "db-stats",
    "explain",
];

/// The class of tool `name`; `None` for a name that is no tool.
pub fn tool_class(name: &str) -> Option<ToolClass> {
    if READ.contains(&name) {
        Some(ToolClass::Read)
    } else if WRITE.contains(&name) {
        Some(ToolClass::Write)
    } else if ADMIN.contains(&name) {
        Some(ToolClass::Admin)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_class_and_only_read_only_tools_are_read() {
        let all = crate::mcp::registry::router(false, Some(&["a".into(), "b".into()])).list_all();
        for tool in &all {
            let read_only = tool.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true);
            let class = tool_class(&tool.name);
            assert!(class.is_some(), "{} has no class", tool.name);
            assert_eq!(class == Some(ToolClass::Read), read_only, "{}", tool.name);
        }
        assert_eq!(READ.len() + WRITE.len() + ADMIN.len(), all.len());
    }
}
