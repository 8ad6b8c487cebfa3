//! Bearer tokens from `server.auth_tokens_file`: one `name:token` per line (`#` comments and blank lines
//! allowed). Tokens are kept only as SHA-256 digests and compared in constant time; the *name* is the caller's
//! identity in logs, metrics and the audit log. The file is re-read when it changes or disappears (polled) or on
//! SIGHUP, failing closed: afterwards exactly its valid lines are in force (none when it is gone or empty), and
//! every skipped line is logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Shortest token accepted: 16 characters (≈ 96 bits of base64).
const MIN_TOKEN_LEN: usize = 16;

/// Why a tokens file was refused. Never contains a token.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
}

struct Entry {
    name: String,
    digest: [u8; 32],
}

/// The current token set; cheap to share.
pub struct Tokens {
    path: Option<PathBuf>,
    entries: RwLock<Arc<Vec<Entry>>>,
    /// Modification time of the file when last read.
    seen: Mutex<Option<SystemTime>>,
}

impl Tokens {
    /// No tokens: authentication is off (only allowed on loopback or with --insecure-no-auth).
    pub fn none() -> Self {
        Self {
            path: None,
            entries: RwLock::new(Arc::new(Vec::new())),
            seen: Mutex::new(None),
        }
    }

    /// Reads the tokens file.
    ///
    /// # Errors
    /// [`TokensError`] naming the file and line.
    pub fn load(path: &Path) -> Result<Self, TokensError> {
        let (entries, mtime) = read(path)?;
        Ok(Self {
            path: Some(path.to_path_buf()),
            entries: RwLock::new(Arc::new(entries)),
            seen: Mutex::new(mtime),
        })
    }

    /// Whether requests must carry a token.
    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    /// The name of the token presented, if it is one of ours. Every entry is compared, in constant time.
    pub fn identify(&self, presented: &str) -> Option<String> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut found = None;
        for entry in entries.iter() {
            let diff = entry
                .digest
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(entry.name.clone());
            }
        }
        found
    }

    /// Re-reads the file. Fails closed: what is in force afterwards is exactly the valid lines of the file as it
    /// is now — a deleted, unreadable or empty file leaves no valid token, and a malformed line is skipped (never
    /// does a token removed from the file stay valid).
    ///
    /// Returns the number of tokens in force and the problems found (each names the file and line, never a token).
    pub fn reload(&self) -> (usize, Vec<TokensError>) {
        let Some(path) = &self.path else {
            return (0, Vec::new());
        };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let (entries, problems) = match read_lines(path) {
            Ok(parsed) => parsed,
            Err(e) => (Vec::new(), vec![e]),
        };
        let count = entries.len();
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(entries);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = mtime;
        (count, problems)
    }

    /// Polls the file's modification time every `interval` and reloads on change, until `stop`.
    pub async fn watch(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let Some(path) = self.path.clone() else {
            return;
        };
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.cancelled() => return,
            }
            let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let seen = *self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if mtime != seen {
                self.reload_and_log(if mtime.is_some() {
                    "file changed"
                } else {
                    "file removed"
                });
            }
        }
    }

    /// Reloads and logs the outcome (for the watcher and SIGHUP).
    pub fn reload_and_log(&self, why: &str) {
        let (count, problems) = self.reload();
        for problem in &problems {
            tracing::error!(cause = %problem, why, "bearer tokens file: skipped what cannot be used");
        }
        if count == 0 {
            tracing::error!(
                why,
                "no valid bearer token: every request to /mcp is refused until the tokens file is fixed"
            );
        } else {
            tracing::info!(tokens = count, why, "bearer tokens reloaded");
        }
    }
}

/// Reads the file leniently (for reloads): the valid entries, and a problem per line that is not one.
fn read_lines(path: &Path) -> Result<(Vec<Entry>, Vec<TokensError>), TokensError> {
    let shown = path.display().to_string();
    let text = crate::files::read_text_bounded(path, crate::files::MAX_CONFIG).map_err(|e| {
        TokensError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        }
    })?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        match parse_line(raw, &entries) {
            Ok(None) => {}
            Ok(Some(entry)) => entries.push(entry),
            Err(reason) => problems.push(TokensError::Line {
                path: shown.clone(),
                line: i + 1,
                reason,
            }),
        }
    }
    if entries.is_empty() && problems.is_empty() {
        problems.push(TokensError::Read {
            path: shown,
            reason: "no tokens in the file".into(),
        });
    }
    Ok((entries, problems))
}

/// One line: `None` for blanks and comments; the reason never contains the token.
fn parse_line(raw: &str, seen: &[Entry]) -> Result<Option<Entry>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (name, token) = line
        .split_once(':')
        .ok_or_else(|| "expected `name:token`".to_string())?;
    let (name, token) = (name.trim(), token.trim());
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err("the name must be letters, digits, '-', '_', '.' or '@'".into());
    }
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "the token is shorter than {MIN_TOKEN_LEN} characters"
        ));
    }
    if seen.iter().any(|e| e.name == name) {
        return Err(format!("the name `{name}` is used twice"));
    }
    Ok(Some(Entry {
        name: name.to_string(),
        digest: Sha256::digest(token.as_bytes()).into(),
    }))
}

/// Reads the file strictly (at startup, where a problem is a configuration error).
fn read(path: &Path) -> Result<(Vec<Entry>, Option<SystemTime>), TokensError> {
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let (entries, problems) = read_lines(path)?;
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok((entries, mtime)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_by_name_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            "# agents\nclaude:0123456789abcdef0123\n\ncursor: fedcba9876543210fedc\n",
        )
        .unwrap();
        let tokens = Tokens::load(&path).unwrap();
        assert_eq!(
            tokens.identify("0123456789abcdef0123").as_deref(),
            Some("claude")
        );
        assert_eq!(
            tokens.identify("fedcba9876543210fedc").as_deref(),
            Some("cursor")
        );
        assert_eq!(tokens.identify("0123456789abcdef012"), None);
        std::fs::write(&path, "claude:zzzzzzzzzzzzzzzzzzzz\n").unwrap();
        assert_eq!(tokens.reload().0, 1);
        assert_eq!(tokens.identify("0123456789abcdef0123"), None);
    }

    #[test]
    fn revocation_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "a:aaaaaaaaaaaaaaaaaaaa\nb:bbbbbbbbbbbbbbbbbbbb\n").unwrap();
        let tokens = Tokens::load(&path).unwrap();

        // A malformed line is skipped; the token removed with it does not stay valid.
        std::fs::write(&path, "a:aaaaaaaaaaaaaaaaaaaa\nbroken line\n").unwrap();
        let (count, problems) = tokens.reload();
        assert_eq!((count, problems.len()), (1, 1));
        assert!(problems[0].to_string().contains("line 2"));
        assert_eq!(tokens.identify("bbbbbbbbbbbbbbbbbbbb"), None);
        assert_eq!(
            tokens.identify("aaaaaaaaaaaaaaaaaaaa").as_deref(),
            Some("a")
        );

        // Emptied, then deleted: no token is valid.
        std::fs::write(&path, "# nobody\n").unwrap();
        assert_eq!(tokens.reload().0, 0);
        assert_eq!(tokens.identify("aaaaaaaaaaaaaaaaaaaa"), None);
        std::fs::write(&path, "a:aaaaaaaaaaaaaaaaaaaa\n").unwrap();
        assert_eq!(tokens.reload().0, 1);
        std::fs::remove_file(&path).unwrap();
        let (count, problems) = tokens.reload();
        assert_eq!((count, problems.len()), (0, 1));
        assert_eq!(tokens.identify("aaaaaaaaaaaaaaaaaaaa"), None);
        assert!(
            tokens.enabled(),
            "still required: no token means nobody gets in"
        );
    }

    #[test]
    fn errors_name_the_line_but_never_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "ok:0123456789abcdef0123\nbad:short-secret\n").unwrap();
        let e = Tokens::load(&path).err().unwrap().to_string();
        assert!(e.contains("line 2") && !e.contains("short-secret"), "{e}");
    }
}
