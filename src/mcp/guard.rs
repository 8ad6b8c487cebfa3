//! Guards applied to every tool before anything reaches MongoDB: namespaces (allow/deny lists with glob patterns;
//! `admin`, `local`, `config` and `system.*` denied unless listed literally), server-side JavaScript operators,
//! write stages in read-only mode (including stages nested in `$lookup`/`$unionWith`/`$facet` sub-pipelines,
//! whose collections are namespace-checked too), and result limits.
//!
//! A refusal is a [`Rejected`] naming the rule, so the model (and the user) learn which setting to change.

use mongodb::bson::{Bson, Document};

use super::namespace::{Case, glob};
use crate::config::McpConfig;

/// Databases that hold server internals; denied unless `mcp.allowed_databases` names them literally.
const SYSTEM_DATABASES: [&str; 3] = ["admin", "local", "config"];
/// Operators that run JavaScript on the server.
const JS_OPERATORS: [&str; 3] = ["$where", "$function", "$accumulator"];
/// Aggregation stages that write.
const WRITE_STAGES: [&str; 2] = ["$out", "$merge"];

/// A request refused by a guard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (rule: {rule})")]
pub struct Rejected {
    /// The setting or rule that refused it, e.g. `mcp.read_only`.
    pub rule: &'static str,
    pub message: String,
}

fn rejected(rule: &'static str, message: impl Into<String>) -> Rejected {
    Rejected {
        rule,
        message: message.into(),
    }
}

/// Read limits for one call, reported back as `appliedLimits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadLimits {
    /// Documents to return at most.
    pub limit: u64,
    /// Whether the requested limit was lowered to `mcp.max_documents`.
    pub capped_by_max_documents: bool,
    /// Bytes of BSON to return at most (`mcp.max_bytes`).
    pub max_bytes: u64,
}

/// The guard settings, compiled from `McpConfig`.
#[derive(Clone, Debug)]
pub struct Guard {
    read_only: bool,
    block_server_side_js: bool,
    allowed_databases: Vec<String>,
    denied_databases: Vec<String>,
    allowed_collections: Vec<String>,
    default_limit: u64,
    max_documents: u64,
    max_bytes: u64,
}

impl Guard {
    pub fn new(cfg: &McpConfig) -> Self {
        Self {
            read_only: cfg.read_only,
            block_server_side_js: cfg.block_server_side_js,
            allowed_databases: cfg.allowed_databases.clone(),
            denied_databases: cfg.denied_databases.clone(),
            allowed_collections: cfg.allowed_collections.clone(),
            default_limit: cfg.default_limit,
            max_documents: cfg.max_documents,
            max_bytes: cfg.max_bytes.as_u64(),
        }
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub fn max_documents(&self) -> u64 {
        self.max_documents
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// May this database be used at all?
    ///
    /// # Errors
    /// [`Rejected`] naming the rule.
    pub fn database(&self, db: &str) -> Result<(), Rejected> {
        if db.is_empty() {
            return Err(rejected("database name", "the database name is empty"));
        }
        if self
            .denied_databases
            .iter()
            .any(|p| glob(p, db, Case::Sensitive))
        {
            return Err(rejected(
                "mcp.denied_databases",
                format!("database `{db}` is denied"),
            ));
        }
        if SYSTEM_DATABASES.contains(&db) && !self.allowed_databases.iter().any(|p| p == db) {
            return Err(rejected(
                "system databases",
                format!(
                    "database `{db}` holds server internals and is denied unless mcp.allowed_databases lists \
                     it by name"
                ),
            ));
        }
        if !self.allowed_databases.is_empty()
            && !self
                .allowed_databases
                .iter()
                .any(|p| glob(p, db, Case::Sensitive))
        {
            return Err(rejected(
                "mcp.allowed_databases",
                format!("database `{db}` is not in mcp.allowed_databases"),
            ));
        }
        Ok(())
    }

    /// May this collection be used?
    ///
    /// # Errors
    /// [`Rejected`] naming the rule.
    pub fn collection(&self, db: &str, coll: &str) -> Result<(), Rejected> {
        self.database(db)?;
        if coll.is_empty() {
            return Err(rejected("collection name", "the collection name is empty"));
        }
        let namespace = format!("{db}.{coll}");
        let listed = |p: &String| {
            glob(p, &namespace, Case::Sensitive)
                || (!p.contains('.') && glob(p, coll, Case::Sensitive))
        };
        if coll.starts_with("system.")
            && !self
                .allowed_collections
                .iter()
                .any(|p| *p == namespace || p == coll)
        {
            return Err(rejected(
                "system collections",
                format!(
                    "collection `{namespace}` is a system collection, denied unless mcp.allowed_collections lists it"
                ),
            ));
        }
        if !self.allowed_collections.is_empty() && !self.allowed_collections.iter().any(listed) {
            return Err(rejected(
                "mcp.allowed_collections",
                format!("collection `{namespace}` is not in mcp.allowed_collections"),
            ));
        }
        Ok(())
    }

    /// Refuses server-side JavaScript operators anywhere in `doc` (when `mcp.block_server_side_js`).
    ///
    /// # Errors
    /// [`Rejected`] naming the operator and where it was found.
    pub fn query(&self, name: &str, doc: &Document) -> Result<(), Rejected> {
        if !self.block_server_side_js {
            return Ok(());
        }
        match find_key(doc, &JS_OPERATORS) {
            Some(op) => Err(rejected(
                "mcp.block_server_side_js",
                format!("{op} in {name} runs JavaScript on the server and is not allowed"),
            )),
            None => Ok(()),
        }
    }

    /// Checks an aggregation pipeline: write stages, JavaScript operators, and the namespaces of every collection
    /// it reads (`$lookup`, `$graphLookup`, `$unionWith`) or writes (`$out`, `$merge`), recursively.
    ///
    /// # Errors
    /// [`Rejected`] naming the rule.
    pub fn pipeline(&self, db: &str, stages: &[Document]) -> Result<(), Rejected> {
        for stage in stages {
            self.query("pipeline", stage)?;
            self.stage(db, stage)?;
        }
        Ok(())
    }

    fn stage(&self, db: &str, stage: &Document) -> Result<(), Rejected> {
        // MongoDB refuses other shapes too; refusing here means no key can hide behind the first one.
        if stage.len() != 1 {
            return Err(rejected(
                "pipeline stage",
                format!(
                    "each pipeline stage must have exactly one field, got {}",
                    stage.len()
                ),
            ));
        }
        let Some((name, spec)) = stage.iter().next() else {
            return Ok(());
        };
        if WRITE_STAGES.contains(&name.as_str()) {
            if self.read_only {
                return Err(rejected(
                    "mcp.read_only",
                    format!("{name} writes to a collection; the server is read-only"),
                ));
            }
            let (target_db, target) = match spec {
                Bson::String(coll) => (db.to_string(), coll.clone()),
                Bson::Document(d) => {
                    let into = d.get("into").unwrap_or(spec);
                    match into {
                        Bson::String(coll) => (db.to_string(), coll.clone()),
                        Bson::Document(ns) => (
                            ns.get_str("db").unwrap_or(db).to_string(),
                            ns.get_str("coll").unwrap_or_default().to_string(),
                        ),
                        _ => (db.to_string(), String::new()),
                    }
                }
                _ => (db.to_string(), String::new()),
            };
            return self.collection(&target_db, &target);
        }
        match (name.as_str(), spec) {
            ("$lookup" | "$graphLookup", Bson::Document(d)) => {
                match d.get("from") {
                    Some(Bson::String(coll)) => self.collection(db, coll)?,
                    Some(Bson::Document(ns)) => {
                        self.collection(
                            ns.get_str("db").unwrap_or(db),
                            ns.get_str("coll").unwrap_or_default(),
                        )?;
                    }
                    _ => {}
                }
                self.sub_pipeline(db, d.get("pipeline"))
            }
            ("$unionWith", Bson::String(coll)) => self.collection(db, coll),
            ("$unionWith", Bson::Document(d)) => {
                if let Ok(coll) = d.get_str("coll") {
                    self.collection(db, coll)?;
                }
                self.sub_pipeline(db, d.get("pipeline"))
            }
            ("$facet", Bson::Document(facets)) => {
                for (_, sub) in facets {
                    self.sub_pipeline(db, Some(sub))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn sub_pipeline(&self, db: &str, pipeline: Option<&Bson>) -> Result<(), Rejected> {
        let Some(Bson::Array(stages)) = pipeline else {
            return Ok(());
        };
        for stage in stages {
            if let Bson::Document(stage) = stage {
                self.stage(db, stage)?;
            }
        }
        Ok(())
    }

    /// The read limits for a requested `limit` (default `mcp.default_limit`, at most `mcp.max_documents`).
    ///
    /// # Errors
    /// A sentence when `limit` is not a positive integer.
    pub fn read_limits(&self, requested: Option<i64>) -> Result<ReadLimits, String> {
        let limit = match requested {
            None => self.default_limit,
            Some(n) if n >= 1 => n as u64,
            Some(n) => return Err(format!("limit must be a positive integer, got {n}")),
        };
        Ok(ReadLimits {
            limit: limit.min(self.max_documents),
            capped_by_max_documents: limit > self.max_documents,
            max_bytes: self.max_bytes,
        })
    }
}

/// The first of `keys` used as a key anywhere in `doc`.
fn find_key(doc: &Document, keys: &[&'static str]) -> Option<&'static str> {
    for (k, v) in doc {
        if let Some(hit) = keys.iter().find(|op| *op == k) {
            return Some(hit);
        }
        if let Some(hit) = find_key_in(v, keys) {
            return Some(hit);
        }
    }
    None
}

fn find_key_in(value: &Bson, keys: &[&'static str]) -> Option<&'static str> {
    match value {
        Bson::Document(d) => find_key(d, keys),
        Bson::Array(items) => items.iter().find_map(|v| find_key_in(v, keys)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    fn guard(edit: impl FnOnce(&mut McpConfig)) -> Guard {
        let mut cfg = McpConfig::shipped_defaults();
        edit(&mut cfg);
        Guard::new(&cfg)
    }

    #[test]
    fn system_databases_need_a_literal_allow() {
        let g = guard(|_| {});
        assert_eq!(g.database("admin").unwrap_err().rule, "system databases");
        assert!(g.database("shop").is_ok());
        let g = guard(|c| c.allowed_databases = vec!["*".into()]);
        assert!(
            g.database("local").is_err(),
            "a wildcard does not open system databases"
        );
        let g = guard(|c| c.allowed_databases = vec!["config".into()]);
        assert!(g.database("config").is_ok());
    }

    #[test]
    fn deny_wins_and_allow_lists_restrict() {
        let g = guard(|c| {
            c.allowed_databases = vec!["shop*".into()];
            c.denied_databases = vec!["shop_secret".into()];
            c.allowed_collections = vec!["orders".into(), "shop_eu.customers".into()];
        });
        assert_eq!(
            g.database("shop_secret").unwrap_err().rule,
            "mcp.denied_databases"
        );
        assert_eq!(g.database("hr").unwrap_err().rule, "mcp.allowed_databases");
        assert!(g.collection("shop", "orders").is_ok());
        assert!(g.collection("shop_eu", "customers").is_ok());
        assert_eq!(
            g.collection("shop", "customers").unwrap_err().rule,
            "mcp.allowed_collections"
        );
        assert_eq!(
            g.collection("shop", "system.users").unwrap_err().rule,
            "system collections"
        );
    }

    #[test]
    fn javascript_is_refused_wherever_it_hides() {
        let g = guard(|_| {});
        let filter = doc! { "$or": [ { "a": 1 }, { "$where": "sleep(1000)" } ] };
        let e = g.query("filter", &filter).unwrap_err();
        assert_eq!(e.rule, "mcp.block_server_side_js");
        assert!(e.to_string().contains("$where in filter"), "{e}");
        let group = doc! { "$group": { "_id": null, "x": { "$accumulator": {} } } };
        assert!(g.pipeline("shop", &[group]).is_err());
        let g = guard(|c| c.block_server_side_js = false);
        assert!(g.query("filter", &filter).is_ok());
    }

    #[test]
    fn pipelines_cannot_write_in_read_only_or_reach_denied_collections() {
        let g = guard(|c| c.allowed_collections = vec!["orders".into()]);
        assert_eq!(
            g.pipeline("shop", &[doc! { "$out": "x" }])
                .unwrap_err()
                .rule,
            "mcp.read_only"
        );
        let nested =
            doc! { "$facet": { "a": [ { "$lookup": { "from": "customers", "as": "c" } } ] } };
        assert_eq!(
            g.pipeline("shop", &[nested]).unwrap_err().rule,
            "mcp.allowed_collections"
        );
        let union = doc! { "$unionWith": { "coll": "orders", "pipeline": [ { "$merge": { "into": "y" } } ] } };
        assert_eq!(
            g.pipeline("shop", &[union]).unwrap_err().rule,
            "mcp.read_only"
        );
        let rw = guard(|c| c.read_only = false);
        let merge = doc! { "$merge": { "into": { "db": "admin", "coll": "x" } } };
        assert_eq!(
            rw.pipeline("shop", &[merge]).unwrap_err().rule,
            "system databases"
        );
        assert!(rw.pipeline("shop", &[doc! { "$out": "report" }]).is_ok());
    }

    #[test]
    fn a_stage_cannot_hide_a_write_behind_another_key() {
        let g = guard(|_| {});
        let sneaky = doc! { "$match": {}, "$out": "x" };
        assert_eq!(
            g.pipeline("shop", &[sneaky]).unwrap_err().rule,
            "pipeline stage"
        );
    }

    #[test]
    fn limits_default_cap_and_validate() {
        let g = guard(|_| {});
        assert_eq!(g.read_limits(None).unwrap().limit, 10);
        let capped = g.read_limits(Some(1000)).unwrap();
        assert_eq!((capped.limit, capped.capped_by_max_documents), (100, true));
        assert!(g.read_limits(Some(-1)).unwrap_err().contains("positive"));
        assert!(g.read_limits(Some(0)).is_err());
    }
}
