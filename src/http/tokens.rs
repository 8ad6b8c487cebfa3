//! Bearer tokens from `server.auth_tokens_file`: one `name:token` per line (`#` comments and blank lines
//! allowed). Tokens are kept only as SHA-256 digests and compared in constant time; the *name* is the caller's
//! identity in logs, metrics and the audit log. The file is re-read when it changes (polled) or on SIGHUP; a
//! broken file keeps the previous tokens and logs why.

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

    /// Re-reads the file; keeps the old tokens when the new file is broken.
    ///
    /// # Errors
    /// [`TokensError`] when the file cannot be used (the previous tokens stay in force).
    pub fn reload(&self) -> Result<usize, TokensError> {
        let Some(path) = &self.path else { return Ok(0) };
        let (entries, mtime) = read(path)?;
        let count = entries.len();
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(entries);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = mtime;
        Ok(count)
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
            if mtime.is_some() && mtime != seen {
                self.reload_and_log("file changed");
            }
        }
    }

    /// Reloads and logs the outcome (for the watcher and SIGHUP).
    pub fn reload_and_log(&self, why: &str) {
        match self.reload() {
            Ok(count) => tracing::info!(tokens = count, why, "bearer tokens reloaded"),
            Err(e) => {
                tracing::error!(cause = %e, why, "bearer tokens NOT reloaded; the previous ones stay in force")
            }
        }
    }
}

fn read(path: &Path) -> Result<(Vec<Entry>, Option<SystemTime>), TokensError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TokensError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut entries: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |reason: &str| TokensError::Line {
            path: shown.clone(),
            line: i + 1,
            reason: reason.into(),
        };
        let (name, token) = line
            .split_once(':')
            .ok_or_else(|| fail("expected `name:token`"))?;
        let (name, token) = (name.trim(), token.trim());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            return Err(fail(
                "the name must be letters, digits, '-', '_', '.' or '@'",
            ));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(fail(&format!(
                "the token is shorter than {MIN_TOKEN_LEN} characters"
            )));
        }
        if entries.iter().any(|e| e.name == name) {
            return Err(fail(&format!("the name `{name}` is used twice")));
        }
        entries.push(Entry {
            name: name.to_string(),
            digest: Sha256::digest(token.as_bytes()).into(),
        });
    }
    if entries.is_empty() {
        return Err(TokensError::Read {
            path: shown,
            reason: "no tokens in the file".into(),
        });
    }
    Ok((entries, mtime))
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
        assert_eq!(tokens.reload().unwrap(), 1);
        assert_eq!(tokens.identify("0123456789abcdef0123"), None);
        std::fs::write(&path, "broken line\n").unwrap();
        assert!(tokens.reload().is_err());
        assert_eq!(
            tokens.identify("zzzzzzzzzzzzzzzzzzzz").as_deref(),
            Some("claude"),
            "old tokens stay"
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
