//! The architecture invariants that are about imports, checked on the source tree (ARCHITECTURE.md,
//! "Architecture invariants"): the config loader sits above the components, so no component names
//! `crate::config`; `tunnel` knows nothing of MongoDB or MCP; `mcp` never reaches the tunnel. A failure lists
//! every offending `file:line`.

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

/// Every `file:line: text` under `roots` that mentions one of `forbidden`.
fn mentions(roots: &[&str], forbidden: &[&str]) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for root in roots {
        let files = rust_files(root);
        assert!(
            !files.is_empty(),
            "{root}: no Rust files (moved? update this test)"
        );
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, line) in text.lines().enumerate() {
                if forbidden.iter().any(|f| line.contains(f)) {
                    let shown = path.strip_prefix(manifest).unwrap_or(&path);
                    found.push(format!("{}:{}: {}", shown.display(), i + 1, line.trim()));
                }
            }
        }
    }
    found
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
        "src/tunnel must not name MongoDB or MCP modules",
        mentions(&["src/tunnel"], &["crate::mongo", "crate::mcp"]),
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
}
