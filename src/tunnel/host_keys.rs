//! Host key verification against known_hosts, per `ssh.host_key_policy`. Fail-closed: anything but a recorded,
//! matching key — or a host certificate from an `@cert-authority` listed for the host — is refused unless the
//! policy says otherwise.

use std::path::Path;

use russh::keys::{Certificate, HashAlg, PublicKey, PublicKeyOrCertificate};

use super::certs::{self, HostCertProblem};
use super::config::{HostKeyPolicy, SshEndpoint};
use super::error::TunnelError;
use super::known_hosts;

/// The outcome of checking one offered host key.
#[derive(Debug)]
pub(super) enum Verdict {
    /// known_hosts records this key for this host.
    Trusted,
    /// Unknown host, learned into known_hosts (accept-new).
    Learned,
    /// Accepted without checking (insecure-accept-any).
    AcceptedInsecurely,
    /// Refused; the error says why.
    Refused(TunnelError),
}

/// Whether known_hosts lists a `@cert-authority` for `endpoint`: only then are host certificate algorithms offered
/// (a server asked for one presents its certificate instead of its plain key).
pub(super) fn has_authority(endpoint: &SshEndpoint, known_hosts: &Path) -> bool {
    known_hosts::recorded(known_hosts, &endpoint.host, endpoint.port)
        .is_ok_and(|r| !r.authorities.is_empty())
}

/// Checks what `endpoint` offered — a plain key or a host certificate — against `known_hosts` under `policy`.
pub(super) fn verify_offered(
    endpoint: &SshEndpoint,
    offered: &PublicKeyOrCertificate,
    known_hosts: &Path,
    policy: HostKeyPolicy,
) -> Verdict {
    match offered {
        PublicKeyOrCertificate::Certificate(cert) if policy != HostKeyPolicy::InsecureAcceptAny => {
            verify_certificate(endpoint, cert, known_hosts, certs::now())
        }
        other => verify(endpoint, &other.public_key(), known_hosts, policy),
    }
}

/// A host certificate: trusted when an authority listed for the host vouches for it; otherwise only when its plain
/// key is itself recorded for the host (as OpenSSH falls back to the plain key). Never learned (accept-new): a
/// certificate that fails is a reason to stop, not a new host. Revocation of the key or its authority always wins.
fn verify_certificate(
    endpoint: &SshEndpoint,
    cert: &Certificate,
    known_hosts: &Path,
    now: u64,
) -> Verdict {
    let known_hosts_name = known_hosts.display().to_string();
    let recorded = match read(endpoint, known_hosts) {
        Ok(recorded) => recorded,
        Err(e) => return Verdict::Refused(e),
    };
    let problem = match certs::check_host_certificate(
        cert,
        &endpoint.host,
        &recorded.authorities,
        &recorded.revoked,
        now,
    ) {
        Ok(line) => {
            tracing::debug!(endpoint = %endpoint, known_hosts = %known_hosts_name, line, certificate = %certs::describe(cert), "host certificate accepted");
            return Verdict::Trusted;
        }
        Err(HostCertProblem::Revoked { what, fingerprint }) => {
            return Verdict::Refused(TunnelError::HostCertificateRevoked {
                endpoint: endpoint.to_string(),
                known_hosts: known_hosts_name,
                what,
                fingerprint,
            });
        }
        Err(HostCertProblem::Untrusted(why)) => why,
    };
    let plain = cert.public_key();
    if recorded.keys.iter().any(|(_, k)| k.key_data() == plain) {
        tracing::warn!(endpoint = %endpoint, known_hosts = %known_hosts_name, cause = %problem, "host certificate not trusted, but its plain key is recorded for the host: accepted as a plain key");
        return Verdict::Trusted;
    }
    Verdict::Refused(TunnelError::HostCertificateRefused {
        endpoint: endpoint.to_string(),
        known_hosts: known_hosts_name,
        certificate: certs::describe(cert),
        reason: problem,
    })
}

/// What `known_hosts` says about `endpoint`.
fn read(endpoint: &SshEndpoint, known_hosts: &Path) -> Result<known_hosts::Recorded, TunnelError> {
    known_hosts::recorded(known_hosts, &endpoint.host, endpoint.port).map_err(|e| {
        TunnelError::KnownHosts {
            endpoint: endpoint.to_string(),
            reason: format!("{}: {e}", known_hosts.display()),
        }
    })
}

/// Checks `key`, offered by `endpoint`, against `known_hosts` under `policy`.
pub(super) fn verify(
    endpoint: &SshEndpoint,
    key: &PublicKey,
    known_hosts: &Path,
    policy: HostKeyPolicy,
) -> Verdict {
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    if policy == HostKeyPolicy::InsecureAcceptAny {
        return Verdict::AcceptedInsecurely;
    }
    let known_hosts_name = known_hosts.display().to_string();
    let recorded = match read(endpoint, known_hosts) {
        Ok(recorded) => recorded,
        Err(e) => return Verdict::Refused(e),
    };
    // A revoked key is refused whatever else the file says.
    if recorded
        .revoked
        .iter()
        .any(|k| k.key_data() == key.key_data())
    {
        return Verdict::Refused(TunnelError::HostKeyRevoked {
            endpoint: endpoint.to_string(),
            known_hosts: known_hosts_name,
            fingerprint,
        });
    }
    if recorded
        .keys
        .iter()
        .any(|(_, k)| k.key_data() == key.key_data())
    {
        return Verdict::Trusted;
    }
    // Another key of the same type is recorded for this host: it changed (as OpenSSH, keys of other types do not
    // count: the server may simply have offered a type the file lacks).
    if let Some((line, _)) = recorded
        .keys
        .iter()
        .find(|(_, k)| k.algorithm() == key.algorithm())
    {
        return Verdict::Refused(TunnelError::HostKeyMismatch {
            endpoint: endpoint.to_string(),
            known_hosts: known_hosts_name,
            line: *line,
            fingerprint,
        });
    }
    if policy != HostKeyPolicy::AcceptNew {
        return Verdict::Refused(TunnelError::HostKeyUnknown {
            endpoint: endpoint.to_string(),
            known_hosts: known_hosts_name,
            fingerprint,
        });
    }
    match russh::keys::known_hosts::learn_known_hosts_path(
        &endpoint.host,
        endpoint.port,
        key,
        known_hosts,
    ) {
        Ok(()) => Verdict::Learned,
        Err(e) => Verdict::Refused(TunnelError::KnownHosts {
            endpoint: endpoint.to_string(),
            reason: format!("cannot record the new key in {known_hosts_name}: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGakS6WbEGOuGqTFK+SRSP3I/nNWa3RA895rbwHLUv7";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOmpIvUu/glcRd1uswFW//KUDxXpI8YBHvY0Q7R3mjo1";

    fn endpoint(port: u16) -> SshEndpoint {
        SshEndpoint {
            user: "u".into(),
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn strict_trusts_only_recorded_keys() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, format!("[127.0.0.1]:2222 {KEY_A}\n")).unwrap();
        let strict = HostKeyPolicy::Strict;
        assert!(matches!(
            verify(&endpoint(2222), &key(KEY_A), &kh, strict),
            Verdict::Trusted
        ));
        match verify(&endpoint(2222), &key(KEY_B), &kh, strict) {
            Verdict::Refused(e @ TunnelError::HostKeyMismatch { line: 1, .. }) => {
                assert!(e.to_string().contains("SHA256:"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            verify(&endpoint(2223), &key(KEY_A), &kh, strict),
            Verdict::Refused(TunnelError::HostKeyUnknown { .. })
        ));
        let missing = dir.path().join("absent");
        assert!(matches!(
            verify(&endpoint(2222), &key(KEY_A), &missing, strict),
            Verdict::Refused(TunnelError::HostKeyUnknown { .. })
        ));
    }

    #[test]
    fn revoked_keys_are_refused_even_when_also_listed() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        std::fs::write(
            &kh,
            format!("[127.0.0.1]:2222 {KEY_A}\n@revoked * {KEY_A}\n"),
        )
        .unwrap();
        for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
            assert!(matches!(
                verify(&endpoint(2222), &key(KEY_A), &kh, policy),
                Verdict::Refused(TunnelError::HostKeyRevoked { .. })
            ));
        }
        assert!(matches!(
            verify(&endpoint(2223), &key(KEY_B), &kh, HostKeyPolicy::AcceptNew),
            Verdict::Learned
        ));
    }

    #[test]
    fn accept_new_learns_unknown_hosts_but_refuses_changed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        let policy = HostKeyPolicy::AcceptNew;
        assert!(matches!(
            verify(&endpoint(2222), &key(KEY_A), &kh, policy),
            Verdict::Learned
        ));
        assert!(matches!(
            verify(&endpoint(2222), &key(KEY_A), &kh, HostKeyPolicy::Strict),
            Verdict::Trusted
        ));
        assert!(matches!(
            verify(&endpoint(2222), &key(KEY_B), &kh, policy),
            Verdict::Refused(TunnelError::HostKeyMismatch { .. })
        ));
        let text = std::fs::read_to_string(&kh).unwrap();
        let text = text.trim_start();
        assert!(text.starts_with("[127.0.0.1]:2222 ssh-ed25519 "), "{text}");
    }
}
