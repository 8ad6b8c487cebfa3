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
const READ: [&str; 11] = [
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
    use crate::mcp::server::NexusServer;

    #[test]
    fn every_tool_has_a_class_that_matches_what_it_does() {
        for tool in NexusServer::read_tools().list_all() {
            assert_eq!(
                tool_class(&tool.name),
                Some(ToolClass::Read),
                "{}",
                tool.name
            );
        }
        let writes = NexusServer::write_tools().list_all();
        for tool in &writes {
            let class = tool_class(&tool.name);
            let destructive = tool
                .annotations
                .as_ref()
                .and_then(|a| a.destructive_hint)
                .unwrap_or(true);
            let expected = match tool.name.as_ref() {
                "update-many" | "rename-collection" => ToolClass::Write,
                _ if destructive => ToolClass::Admin,
                _ => ToolClass::Write,
            };
            assert_eq!(class, Some(expected), "{}", tool.name);
        }
        assert_eq!(
            READ.len() + WRITE.len() + ADMIN.len(),
            NexusServer::read_tools().list_all().len() + writes.len()
        );
    }
}
