//! The settings report `nexus-mcp check` prints: each resolved `[ssh]` setting and where it came from (the user's
//! config, the ssh_config file, or the default).

use std::path::PathBuf;
use std::time::Duration;

use super::super::ssh_config::Origin;
use super::super::validate::expand_home;
use super::{Explicit, SshSetting};

/// How a value reads in the report.
pub(super) trait Show {
    fn show(&self) -> String;
}

impl Show for String {
    fn show(&self) -> String {
        self.clone()
    }
}

impl Show for u16 {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Show for usize {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Show for Duration {
    fn show(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

/// The settings report being built.
pub(super) struct Report<'a> {
    pub(super) explicit: &'a Explicit,
    /// The `[ssh]` section's path (`ssh`).
    pub(super) section: &'a str,
    pub(super) settings: Vec<SshSetting>,
}

impl Report<'_> {
    /// Where the user set this section's `name`, if they did.
    pub(super) fn origin(&self, name: &str) -> Option<String> {
        self.explicit.origin(self.section, name)
    }

    pub(super) fn push(&mut self, key: &'static str, value: String, origin: String) {
        self.settings.push(SshSetting { key, value, origin });
    }

    /// A setting the file cannot give: the user's, or the default.
    pub(super) fn push_plain(&mut self, key: &'static str, value: String) {
        let origin = self.origin(key).unwrap_or_else(|| "default".into());
        self.push(key, value, origin);
    }

    /// The user's value if they set one, else the file's, else the default.
    pub(super) fn pick<T: Show>(
        &mut self,
        key: &'static str,
        current: T,
        file: Option<(T, Origin)>,
    ) -> T {
        let (value, origin) = match (self.origin(key), file) {
            (Some(origin), _) => (current, origin),
            (None, Some((value, origin))) => (value, origin.to_string()),
            (None, None) => (current, "default".into()),
        };
        self.push(key, value.show(), origin);
        value
    }

    /// [`Report::pick`] for a setting without a default.
    pub(super) fn pick_opt(
        &mut self,
        key: &'static str,
        current: Option<String>,
        file: Option<(String, Origin)>,
    ) -> Option<String> {
        match (self.origin(key), current, file) {
            (Some(origin), Some(v), _) => {
                self.push(key, v.clone(), origin);
                Some(v)
            }
            (_, _, Some((v, origin))) => {
                self.push(key, v.clone(), origin.to_string());
                Some(v)
            }
            (_, current, None) => current,
        }
    }

    /// Key or certificate files: the user's one, else the file's that exist (OpenSSH skips missing ones).
    pub(super) fn paths(
        &mut self,
        key: &'static str,
        mine: Option<PathBuf>,
        file: &[(PathBuf, Origin)],
    ) -> Vec<PathBuf> {
        if let (Some(path), Some(origin)) = (mine.clone(), self.origin(key)) {
            self.push(key, expand_home(&path).display().to_string(), origin);
            return vec![expand_home(&path)];
        }
        let mut out = Vec::new();
        for (path, origin) in file {
            if path.is_file() {
                self.push(key, path.display().to_string(), origin.to_string());
                out.push(path.clone());
            } else {
                self.push(
                    key,
                    format!("{} (missing: skipped)", path.display()),
                    origin.to_string(),
                );
            }
        }
        out
    }
}
