//! Reading known_hosts as OpenSSH does, for the host-key check: bounded in size; a line that cannot be used (not
//! UTF-8, an unknown or broken key) is skipped with a warning naming it, never failing the whole file; host
//! patterns may be plain names, `[host]:port`, hashed (`|1|salt|hash`), with `*`/`?` wildcards and `!` negation;
//! `@revoked` keys are refused for every host; `@cert-authority` keys whose patterns match the host are the
//! authorities trusted to sign its host certificates (checked in `certs`).

use std::path::Path;

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use russh::keys::PublicKey;

/// What known_hosts says about one host.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    /// Keys recorded for the host, with their 1-based line numbers.
    pub keys: Vec<(usize, PublicKey)>,
    /// Keys marked `@revoked` (for any host).
    pub revoked: Vec<PublicKey>,
    /// `@cert-authority` keys whose host patterns match the host, with their 1-based line numbers.
    pub authorities: Vec<(usize, PublicKey)>,
}

/// The entries of `path` that apply to `host` on `port`.
///
/// # Errors
/// The file cannot be read, or is larger than [`crate::files::MAX_KNOWN_HOSTS`].
pub(super) fn recorded(path: &Path, host: &str, port: u16) -> std::io::Result<Recorded> {
    let bytes = match crate::files::read_bounded(path, crate::files::MAX_KNOWN_HOSTS) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let name = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let mut out = Recorded::default();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let Ok(line) = std::str::from_utf8(raw) else {
            tracing::warn!(known_hosts = %path.display(), line = line_no, "known_hosts: skipped a line that is not UTF-8");
            continue;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        let (marker, hosts) = if first.starts_with('@') {
            (Some(first), fields.next().unwrap_or_default())
        } else {
            (None, first)
        };
        let (Some(kind), Some(base64)) = (fields.next(), fields.next()) else {
            tracing::warn!(known_hosts = %path.display(), line = line_no, "known_hosts: skipped a line without a key");
            continue;
        };
        let Ok(key) = PublicKey::from_openssh(&format!("{kind} {base64}")) else {
            tracing::warn!(known_hosts = %path.display(), line = line_no, kind, "known_hosts: skipped a key that cannot be read");
            continue;
        };
        match marker {
            Some("@revoked") => out.revoked.push(key),
            Some("@cert-authority") if matches_host(hosts, &name) => {
                out.authorities.push((line_no, key));
            }
            Some(_) => {} // an authority for other hosts, or an unknown marker (OpenSSH skips those too)
            None if matches_host(hosts, &name) => out.keys.push((line_no, key)),
            None => {}
        }
    }
    Ok(out)
}

/// OpenSSH's host list: comma-separated patterns; a matching `!pattern` excludes the host whatever else matches.
fn matches_host(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard(negated, name) {
                return false;
            }
        } else if pattern.starts_with("|1|") {
            matched |= hashed(pattern, name);
        } else {
            matched |= wildcard(pattern, name);
        }
    }
    matched
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
fn hashed(pattern: &str, name: &str) -> bool {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut parts = pattern.split('|').skip(2);
    let (Some(Ok(salt)), Some(Ok(hash))) = (
        parts.next().map(|p| engine.decode(p)),
        parts.next().map(|p| engine.decode(p)),
    ) else {
        return false;
    };
    let Ok(mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` and `?` wildcards, case-insensitive (host names are).
fn wildcard(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    // Patterns are short; bound the work for hostile ones anyway.
    pattern.len() <= 255 && text.len() <= 255 && go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGakS6WbEGOuGqTFK+SRSP3I/nNWa3RA895rbwHLUv7";

    #[test]
    fn host_patterns() {
        assert!(matches_host(
            "a.example,[127.0.0.1]:2222",
            "[127.0.0.1]:2222"
        ));
        assert!(matches_host("*.example", "db.example"));
        assert!(matches_host("DB.example", "db.example"));
        assert!(!matches_host("*.example,!db.example", "db.example"));
        assert!(matches_host("10.0.0.?", "10.0.0.7"));
        assert!(!matches_host("10.0.0.?", "10.0.0.17"));
        // `ssh-keygen -H` output for "[127.0.0.1]:2222" with a fixed salt.
        let salt = [7u8; 20];
        let mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt)
            .unwrap()
            .chain_update(b"[127.0.0.1]:2222")
            .finalize()
            .into_bytes();
        let e = base64::engine::general_purpose::STANDARD;
        let hashed = format!("|1|{}|{}", e.encode(salt), e.encode(mac));
        assert!(matches_host(&hashed, "[127.0.0.1]:2222"));
        assert!(!matches_host(&hashed, "[127.0.0.1]:2223"));
    }

    #[test]
    fn bad_lines_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let mut text = b"garbage \xff\xfe line\n".to_vec();
        text.extend_from_slice(b"[127.0.0.1]:2222 ssh-ed25519 not-base64!\n");
        text.extend_from_slice(
            format!("[127.0.0.1]:2222 {KEY_A}\n@revoked * {KEY_A}\n").as_bytes(),
        );
        std::fs::write(&path, text).unwrap();
        let r = recorded(&path, "127.0.0.1", 2222).unwrap();
        assert_eq!(r.keys.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![3]);
        assert_eq!(r.revoked.len(), 1);
        assert!(r.authorities.is_empty());
        assert!(
            recorded(&dir.path().join("absent"), "h", 22)
                .unwrap()
                .keys
                .is_empty()
        );
    }

    #[test]
    fn authorities_apply_to_the_hosts_their_patterns_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!(
                "@cert-authority *.example,[127.0.0.1]:2222 {KEY_A}\n@cert-authority other.example {KEY_A}\n"
            ),
        )
        .unwrap();
        let r = recorded(&path, "127.0.0.1", 2222).unwrap();
        assert_eq!(
            r.authorities.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![1]
        );
        assert!(r.keys.is_empty(), "an authority is not a host key");
        assert_eq!(
            recorded(&path, "db.example", 22).unwrap().authorities.len(),
            1
        );
        assert_eq!(
            recorded(&path, "other.example", 22)
                .unwrap()
                .authorities
                .len(),
            2,
            "both lines name it"
        );
        assert!(
            recorded(&path, "127.0.0.1", 22)
                .unwrap()
                .authorities
                .is_empty()
        );
    }

    #[test]
    fn a_huge_file_is_refused() {
        let e = recorded(Path::new("/dev/zero"), "h", 22).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    proptest::proptest! {
        /// Any content: no panic, and only keys that parse are ever recorded.
        #[test]
        fn any_file_is_read_without_panicking(lines in proptest::collection::vec(
            proptest::prop_oneof![
                "[ -~]{0,60}",
                proptest::strategy::Just(format!("[127.0.0.1]:2222 {KEY_A}")),
                proptest::strategy::Just(format!("@revoked * {KEY_A}")),
                proptest::strategy::Just("|1|AAAA|BBBB ssh-ed25519 AAAA".to_string()),
                proptest::strategy::Just("!*,* ssh-rsa AAAA".to_string()),
            ],
            0..8,
        ), pattern in "[*?!a-z.,\\[\\]:0-9]{0,20}") {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("known_hosts");
            std::fs::write(&path, lines.join("\n")).unwrap();
            let r = recorded(&path, "127.0.0.1", 2222).unwrap();
            let valid = lines.iter().filter(|l| **l == format!("[127.0.0.1]:2222 {KEY_A}")).count();
            proptest::prop_assert_eq!(r.keys.len(), valid);
            let _ = matches_host(&pattern, "db.example");
        }
    }
}
