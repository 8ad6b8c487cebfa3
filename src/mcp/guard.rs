//! Guards applied to every tool before anything reaches MongoDB: namespaces (allow/deny lists with glob patterns;
//! `admin`, `local`, `config` and `system.*` denied unless listed literally), server-side JavaScript operators,
//! write stages in read-only mode (including stages nested in `$lookup`/`$unionWith`/`$facet` sub-pipelines),
//! every namespace a pipeline names (`$lookup`/`$graphLookup` `from`, `$unionWith`, `$out`, `$merge`, in their
//! string and `{db, coll}` forms), and result limits.
//!
//! Names reach the guard only as [`DatabaseName`] / [`Namespace`], already checked against MongoDB's naming
//! rules by `namespace`, which also says how patterns compare with names: denials ignore case, allowances do not.
//!
//! A refusal is a [`Rejected`] naming the rule and the argument, so the model (and the user) learn what to change.
//!
//! Longer than ~400 lines on purpose: every rule a request passes before MongoDB is here, in one reading order
//! (namespaces, then operators, then pipelines and the namespaces they name), and about 290 lines are the tests
//! that pin each rule.

use mongodb::bson::{Bson, Document};

use super::config::McpConfig;
use super::namespace::{Case, DatabaseName, NameError, Namespace, glob, same_database};
use crate::error::ErrorClass;

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

impl Rejected {
    /// Always [`ErrorClass::QueryRejected`]: the request never reached MongoDB.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::QueryRejected
    }
}

/// A `limit` argument that is not a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("limit must be a positive integer, got {0}")]
pub struct BadLimit(pub i64);

impl BadLimit {
    /// Always [`ErrorClass::QueryRejected`]: a bad argument never reaches MongoDB.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::QueryRejected
    }
}

impl From<NameError> for Rejected {
    fn from(e: NameError) -> Self {
        rejected(e.rule(), e.to_string())
    }
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

    /// May this database be used at all? Denials (and the system databases) match without regard to case;
    /// `mcp.allowed_databases` matches exactly.
    ///
    /// # Errors
    /// [`Rejected`] naming the rule and the argument.
    pub fn database(&self, db: DatabaseName<'_>) -> Result<(), Rejected> {
        let (arg, name) = (db.arg(), db.as_str());
        if self
            .denied_databases
            .iter()
            .any(|p| glob(p, name, Case::Insensitive))
        {
            return Err(rejected(
                "mcp.denied_databases",
                format!(
                    "`{arg}`: database `{name}` is denied by mcp.denied_databases (matched in any case: MongoDB \
                     cannot hold two databases whose names differ only in case)"
                ),
            ));
        }
        if SYSTEM_DATABASES.iter().any(|s| same_database(s, name))
            && !self.allowed_databases.iter().any(|p| p == name)
        {
            return Err(rejected(
                "system databases",
                format!(
                    "`{arg}`: database `{name}` holds server internals and is denied unless \
                     mcp.allowed_databases lists it by name"
                ),
            ));
        }
        if !self.allowed_databases.is_empty()
            && !self
                .allowed_databases
                .iter()
                .any(|p| glob(p, name, Case::Sensitive))
        {
            return Err(rejected(
                "mcp.allowed_databases",
                format!(
                    "`{arg}`: database `{name}` is not in mcp.allowed_databases (matched exactly, case included)"
                ),
            ));
        }
        Ok(())
    }

    /// May this collection be used?
    ///
    /// # Errors
    /// [`Rejected`] naming the rule and the argument.
    pub fn collection(&self, ns: &Namespace<'_>) -> Result<(), Rejected> {
        self.database(ns.db())?;
        let (arg, coll, namespace) = (ns.arg(), ns.coll(), ns.to_string());
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
                    "`{arg}`: collection `{namespace}` is a system collection, denied unless \
                     mcp.allowed_collections lists it"
                ),
            ));
        }
        if !self.allowed_collections.is_empty() && !self.allowed_collections.iter().any(listed) {
            return Err(rejected(
                "mcp.allowed_collections",
                format!("`{arg}`: collection `{namespace}` is not in mcp.allowed_collections"),
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

    /// Checks an aggregation pipeline given as the argument `arg` and run in `db`: write stages, JavaScript
    /// operators, and the namespace of every collection it reads (`$lookup`, `$graphLookup`, `$unionWith`) or
    /// writes (`$out`, `$merge`), recursively.
    ///
    /// A bare collection name inside a sub-pipeline that reads another database could resolve in either
    /// database (MongoDB resolves it in the foreign one); it is checked in both, so neither can hide it.
    ///
    /// # Errors
    /// [`Rejected`] naming the rule and where in `arg` it applies (`pipeline[1].$lookup.from.db`).
    pub fn pipeline(
        &self,
        arg: &str,
        db: DatabaseName<'_>,
        stages: &[Document],
    ) -> Result<(), Rejected> {
        for (i, stage) in stages.iter().enumerate() {
            self.query(arg, stage)?;
            self.stage(&format!("{arg}[{i}]"), &[db], stage)?;
        }
        Ok(())
    }

    /// One stage at `at`; `dbs` are the databases a bare collection name may resolve in.
    fn stage(&self, at: &str, dbs: &[DatabaseName<'_>], stage: &Document) -> Result<(), Rejected> {
        // MongoDB refuses other shapes too; refusing here means no key can hide behind the first one.
        if stage.len() != 1 {
            return Err(rejected(
                "pipeline stage",
                format!(
                    "`{at}`: each pipeline stage must have exactly one field, got {}",
                    stage.len()
                ),
            ));
        }
        let Some((name, spec)) = stage.iter().next() else {
            return Ok(());
        };
        let at = format!("{at}.{name}");
        if WRITE_STAGES.contains(&name.as_str()) {
            if self.read_only {
                return Err(rejected(
                    "mcp.read_only",
                    format!("{name} writes to a collection; the server is read-only"),
                ));
            }
            let (paths, target) = match (name.as_str(), spec) {
                ("$merge", Bson::Document(d)) => (Paths::new(format!("{at}.into")), d.get("into")),
                _ => (Paths::new(at), Some(spec)),
            };
            let Some(target) = target else {
                return Err(rejected(
                    "pipeline stage",
                    format!(
                        "`{}` is missing: $merge needs the collection to write into",
                        paths.at
                    ),
                ));
            };
            return self.target(&paths, dbs, target).map(drop);
        }
        match (name.as_str(), spec) {
            ("$lookup" | "$graphLookup", Bson::Document(d)) => {
                let from = Paths::new(format!("{at}.from"));
                let foreign = match d.get("from") {
                    Some(spec) => self.target(&from, dbs, spec)?,
                    None => None,
                };
                self.sub_pipeline(&format!("{at}.pipeline"), dbs, foreign, d.get("pipeline"))
            }
            ("$unionWith", Bson::Document(d)) => {
                let paths = Paths::new(at.clone());
                let foreign = self.db_coll(&paths, dbs, d, false)?;
                self.sub_pipeline(&format!("{at}.pipeline"), dbs, foreign, d.get("pipeline"))
            }
            ("$unionWith", spec) => self.target(&Paths::new(at), dbs, spec).map(drop),
            ("$facet", Bson::Document(facets)) => {
                for (facet, sub) in facets {
                    self.sub_pipeline(&format!("{at}.{facet}"), dbs, None, Some(sub))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A namespace a stage names: a bare collection name (checked in each of `dbs`) or `{db, coll}`. Returns
    /// the database it names explicitly, if any.
    fn target<'d>(
        &self,
        paths: &'d Paths,
        dbs: &[DatabaseName<'d>],
        spec: &'d Bson,
    ) -> Result<Option<DatabaseName<'d>>, Rejected> {
        match spec {
            Bson::String(coll) => {
                for db in dbs {
                    self.collection(&Namespace::parse(*db, &paths.at, coll)?)?;
                }
                Ok(None)
            }
            Bson::Document(d) => self.db_coll(paths, dbs, d, true),
            other => Err(rejected(
                "collection name",
                format!(
                    "`{}` must be a collection name or {{\"db\": …, \"coll\": …}}, got {:?}",
                    paths.at,
                    other.element_type()
                ),
            )),
        }
    }

    /// The `{db, coll}` fields of `d` (`db` defaults to each of `dbs`; `coll` may be absent unless required).
    fn db_coll<'d>(
        &self,
        paths: &'d Paths,
        dbs: &[DatabaseName<'d>],
        d: &'d Document,
        coll_required: bool,
    ) -> Result<Option<DatabaseName<'d>>, Rejected> {
        let foreign = match d.get("db") {
            None => None,
            Some(Bson::String(name)) => Some(DatabaseName::parse(&paths.db, name)?),
            Some(other) => {
                return Err(rejected(
                    "database name",
                    format!(
                        "`{}` must be a database name (a string), got {:?}",
                        paths.db,
                        other.element_type()
                    ),
                ));
            }
        };
        if let Some(db) = foreign {
            self.database(db)?;
        }
        let in_dbs = foreign.map_or_else(|| dbs.to_vec(), |db| vec![db]);
        match d.get("coll") {
            Some(Bson::String(coll)) => {
                for db in in_dbs {
                    self.collection(&Namespace::parse(db, &paths.coll, coll)?)?;
                }
            }
            None if !coll_required => {}
            None => return Err(NameError::missing_collection(&paths.coll).into()),
            Some(other) => {
                return Err(rejected(
                    "collection name",
                    format!(
                        "`{}` must be a collection name (a string), got {:?}",
                        paths.coll,
                        other.element_type()
                    ),
                ));
            }
        }
        Ok(foreign)
    }

    /// A sub-pipeline at `at`; its bare names may resolve in `dbs` or in the `foreign` database of its stage.
    fn sub_pipeline(
        &self,
        at: &str,
        dbs: &[DatabaseName<'_>],
        foreign: Option<DatabaseName<'_>>,
        pipeline: Option<&Bson>,
    ) -> Result<(), Rejected> {
        let Some(Bson::Array(stages)) = pipeline else {
            return Ok(());
        };
        let mut scope = dbs.to_vec();
        if let Some(db) = foreign
            && !scope.iter().any(|d| d.as_str() == db.as_str())
        {
            scope.push(db);
        }
        for (i, stage) in stages.iter().enumerate() {
            if let Bson::Document(stage) = stage {
                self.stage(&format!("{at}[{i}]"), &scope, stage)?;
            }
        }
        Ok(())
    }

    /// The read limits for a requested `limit` (default `mcp.default_limit`, at most `mcp.max_documents`).
    ///
    /// # Errors
    /// [`BadLimit`] when `limit` is not a positive integer.
    pub fn read_limits(&self, requested: Option<i64>) -> Result<ReadLimits, BadLimit> {
        let limit = match requested {
            None => self.default_limit,
            Some(n) if n >= 1 => n as u64,
            Some(n) => return Err(BadLimit(n)),
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

/// The argument paths of a namespace a stage names: `at` for a bare name, `at.db` / `at.coll` for its fields.
struct Paths {
    at: String,
    db: String,
    coll: String,
}

impl Paths {
    fn new(at: String) -> Self {
        Self {
            db: format!("{at}.db"),
            coll: format!("{at}.coll"),
            at,
        }
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

    fn db(name: &str) -> DatabaseName<'_> {
        DatabaseName::parse("database", name).unwrap()
    }

    fn database(g: &Guard, name: &str) -> Result<(), Rejected> {
        g.database(db(name))
    }

    fn collection(g: &Guard, d: &str, coll: &str) -> Result<(), Rejected> {
        g.collection(&Namespace::parse(db(d), "collection", coll).unwrap())
    }

    fn pipeline(g: &Guard, d: &str, stages: &[Document]) -> Result<(), Rejected> {
        g.pipeline("pipeline", db(d), stages)
    }

    #[test]
    fn system_databases_need_a_literal_allow() {
        let g = guard(|_| {});
        assert_eq!(database(&g, "admin").unwrap_err().rule, "system databases");
        assert!(database(&g, "shop").is_ok());
        let g = guard(|c| c.allowed_databases = vec!["*".into()]);
        assert!(
            database(&g, "local").is_err(),
            "a wildcard does not open system databases"
        );
        let g = guard(|c| c.allowed_databases = vec!["config".into()]);
        assert!(database(&g, "config").is_ok());
    }

    #[test]
    fn deny_wins_and_allow_lists_restrict() {
        let g = guard(|c| {
            c.allowed_databases = vec!["shop*".into()];
            c.denied_databases = vec!["shop_secret".into()];
            c.allowed_collections = vec!["orders".into(), "shop_eu.customers".into()];
        });
        assert_eq!(
            database(&g, "shop_secret").unwrap_err().rule,
            "mcp.denied_databases"
        );
        assert_eq!(
            database(&g, "hr").unwrap_err().rule,
            "mcp.allowed_databases"
        );
        assert!(collection(&g, "shop", "orders").is_ok());
        assert!(collection(&g, "shop_eu", "customers").is_ok());
        assert_eq!(
            collection(&g, "shop", "customers").unwrap_err().rule,
            "mcp.allowed_collections"
        );
        assert_eq!(
            collection(&g, "shop", "system.users").unwrap_err().rule,
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
        assert!(pipeline(&g, "shop", &[group]).is_err());
        let g = guard(|c| c.block_server_side_js = false);
        assert!(g.query("filter", &filter).is_ok());
    }

    #[test]
    fn pipelines_cannot_write_in_read_only_or_reach_denied_collections() {
        let g = guard(|c| c.allowed_collections = vec!["orders".into()]);
        assert_eq!(
            pipeline(&g, "shop", &[doc! { "$out": "x" }])
                .unwrap_err()
                .rule,
            "mcp.read_only"
        );
        let nested =
            doc! { "$facet": { "a": [ { "$lookup": { "from": "customers", "as": "c" } } ] } };
        assert_eq!(
            pipeline(&g, "shop", &[nested]).unwrap_err().rule,
            "mcp.allowed_collections"
        );
        let union = doc! { "$unionWith": { "coll": "orders", "pipeline": [ { "$merge": { "into": "y" } } ] } };
        assert_eq!(
            pipeline(&g, "shop", &[union]).unwrap_err().rule,
            "mcp.read_only"
        );
        let rw = guard(|c| c.read_only = false);
        let merge = doc! { "$merge": { "into": { "db": "admin", "coll": "x" } } };
        assert_eq!(
            pipeline(&rw, "shop", &[merge]).unwrap_err().rule,
            "system databases"
        );
        assert!(pipeline(&rw, "shop", &[doc! { "$out": "report" }]).is_ok());
    }

    #[test]
    fn denials_ignore_case_and_allowances_do_not() {
        let g = guard(|c| {
            c.denied_databases = vec!["secret".into(), "hr_*".into()];
            c.allowed_databases = vec![
                "shop".into(),
                "secret".into(),
                "HR_*".into(),
                "admin".into(),
            ];
        });
        for name in ["secret", "Secret", "SECRET", "hr_eu", "HR_EU"] {
            let e = database(&g, name).unwrap_err();
            assert_eq!(e.rule, "mcp.denied_databases", "{name}");
            assert!(e.message.starts_with("`database`: database `"), "{e}");
        }
        assert!(database(&g, "shop").is_ok());
        assert_eq!(
            database(&g, "Shop").unwrap_err().rule,
            "mcp.allowed_databases"
        );
        assert!(database(&g, "admin").is_ok(), "listed by name");
        for name in ["Admin", "ADMIN", "Local", "CONFIG"] {
            let g = guard(|c| c.allowed_databases = vec!["admin".into(), "*".into()]);
            assert_eq!(
                database(&g, name).unwrap_err().rule,
                "system databases",
                "{name}"
            );
        }
    }

    #[test]
    fn every_namespace_a_pipeline_names_is_checked_and_named() {
        let g = guard(|c| {
            c.read_only = false;
            c.denied_databases = vec!["secret".into()];
        });
        let cases = [
            (
                doc! { "$unionWith": { "db": "secret", "coll": "x" } },
                "mcp.denied_databases",
                "pipeline[0].$unionWith.db",
            ),
            (
                doc! { "$unionWith": { "db": "SECRET", "pipeline": [] } },
                "mcp.denied_databases",
                "pipeline[0].$unionWith.db",
            ),
            (
                doc! { "$lookup": { "from": { "db": "Secret", "coll": "x" }, "as": "s" } },
                "mcp.denied_databases",
                "pipeline[0].$lookup.from.db",
            ),
            (
                doc! { "$graphLookup": { "from": { "db": "secret", "coll": "x" }, "as": "s" } },
                "mcp.denied_databases",
                "pipeline[0].$graphLookup.from.db",
            ),
            (
                doc! { "$out": { "db": "sEcReT", "coll": "x" } },
                "mcp.denied_databases",
                "pipeline[0].$out.db",
            ),
            (
                doc! { "$merge": { "into": { "db": "secret", "coll": "x" } } },
                "mcp.denied_databases",
                "pipeline[0].$merge.into.db",
            ),
            (
                doc! { "$facet": { "f": [ { "$unionWith": { "db": "secret", "coll": "x" } } ] } },
                "mcp.denied_databases",
                "pipeline[0].$facet.f[0].$unionWith.db",
            ),
            (
                doc! { "$lookup": { "from": { "db": "admin.keys", "coll": "x" }, "as": "s" } },
                "database name",
                "pipeline[0].$lookup.from.db",
            ),
            (
                doc! { "$unionWith": { "db": 5, "coll": "x" } },
                "database name",
                "pipeline[0].$unionWith.db",
            ),
            (
                doc! { "$unionWith": "a$b" },
                "collection name",
                "pipeline[0].$unionWith",
            ),
            (
                doc! { "$unionWith": { "coll": 7 } },
                "collection name",
                "pipeline[0].$unionWith.coll",
            ),
            (
                doc! { "$lookup": { "from": { "db": "shop" }, "as": "s" } },
                "collection name",
                "pipeline[0].$lookup.from.coll",
            ),
            (
                doc! { "$lookup": { "from": null, "as": "s" } },
                "collection name",
                "pipeline[0].$lookup.from",
            ),
            (
                doc! { "$merge": { "into": ".x" } },
                "collection name",
                "pipeline[0].$merge.into",
            ),
            (
                doc! { "$merge": { "on": "_id" } },
                "pipeline stage",
                "pipeline[0].$merge.into",
            ),
            (
                doc! { "$out": "system.js" },
                "system collections",
                "pipeline[0].$out",
            ),
        ];
        for (stage, rule, arg) in cases {
            let e = pipeline(&g, "shop", &[doc! { "$match": {} }, stage.clone()]).unwrap_err();
            let arg = arg.replace("pipeline[0]", "pipeline[1]");
            assert_eq!(e.rule, rule, "{stage}: {e}");
            assert!(e.message.contains(&format!("`{arg}`")), "{stage}: {e}");
        }
        let fine = doc! { "$lookup": { "from": { "db": "shop", "coll": "customers" }, "as": "c" } };
        assert!(pipeline(&g, "shop", &[fine]).is_ok());
        let fine =
            doc! { "$unionWith": { "db": "shop_eu", "pipeline": [ { "$documents": [ {} ] } ] } };
        assert!(pipeline(&g, "shop", &[fine]).is_ok());
    }

    #[test]
    fn a_bare_name_in_a_foreign_sub_pipeline_is_checked_in_both_databases() {
        let g = guard(|c| c.allowed_collections = vec!["shop.orders".into(), "eu.orders".into()]);
        let both = doc! { "$unionWith": { "db": "eu", "coll": "orders",
        "pipeline": [ { "$lookup": { "from": "orders", "as": "o" } } ] } };
        assert!(pipeline(&g, "shop", &[both]).is_ok());
        let g = guard(|c| c.allowed_collections = vec!["shop.orders".into(), "eu.*".into()]);
        let hidden = doc! { "$unionWith": { "db": "eu", "coll": "orders",
        "pipeline": [ { "$lookup": { "from": "payroll", "as": "p" } } ] } };
        let e = pipeline(&g, "shop", &[hidden]).unwrap_err();
        assert_eq!(e.rule, "mcp.allowed_collections");
        assert!(
            e.message.contains(
                "`pipeline[0].$unionWith.pipeline[0].$lookup.from`: collection `shop.payroll`"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_stage_cannot_hide_a_write_behind_another_key() {
        let g = guard(|_| {});
        let sneaky = doc! { "$match": {}, "$out": "x" };
        assert_eq!(
            pipeline(&g, "shop", &[sneaky]).unwrap_err().rule,
            "pipeline stage"
        );
    }

    #[test]
    fn limits_default_cap_and_validate() {
        let g = guard(|_| {});
        assert_eq!(g.read_limits(None).unwrap().limit, 10);
        let capped = g.read_limits(Some(1000)).unwrap();
        assert_eq!((capped.limit, capped.capped_by_max_documents), (100, true));
        assert!(
            g.read_limits(Some(-1))
                .unwrap_err()
                .to_string()
                .contains("positive")
        );
        assert_eq!(
            g.read_limits(Some(-1)).unwrap_err().class(),
            ErrorClass::QueryRejected
        );
        assert!(g.read_limits(Some(0)).is_err());
    }
}
