//! Database and collection names as MongoDB defines them, checked once, before any guard or driver call, and the
//! way configured patterns compare with them. Owns the naming rules; knows nothing of the allow/deny settings
//! (that is `guard`) or of the driver.
//!
//! A name is only ever used as a [`DatabaseName`] or a [`Namespace`], which can be built only by checking it, so a
//! guard or driver call cannot see an unchecked name. Each carries the argument it came from (`database`,
//! `newName`, `pipeline[0].$lookup.from.db`, …), so every refusal names it.
//!
//! # The rules (MongoDB's)
//! - A database name is non-empty, shorter than 64 bytes, and contains none of `/ \ . space " $ * < > : | ?` nor
//!   NUL (the Unix and Windows sets together, so a name is valid on every server). The dot matters most: MongoDB
//!   splits a namespace at its first dot, so `database: "admin.keys"` with `collection: "x"` would be the
//!   collection `keys.x` of `admin`, past any rule that compared the whole string.
//! - A collection name is non-empty, does not start with `.`, and contains neither `$` nor NUL (the server's own
//!   `validCollectionName`; the `$` exceptions such as `$cmd` are server internals nexus-mcp never needs).
//!   Dots inside are allowed (`orders.archive`). `system.*` is left to the guard, which refuses it unless
//!   `mcp.allowed_collections` lists it.
//! - The namespace `db.coll` is at most 255 bytes.
//!
//! # Case
//! MongoDB database names are case-sensitive strings, but two that differ only in case cannot coexist on a
//! server (creating the second fails with `DatabaseDifferCase`). So for access control they are one database:
//! - **Denials ignore case** ([`Case::Insensitive`]): `denied_databases = ["secret"]` refuses `Secret` and
//!   `SECRET`, and `admin`, `local`, `config` are recognised in any case. The operator denies a database, not a
//!   spelling; whichever spelling exists on the server, it stays refused.
//! - **Allowances are exact** ([`Case::Sensitive`]): `allowed_databases = ["shop"]` does not allow `Shop`. A
//!   spelling the operator did not write is never opened by a guess; if `shop` exists, `Shop` names nothing
//!   (reads are empty, writes fail), so nothing useful is lost. When in doubt, refuse.
//!
//! Collection names are case-sensitive in MongoDB (`Orders` and `orders` coexist), so collection patterns compare
//! exactly. Case is folded character by character with Unicode lowercase, a superset of MongoDB's ASCII check:
//! it can only refuse more.
//!
//! Longer than ~400 lines on purpose: about 140 of them are the tests that pin MongoDB's naming rules and the
//! pattern comparisons, beside the rules they check.

use std::fmt;

/// MongoDB's limit on a database name, in bytes (names must be shorter than 64).
pub const MAX_DATABASE_BYTES: usize = 63;
/// MongoDB's limit on a whole namespace `db.coll`, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 255;
/// Characters MongoDB refuses in database names on Unix or on Windows, and NUL.
const DATABASE_FORBIDDEN: [char; 13] = [
    '/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?', '\0',
];
/// Characters MongoDB refuses in collection names.
const COLLECTION_FORBIDDEN: [char; 2] = ['$', '\0'];
/// How much of a refused name an error repeats.
const SHOWN_CHARS: usize = 80;

/// Which rule a name breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    DatabaseEmpty,
    DatabaseTooLong {
        bytes: usize,
    },
    DatabaseChar(char),
    CollectionEmpty,
    /// A stage's `{db, coll}` without `coll`.
    CollectionMissing,
    CollectionChar(char),
    CollectionLeadingDot,
    NamespaceTooLong {
        bytes: usize,
    },
}

/// A name MongoDB would refuse (or read differently), with the argument it came from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct NameError {
    /// The argument, e.g. `database` or `pipeline[0].$lookup.from.db`.
    pub arg: String,
    /// The name as given (cut short in messages).
    pub name: String,
    pub problem: Problem,
    /// For [`Problem::NamespaceTooLong`]: the database and its argument.
    pub database: Option<(String, String)>,
}

impl NameError {
    fn new(arg: &str, name: &str, problem: Problem) -> Self {
        Self {
            arg: arg.to_string(),
            name: shown(name),
            problem,
            database: None,
        }
    }

    /// A required collection field that is absent.
    pub fn missing_collection(arg: &str) -> Self {
        Self::new(arg, "", Problem::CollectionMissing)
    }

    /// The rule's name, as the guard reports rules: `database name` or `collection name`.
    pub fn rule(&self) -> &'static str {
        match self.problem {
            Problem::DatabaseEmpty | Problem::DatabaseTooLong { .. } | Problem::DatabaseChar(_) => {
                "database name"
            }
            _ => "collection name",
        }
    }

    fn message(&self) -> String {
        let (arg, name) = (&self.arg, &self.name);
        let databases = "use the database's exact name (list-databases shows them)";
        let collections = "use the collection's exact name (list-collections shows them)";
        match self.problem {
            Problem::DatabaseEmpty => {
                format!("`{arg}` is empty: give a database name; {databases}")
            }
            Problem::DatabaseTooLong { bytes } => format!(
                "`{arg}` is not a valid database name: it is {bytes} bytes long and MongoDB allows at most \
                 {MAX_DATABASE_BYTES}; {databases}"
            ),
            Problem::DatabaseChar('.') => format!(
                "`{arg}` is not a valid database name: {name} contains '.', which MongoDB reads as the end of \
                 the database name (the rest would be a collection); give the database alone, and the collection \
                 in `collection`"
            ),
            Problem::DatabaseChar(c) => format!(
                "`{arg}` is not a valid database name: {name} contains {c:?}; MongoDB database names cannot \
                 contain / \\ . space \" $ * < > : | ? or NUL; {databases}"
            ),
            Problem::CollectionEmpty => {
                format!("`{arg}` is empty: give a collection name; {collections}")
            }
            Problem::CollectionMissing => {
                format!("`{arg}` is missing: give the collection's name; {collections}")
            }
            Problem::CollectionChar(c) => format!(
                "`{arg}` is not a valid collection name: {name} contains {c:?}; MongoDB collection names cannot \
                 contain '$' or NUL (names such as $cmd are server internals, not served here); {collections}"
            ),
            Problem::CollectionLeadingDot => format!(
                "`{arg}` is not a valid collection name: {name} starts with '.', which MongoDB does not allow; \
                 {collections}"
            ),
            Problem::NamespaceTooLong { bytes } => {
                let (db_arg, db) = self
                    .database
                    .as_ref()
                    .map_or(("database", ""), |(a, d)| (a.as_str(), d.as_str()));
                format!(
                    "`{arg}` is too long for database {db} (`{db_arg}`): the namespace database.collection would \
                     be {bytes} bytes and MongoDB allows at most {MAX_NAMESPACE_BYTES}; choose a shorter \
                     collection name"
                )
            }
        }
    }
}

/// `name` quoted with escapes (NUL shows as `\0`), cut at [`SHOWN_CHARS`] characters.
fn shown(name: &str) -> String {
    let mut chars = name.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// A database name MongoDB accepts, with the argument it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabaseName<'a> {
    arg: &'a str,
    name: &'a str,
}

impl<'a> DatabaseName<'a> {
    /// Checks `name`, given as the argument `arg`.
    ///
    /// # Errors
    /// [`NameError`] naming `arg` and the rule broken.
    pub fn parse(arg: &'a str, name: &'a str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::new(arg, name, Problem::DatabaseEmpty));
        }
        if let Some(c) = name.chars().find(|c| DATABASE_FORBIDDEN.contains(c)) {
            return Err(NameError::new(arg, name, Problem::DatabaseChar(c)));
        }
        if name.len() > MAX_DATABASE_BYTES {
            let bytes = name.len();
            return Err(NameError::new(
                arg,
                name,
                Problem::DatabaseTooLong { bytes },
            ));
        }
        Ok(Self { arg, name })
    }

    pub fn as_str(&self) -> &'a str {
        self.name
    }

    /// The argument the name came from.
    pub fn arg(&self) -> &'a str {
        self.arg
    }
}

impl fmt::Display for DatabaseName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A collection of a database: both names valid, the whole within MongoDB's length limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Namespace<'a> {
    db: DatabaseName<'a>,
    arg: &'a str,
    coll: &'a str,
}

impl<'a> Namespace<'a> {
    /// Checks the collection name `coll`, given as the argument `arg`, in `db`.
    ///
    /// # Errors
    /// [`NameError`] naming `arg` and the rule broken.
    pub fn parse(db: DatabaseName<'a>, arg: &'a str, coll: &'a str) -> Result<Self, NameError> {
        if coll.is_empty() {
            return Err(NameError::new(arg, coll, Problem::CollectionEmpty));
        }
        if let Some(c) = coll.chars().find(|c| COLLECTION_FORBIDDEN.contains(c)) {
            return Err(NameError::new(arg, coll, Problem::CollectionChar(c)));
        }
        if coll.starts_with('.') {
            return Err(NameError::new(arg, coll, Problem::CollectionLeadingDot));
        }
        let bytes = db.name.len() + 1 + coll.len();
        if bytes > MAX_NAMESPACE_BYTES {
            let mut e = NameError::new(arg, coll, Problem::NamespaceTooLong { bytes });
            e.database = Some((db.arg.to_string(), db.name.to_string()));
            return Err(e);
        }
        Ok(Self { db, arg, coll })
    }

    /// Checks `db` (argument `db_arg`) and `coll` (argument `coll_arg`) together.
    ///
    /// # Errors
    /// [`NameError`] for the first name that breaks a rule.
    pub fn parse_both(
        db_arg: &'a str,
        db: &'a str,
        coll_arg: &'a str,
        coll: &'a str,
    ) -> Result<Self, NameError> {
        Self::parse(DatabaseName::parse(db_arg, db)?, coll_arg, coll)
    }

    pub fn db(&self) -> DatabaseName<'a> {
        self.db
    }

    pub fn coll(&self) -> &'a str {
        self.coll
    }

    /// The argument the collection name came from.
    pub fn arg(&self) -> &'a str {
        self.arg
    }
}

impl fmt::Display for Namespace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db.name, self.coll)
    }
}

/// How a configured pattern compares with a name (see the module doc for which rule uses which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    Insensitive,
}

/// Glob match with `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str, case: Case) -> bool {
    let same = |a: char, b: char| match case {
        Case::Sensitive => a == b,
        Case::Insensitive => a == b || a.to_lowercase().eq(b.to_lowercase()),
    };
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && same(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether two database names are the same database to MongoDB (they differ at most in case).
pub fn same_database(a: &str, b: &str) -> bool {
    a.chars().count() == b.chars().count()
        && a.chars()
            .zip(b.chars())
            .all(|(x, y)| x == y || x.to_lowercase().eq(y.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(name: &str) -> Result<(), Problem> {
        DatabaseName::parse("database", name)
            .map(|_| ())
            .map_err(|e| e.problem)
    }

    fn collection(db: &str, coll: &str) -> Result<(), Problem> {
        Namespace::parse_both("database", db, "collection", coll)
            .map(|_| ())
            .map_err(|e| e.problem)
    }

    #[test]
    fn database_names() {
        let long_ok = "a".repeat(63);
        let long = "a".repeat(64);
        let wide = "é".repeat(32); // 32 characters, 64 bytes
        let huge = "x".repeat(100_000);
        let table: &[(&str, Result<(), Problem>)] = &[
            ("shop", Ok(())),
            ("Shop_EU-2", Ok(())),
            ("shöp", Ok(())),
            ("店", Ok(())),
            (&long_ok, Ok(())),
            ("", Err(Problem::DatabaseEmpty)),
            (&long, Err(Problem::DatabaseTooLong { bytes: 64 })),
            (&wide, Err(Problem::DatabaseTooLong { bytes: 64 })),
            (&huge, Err(Problem::DatabaseTooLong { bytes: 100_000 })),
            ("admin.keys", Err(Problem::DatabaseChar('.'))),
            ("secret.creds", Err(Problem::DatabaseChar('.'))),
            (".", Err(Problem::DatabaseChar('.'))),
            ("shop$", Err(Problem::DatabaseChar('$'))),
            ("$cmd", Err(Problem::DatabaseChar('$'))),
            ("sh op", Err(Problem::DatabaseChar(' '))),
            ("sh/op", Err(Problem::DatabaseChar('/'))),
            ("sh\\op", Err(Problem::DatabaseChar('\\'))),
            ("sh\"op", Err(Problem::DatabaseChar('"'))),
            ("sh*op", Err(Problem::DatabaseChar('*'))),
            ("sh<op", Err(Problem::DatabaseChar('<'))),
            ("sh>op", Err(Problem::DatabaseChar('>'))),
            ("sh:op", Err(Problem::DatabaseChar(':'))),
            ("sh|op", Err(Problem::DatabaseChar('|'))),
            ("sh?op", Err(Problem::DatabaseChar('?'))),
            ("\0", Err(Problem::DatabaseChar('\0'))),
            ("shop\0", Err(Problem::DatabaseChar('\0'))),
        ];
        for (name, expected) in table {
            assert_eq!(database(name), *expected, "{name:?}");
        }
    }

    #[test]
    fn collection_names_and_namespaces() {
        let at_limit = "x".repeat(250); // "shop." + 250 = 255 bytes
        let over = "x".repeat(251);
        let wide_over = "ü".repeat(126); // 252 bytes, 257 with "shop."
        let table: &[(&str, &str, Result<(), Problem>)] = &[
            ("shop", "orders", Ok(())),
            ("shop", "Orders", Ok(())),
            ("shop", "orders.archive", Ok(())),
            ("shop", "orders.", Ok(())),
            ("shop", "ördres", Ok(())),
            ("shop", "system.users", Ok(())), // the guard's business, not a naming rule
            ("shop", &at_limit, Ok(())),
            ("shop", "", Err(Problem::CollectionEmpty)),
            ("shop", "ord$ers", Err(Problem::CollectionChar('$'))),
            ("shop", "$cmd", Err(Problem::CollectionChar('$'))),
            ("shop", "\0", Err(Problem::CollectionChar('\0'))),
            ("shop", "a\0b", Err(Problem::CollectionChar('\0'))),
            ("shop", ".orders", Err(Problem::CollectionLeadingDot)),
            ("shop", ".", Err(Problem::CollectionLeadingDot)),
            ("shop", &over, Err(Problem::NamespaceTooLong { bytes: 256 })),
            (
                "shop",
                &wide_over,
                Err(Problem::NamespaceTooLong { bytes: 257 }),
            ),
            ("admin.keys", "x", Err(Problem::DatabaseChar('.'))),
            ("", "x", Err(Problem::DatabaseEmpty)),
        ];
        for (db, coll, expected) in table {
            assert_eq!(collection(db, coll), *expected, "{db:?} {coll:?}");
        }
    }

    #[test]
    fn errors_name_the_argument_say_what_to_do_and_stay_short() {
        let e = DatabaseName::parse("database", "admin.keys").unwrap_err();
        assert_eq!(e.rule(), "database name");
        let text = e.to_string();
        assert!(
            text.starts_with("`database` is not a valid database name"),
            "{text}"
        );
        assert!(
            text.contains("\"admin.keys\" contains '.'") && text.contains("`collection`"),
            "{text}"
        );

        let db = DatabaseName::parse("pipeline[0].$lookup.from.db", "shop").unwrap();
        let e = Namespace::parse(db, "newName", "a\0b").unwrap_err();
        assert_eq!(e.rule(), "collection name");
        assert!(
            e.to_string().contains("`newName`")
                && e.to_string().contains(r#""a\0b" contains '\0'"#)
        );

        let e = DatabaseName::parse("database", &"$".repeat(10_000)).unwrap_err();
        assert!(e.to_string().len() < 600, "{e}");
        let e = Namespace::parse(db, "collection", &"é".repeat(200)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("shop (`pipeline[0].$lookup.from.db`)") && text.contains("405 bytes"),
            "{text}"
        );
    }

    #[test]
    fn globs() {
        use Case::*;
        assert!(glob("shop*", "shop_eu", Sensitive));
        assert!(glob("*.orders", "shop.orders", Sensitive));
        assert!(glob("a?c", "abc", Sensitive));
        assert!(!glob("a?c", "ac", Sensitive));
        assert!(!glob("shop", "shop2", Sensitive));
        assert!(glob("*", "", Sensitive));
        assert!(!glob("secret", "Secret", Sensitive));
        assert!(glob("secret", "SECRET", Insensitive));
        assert!(glob("Secret*", "sECRET_hr", Insensitive));
        assert!(glob("sécret", "SÉCRET", Insensitive));
        assert!(!glob("secret", "secrets", Insensitive));
    }

    #[test]
    fn same_database_ignores_case_only() {
        assert!(same_database("admin", "ADMIN"));
        assert!(same_database("Ärger", "äRGER"));
        assert!(!same_database("admin", "admin2"));
        assert!(!same_database("admin", "admın")); // dotless ı is another letter
    }
}
