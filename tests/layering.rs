//! The architecture invariants that are about imports, checked on the source tree (ARCHITECTURE.md,
//! "Architecture invariants" and the code map): the config loader sits above the components, so no component names
//! `crate::config`; `tunnel` knows nothing of MongoDB or MCP; `mcp` never reaches the tunnel; `mongo` has no SSH or
//! MCP types; `store` knows nothing of HTTP or MCP and `health` no Redis; only `main` and `app` use `anyhow`; a
//! task is spawned only on an owner that stops it. A failure lists every offending `file:line`.

use std::path::{Path, PathBuf};

/// The components: everything below the loader and `app`.
const COMPONENTS: [&str; 7] = [
    "src/tunnel",
    "src/mongo",
    "src/mcp",
    "src/http",
    "src/health",
    "src/store",
    "src/audit.rs",
];

/// `src/<name>` and everything under it: `src/<name>.rs` and the directory `src/<name>/`, when they exist.
fn rust_files(root: &str) -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
    let mut out = Vec::new();
    let file = base.with_extension("rs");
    if file.is_file() {
        out.push(file);
    }
    if base.is_dir() {
        walk(&base, &mut out);
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every Rust file under each of `roots` (each must have some).
fn files_under(roots: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in roots {
        let files = rust_files(root);
        assert!(
            !files.is_empty(),
            "{root}: no Rust files (moved? update this test)"
        );
        out.extend(files);
    }
    out
}

/// Every `file:line: text` of `files` that mentions one of `forbidden`; with `code_only`, lines from a file's
/// `#[cfg(test)]` on are skipped (tests may spawn and unwrap freely).
fn mentions_in(files: &[PathBuf], forbidden: &[&str], code_only: bool) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if code_only && line.trim() == "#[cfg(test)]" {
                break;
            }
            if forbidden.iter().any(|f| line.contains(f)) {
                let shown = path.strip_prefix(manifest).unwrap_or(path);
                found.push(format!("{}:{}: {}", shown.display(), i + 1, line.trim()));
            }
        }
    }
    found
}

/// Every `file:line: text` under `roots` that mentions one of `forbidden`.
fn mentions(roots: &[&str], forbidden: &[&str]) -> Vec<String> {
    mentions_in(&files_under(roots), forbidden, false)
}

/// Every Rust file under `src/` except those named (paths relative to `src/`).
/// Every source file but the `allowed` ones (a path ending in `/` allows a whole directory).
fn src_except(allowed: &[&str]) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allows = |p: &PathBuf, a: &str| match a.strip_suffix('/') {
        Some(dir) => p.starts_with(src.join(dir)),
        None => p == &src.join(a),
    };
    files_under(&["src"])
        .into_iter()
        .filter(|p| !allowed.iter().any(|a| allows(p, a)))
        .collect()
}

fn assert_none(what: &str, found: Vec<String>) {
    assert!(found.is_empty(), "{what}:\n{}", found.join("\n"));
}

#[test]
fn no_component_imports_the_config_loader() {
    assert_none(
        "components must use their own config types, not the loader's module (it imports them)",
        mentions(&COMPONENTS, &["crate::config"]),
    );
}

#[test]
fn the_tunnel_knows_nothing_of_mongodb_or_mcp() {
    assert_none(
        "src/tunnel must not name MongoDB or MCP modules or crates",
        mentions(
            &["src/tunnel"],
            &[
                "crate::mongo",
                "crate::mcp",
                "mongodb::",
                "bson::",
                "rmcp::",
            ],
        ),
    );
}

#[test]
fn mongo_has_no_ssh_or_mcp_types() {
    assert_none(
        "src/mongo sees the tunnel only as a `Route`",
        mentions(
            &["src/mongo"],
            &[
                "crate::tunnel",
                "crate::mcp",
                "crate::http",
                "russh",
                "rmcp::",
            ],
        ),
    );
}

#[test]
fn the_store_knows_nothing_of_http_or_mcp_and_health_no_redis() {
    assert_none(
        "src/store must not name HTTP or MCP modules",
        mentions(&["src/store"], &["crate::http", "crate::mcp", "axum::"]),
    );
    assert_none(
        "src/health knows the fleet only as a `PeerBoard`",
        mentions(&["src/health"], &["crate::store", "redis::", "crate::http"]),
    );
}

#[test]
fn only_main_and_app_use_anyhow() {
    assert_none(
        "every other module has a typed error mapped to an ErrorClass",
        mentions_in(&src_except(&["main.rs", "app/"]), &["anyhow"], false),
    );
}

/// Every spawned task has an owner: outside `app` (which awaits the HTTP task it spawns at every exit) and the
/// PTY keeper (whose `Drop` aborts it), tasks go on a `TaskTracker` or `JoinSet` that a shutdown path stops.
#[test]
fn tasks_are_spawned_only_on_an_owner() {
    assert_none(
        "spawn on the component's TaskTracker instead of a detached tokio::spawn",
        mentions_in(
            &src_except(&["app/", "tunnel/keeper.rs"]),
            &[
                "tokio::spawn",
                "task::spawn",
                "thread::spawn",
                "spawn_blocking",
            ],
            true,
        ),
    );
}

#[test]
fn mcp_never_reaches_the_tunnel() {
    assert_none(
        "src/mcp sees the tunnel only through health",
        mentions(&["src/mcp"], &["crate::tunnel"]),
    );
}

#[test]
fn the_check_finds_what_it_looks_for() {
    // The walker reads the loader itself, which names the components it builds.
    assert!(!mentions(&["src/config"], &["crate::tunnel"]).is_empty());
    // The exceptions are real: without them the checks would fail.
    assert!(!mentions_in(&src_except(&[]), &["anyhow"], false).is_empty());
    assert!(!mentions_in(&src_except(&[]), &["tokio::spawn"], true).is_empty());
    // Test modules are skipped only where asked: `deadline`'s tests spawn.
    assert!(!mentions(&["src/deadline.rs"], &["tokio::spawn"]).is_empty());
    assert!(mentions_in(&files_under(&["src/deadline.rs"]), &["tokio::spawn"], true).is_empty());
}
