//! OpenSSH certificates, as pure checks over keys, certificates and a Unix time: a host certificate is trusted for
//! a host when an `@cert-authority` line for that host lists its signer, it is a host certificate, valid now,
//! names the host among its principals, its signature verifies, and neither it nor its authority is `@revoked`
//! (OpenSSH's rules, `ssh-keygen(1)` CERTIFICATES); a user certificate is checked before it is offered, so an
//! expired one, or one for other principals, is named in the error instead of the server's bare "refused".
//!
//! Knows nothing of sessions or files beyond reading one certificate.

use std::path::Path;

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Certificate, HashAlg, PublicKey};

/// Why a host certificate is not trusted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HostCertProblem {
    /// The certificate's authority (or its key) is marked `@revoked`: refused whatever else says.
    Revoked {
        what: &'static str,
        fingerprint: String,
    },
    /// Anything else: no matching authority, wrong type, outside its validity, other principals, bad signature.
    Untrusted(String),
}

/// The 1-based known_hosts line of the authority that vouches for `cert` as `host`'s host key at `now`.
///
/// # Errors
/// [`HostCertProblem`] saying what is wrong.
pub(super) fn check_host_certificate(
    cert: &Certificate,
    host: &str,
    authorities: &[(usize, PublicKey)],
    revoked: &[PublicKey],
    now: u64,
) -> Result<usize, HostCertProblem> {
    let signer = cert.signature_key();
    if revoked.iter().any(|k| k.key_data() == signer) {
        return Err(HostCertProblem::Revoked {
            what: "certificate authority",
            fingerprint: signer.fingerprint(HashAlg::Sha256).to_string(),
        });
    }
    if revoked.iter().any(|k| k.key_data() == cert.public_key()) {
        return Err(HostCertProblem::Revoked {
            what: "host key",
            fingerprint: cert.public_key().fingerprint(HashAlg::Sha256).to_string(),
        });
    }
    let untrusted = |why: String| Err(HostCertProblem::Untrusted(why));
    let Some((line, _)) = authorities.iter().find(|(_, k)| k.key_data() == signer) else {
        return untrusted(format!(
            "its signer {} is not a @cert-authority for this host",
            signer.fingerprint(HashAlg::Sha256)
        ));
    };
    if cert.cert_type() != CertType::Host {
        return untrusted("it is a user certificate, not a host certificate".into());
    }
    if let Some(why) = outside_validity(cert, now) {
        return untrusted(why);
    }
    if cert.valid_principals().is_empty() {
        return untrusted(
            "it names no principals (OpenSSH refuses such host certificates too)".into(),
        );
    }
    if !cert
        .valid_principals()
        .iter()
        .any(|p| p.eq_ignore_ascii_case(host))
    {
        return untrusted(format!(
            "its principals {} do not include the host name {host:?}",
            principals(cert)
        ));
    }
    let ca_fingerprint = signer.fingerprint(HashAlg::Sha256);
    if cert.validate_at(now, [&ca_fingerprint]).is_err() {
        return untrusted("its signature does not verify".into());
    }
    Ok(*line)
}

/// Why `cert` cannot log in as `user` at `now`, when that can be told without asking the server.
pub(super) fn user_certificate_problem(cert: &Certificate, user: &str, now: u64) -> Option<String> {
    if cert.cert_type() != CertType::User {
        return Some("it is a host certificate, not a user certificate".into());
    }
    if let Some(why) = outside_validity(cert, now) {
        return Some(why);
    }
    let names = cert.valid_principals();
    if !names.is_empty() && !names.iter().any(|p| p == user) {
        return Some(format!(
            "its principals {} do not include the user {user:?}",
            principals(cert)
        ));
    }
    None
}

/// Reads an OpenSSH certificate file (`id_ed25519-cert.pub`).
///
/// # Errors
/// A sentence saying why it cannot be used.
pub(super) fn read_certificate(path: &Path) -> Result<Certificate, String> {
    let text = crate::files::read_text_bounded(path, crate::files::MAX_SECRET)
        .map_err(|e| e.to_string())?;
    Certificate::from_openssh(text.trim()).map_err(|e| format!("not an OpenSSH certificate: {e}"))
}

/// `key id "…", principals [a, b]`: what identifies a certificate in errors (no secret in it).
pub(super) fn describe(cert: &Certificate) -> String {
    format!(
        "key id {:?}, principals {}",
        cert.key_id(),
        principals(cert)
    )
}

/// The current Unix time (0 if the clock is before 1970, which makes every certificate "not yet valid").
pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn outside_validity(cert: &Certificate, now: u64) -> Option<String> {
    if now < cert.valid_after() {
        Some(format!(
            "it is not valid before {}",
            time_text(cert.valid_after())
        ))
    } else if now >= cert.valid_before() {
        Some(format!("it expired at {}", time_text(cert.valid_before())))
    } else {
        None
    }
}

fn principals(cert: &Certificate) -> String {
    format!("[{}]", cert.valid_principals().join(", "))
}

fn time_text(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(crate::rfc3339::format)
        .unwrap_or_else(|| "forever".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    const NOW: u64 = 1_800_000_000;

    /// A distinct Ed25519 key per call (deterministic: the tests need no randomness).
    fn key() -> PrivateKey {
        static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
        let seed = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn cert(
        ca: &PrivateKey,
        of: &PrivateKey,
        kind: CertType,
        principals: &[&str],
        valid: (u64, u64),
    ) -> Certificate {
        let mut b = Builder::new([7u8; 32], of.public_key(), valid.0, valid.1).unwrap();
        b.cert_type(kind).unwrap();
        if principals.is_empty() {
            b.all_principals_valid().unwrap();
        }
        for p in principals {
            b.valid_principal(*p).unwrap();
        }
        b.key_id("test").unwrap();
        b.sign(ca).unwrap()
    }

    fn public(k: &PrivateKey) -> PublicKey {
        k.public_key().clone()
    }

    #[test]
    fn host_certificates_need_every_check_to_pass() {
        let (ca, other_ca, host) = (key(), key(), key());
        let window = (NOW - 60, NOW + 60);
        let authorities = vec![(3, public(&ca))];
        let check = |c: &Certificate, revoked: &[PublicKey]| {
            check_host_certificate(c, "db.example", &authorities, revoked, NOW)
        };
        let good = cert(&ca, &host, CertType::Host, &["db.example"], window);
        assert_eq!(check(&good, &[]), Ok(3));
        let upper = cert(&ca, &host, CertType::Host, &["DB.example"], window);
        assert_eq!(check(&upper, &[]), Ok(3), "host names compare in any case");

        let untrusted = |c: &Certificate| match check(c, &[]) {
            Err(HostCertProblem::Untrusted(why)) => why,
            other => panic!("{other:?}"),
        };
        let foreign = cert(&other_ca, &host, CertType::Host, &["db.example"], window);
        assert!(untrusted(&foreign).contains("is not a @cert-authority for this host"));
        let user = cert(&ca, &host, CertType::User, &["db.example"], window);
        assert_eq!(
            untrusted(&user),
            "it is a user certificate, not a host certificate"
        );
        let expired = cert(&ca, &host, CertType::Host, &["db.example"], (NOW - 60, NOW));
        assert_eq!(untrusted(&expired), "it expired at 2027-01-15T08:00:00Z");
        let early = cert(
            &ca,
            &host,
            CertType::Host,
            &["db.example"],
            (NOW + 1, NOW + 60),
        );
        assert_eq!(
            untrusted(&early),
            "it is not valid before 2027-01-15T08:00:01Z"
        );
        let elsewhere = cert(&ca, &host, CertType::Host, &["web.example", "x"], window);
        assert_eq!(
            untrusted(&elsewhere),
            "its principals [web.example, x] do not include the host name \"db.example\""
        );
        let anyone = cert(&ca, &host, CertType::Host, &[], window);
        assert!(untrusted(&anyone).contains("names no principals"));

        assert_eq!(
            check(&good, &[public(&ca)]),
            Err(HostCertProblem::Revoked {
                what: "certificate authority",
                fingerprint: public(&ca).fingerprint(HashAlg::Sha256).to_string()
            })
        );
        assert!(matches!(
            check(&good, &[public(&host)]),
            Err(HostCertProblem::Revoked {
                what: "host key",
                ..
            })
        ));
    }

    #[test]
    fn a_tampered_certificate_does_not_verify() {
        let (ca, host) = (key(), key());
        let good = cert(
            &ca,
            &host,
            CertType::Host,
            &["db.example"],
            (NOW - 60, NOW + 60),
        );
        // Re-encode with another principal but the original signature.
        let text = good.to_openssh().unwrap();
        let mut bytes = base64_decode(text.split_whitespace().nth(1).unwrap());
        let at = bytes.windows(10).position(|w| w == b"db.example").unwrap();
        bytes[at] = b'x';
        let forged = Certificate::from_bytes(&bytes).unwrap();
        match check_host_certificate(&forged, "xb.example", &[(1, public(&ca))], &[], NOW) {
            Err(HostCertProblem::Untrusted(why)) => {
                assert_eq!(why, "its signature does not verify")
            }
            other => panic!("{other:?}"),
        }
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    #[test]
    fn user_certificates_are_checked_before_they_are_offered() {
        let (ca, me) = (key(), key());
        let window = (NOW - 60, NOW + 60);
        let ok = cert(&ca, &me, CertType::User, &["tunnel", "ops"], window);
        assert_eq!(user_certificate_problem(&ok, "tunnel", NOW), None);
        let any = cert(&ca, &me, CertType::User, &[], window);
        assert_eq!(user_certificate_problem(&any, "tunnel", NOW), None);
        assert_eq!(
            user_certificate_problem(&ok, "root", NOW).unwrap(),
            "its principals [tunnel, ops] do not include the user \"root\""
        );
        let expired = cert(&ca, &me, CertType::User, &["tunnel"], (NOW - 60, NOW - 1));
        assert_eq!(
            user_certificate_problem(&expired, "tunnel", NOW).unwrap(),
            "it expired at 2027-01-15T07:59:59Z"
        );
        let host = cert(&ca, &me, CertType::Host, &["tunnel"], window);
        assert!(
            user_certificate_problem(&host, "tunnel", NOW)
                .unwrap()
                .contains("host certificate")
        );
        assert_eq!(describe(&ok), "key id \"test\", principals [tunnel, ops]");
    }
}
