//! The MongoDB connection string as the user wrote it (seen from the bastion): just enough parsing to find the
//! host the tunnel must reach and to print the URI without its password. The driver parses the options itself.

use std::fmt;

use crate::secret::Secret;

/// Why a connection string cannot be used. Messages never repeat a password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("must start with mongodb:// or mongodb+srv://")]
    Scheme,
    #[error(
        "the user name or password must be percent-encoded: '/', '?', '@' and ':' in it are written %2F, %3F, %40 \
         and %3A"
    )]
    NotPercentEncoded,
    #[error("has no host")]
    NoHost,
    #[error("has an empty host")]
    EmptyHost,
    #[error("mongodb+srv:// takes exactly one host name without a port")]
    SrvHosts,
    #[error("unix socket hosts cannot be reached through an SSH forward")]
    UnixSocket,
    #[error("has an invalid IPv6 host")]
    Ipv6,
    #[error("has an unclosed `[` in a host")]
    UnclosedBracket,
    #[error("has an invalid port `{0}`")]
    Port(String),
}

/// A parsed `mongodb://` or `mongodb+srv://` URI. `Debug`, `Display` and `Serialize` show it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoUri {
    raw: Secret,
    srv: bool,
    user: Option<String>,
    has_password: bool,
    hosts: Vec<(String, u16)>,
    /// Everything after the host list (`/db?options`), with option values that may hold secrets masked.
    tail: String,
}

const DEFAULT_PORT: u16 = 27017;

impl MongoUri {
    /// Parses the URI.
    ///
    /// # Errors
    /// A sentence saying what is wrong; it never repeats the password.
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let (srv, rest) = if let Some(r) = uri.strip_prefix("mongodb+srv://") {
            (true, r)
        } else if let Some(r) = uri.strip_prefix("mongodb://") {
            (false, r)
        } else {
            return Err(UriError::Scheme);
        };
        // Credentials first: a password that is not percent-encoded may hold '/', '?' or '@', which would
        // otherwise be read as the end of the host list (and echoed in an error as a "port").
        let at = rest.rfind('@');
        let delimiter = rest.find(['/', '?']);
        let unencoded = match (at, delimiter) {
            (Some(at), Some(d)) => at > d,
            _ => false,
        };
        let (userinfo, rest) = match at {
            Some(at) if !unencoded => (Some(&rest[..at]), &rest[at + 1..]),
            _ => (None, rest),
        };
        if unencoded || userinfo.is_some_and(|u| u.contains('@') || u.matches(':').count() > 1) {
            return Err(UriError::NotPercentEncoded);
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (host_list, tail) = rest.split_at(authority_end);
        let (user, has_password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((name, _)) => (Some(name.to_string()), true),
                None => (Some(u.to_string()), false),
            },
            None => (None, false),
        };
        if host_list.is_empty() {
            return Err(UriError::NoHost);
        }
        let hosts = host_list
            .split(',')
            .map(parse_host)
            .collect::<Result<Vec<_>, _>>()?;
        if srv && (hosts.len() != 1 || host_list.contains(':')) {
            return Err(UriError::SrvHosts);
        }
        Ok(Self {
            raw: Secret::new(uri),
            srv,
            user,
            has_password,
            hosts,
            tail: mask_options(tail),
        })
    }

    /// The URI exactly as given, credentials included. Only the driver may see it.
    pub fn expose(&self) -> &str {
        self.raw.expose()
    }

    pub fn is_srv(&self) -> bool {
        self.srv
    }

    pub fn hosts(&self) -> &[(String, u16)] {
        &self.hosts
    }

    /// The first host and its port (27017 when absent).
    pub fn first_host(&self) -> (&str, u16) {
        let (h, p) = &self.hosts[0];
        (h, *p)
    }

    /// Whether the URI carries a user name (so the startup check must prove authentication works).
    pub fn has_credentials(&self) -> bool {
        self.user.is_some()
    }

    /// The value of a non-secret option (`replicaSet`, `tls`, …), matched in any case as the driver does;
    /// the last one wins. Options that may hold secrets are never returned.
    pub fn option(&self, name: &str) -> Option<&str> {
        let (_, query) = self.tail.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(k, _)| k.eq_ignore_ascii_case(name) && !is_secret_option(k))
            .map(|(_, v)| v)
            .next_back()
    }

    /// Whether the driver must reach more than one server, or servers by their own names: several hosts, a
    /// replica set, `mongodb+srv://`, or TLS (whose certificates name the members). One fixed forward to one
    /// address cannot serve that; a route that dials any member by name can.
    pub fn needs_member_routing(&self) -> bool {
        let on = |k| {
            self.option(k)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        self.srv
            || self.hosts.len() > 1
            || self.option("replicaSet").is_some()
            || on("tls")
            || on("ssl")
    }
}

fn parse_host(h: &str) -> Result<(String, u16), UriError> {
    if h.ends_with(".sock") || h.contains('%') {
        return Err(UriError::UnixSocket);
    }
    let (host, port) = if let Some(v6) = h.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(UriError::UnclosedBracket)?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(UriError::Ipv6),
        }
    } else {
        match h.rsplit_once(':') {
            Some((host, p)) => (host, Some(p)),
            None => (h, None),
        }
    };
    if host.is_empty() {
        return Err(UriError::EmptyHost);
    }
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(UriError::Port(p.to_string())),
        },
        None => DEFAULT_PORT,
    };
    Ok((host.to_string(), port))
}

/// Masks option values that can carry secrets (`authMechanismProperties`, AWS session tokens, TLS key passwords).
fn mask_options(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_option(k) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", masked.join("&"))
}

fn is_secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("token")
        || k == "authmechanismproperties"
        || k.contains("secret")
}

impl fmt::Display for MongoUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.srv {
            "mongodb+srv://"
        } else {
            "mongodb://"
        })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if self.has_password {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        for (i, (host, port)) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if host.contains(':') {
                write!(f, "[{host}]:{port}")?;
            } else {
                write!(f, "{host}:{port}")?;
            }
        }
        f.write_str(&self.tail)
    }
}

impl fmt::Debug for MongoUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MongoUri({self})")
    }
}

impl serde::Serialize for MongoUri {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password_and_secret_options() {
        let u = MongoUri::parse(
            "mongodb://app:p%40ss@db1.internal:27018/shop?authSource=admin&authMechanismProperties=AWS_SESSION_TOKEN:abc",
        )
        .unwrap();
        assert_eq!(
            u.to_string(),
            "mongodb://app:***@db1.internal:27018/shop?authSource=admin&authMechanismProperties=***"
        );
        assert_eq!(format!("{u:?}"), format!("MongoUri({u})"));
        assert!(u.has_credentials());
        assert_eq!(u.first_host(), ("db1.internal", 27018));
    }

    #[test]
    fn hosts_default_port_and_ipv6() {
        let u = MongoUri::parse("mongodb://a,b:2,[::1]:3/?replicaSet=rs").unwrap();
        assert_eq!(
            u.hosts(),
            &[("a".into(), 27017), ("b".into(), 2), ("::1".into(), 3)]
        );
        assert!(!u.has_credentials());
        assert_eq!(
            u.to_string(),
            "mongodb://a:27017,b:2,[::1]:3/?replicaSet=rs"
        );
    }

    #[test]
    fn a_password_that_is_not_percent_encoded_is_refused_without_echoing_it() {
        for uri in [
            "mongodb://app:pa55/x@mongo.internal/db",
            "mongodb://app:pa55?x@mongo.internal/db",
            "mongodb://app:pa55@x@mongo.internal/db",
            "mongodb://app:pa55:x@mongo.internal/db",
        ] {
            let e = MongoUri::parse(uri).unwrap_err().to_string();
            assert!(e.contains("percent-encoded"), "{uri}: {e}");
            assert!(!e.contains("pa55"), "{e}");
        }
        let ok = MongoUri::parse("mongodb://app:pa55%2Fx@mongo.internal:27018/db?authSource=admin")
            .unwrap();
        assert_eq!(ok.first_host(), ("mongo.internal", 27018));
    }

    #[test]
    fn member_routing_follows_the_deployment() {
        let needs = |u: &str| MongoUri::parse(u).unwrap().needs_member_routing();
        assert!(!needs("mongodb://app:pw@mongo.internal:27017/shop"));
        assert!(!needs("mongodb://h/?tls=false&directConnection=true"));
        assert!(needs("mongodb://a,b,c/shop"));
        assert!(needs("mongodb://a/?replicaSet=rs0"));
        assert!(needs("mongodb://a/?ReplicaSet=rs0"));
        assert!(needs("mongodb+srv://cluster0.example.net/"));
        assert!(needs("mongodb://a/?TLS=true"));
        assert!(needs("mongodb://a/?ssl=true"));
        let uri = MongoUri::parse(
            "mongodb://a/?tlsCertificateKeyFilePassword=s3cret&replicaSet=x&replicaSet=y",
        )
        .unwrap();
        assert_eq!(uri.option("replicaset"), Some("y"));
        assert_eq!(uri.option("tlsCertificateKeyFilePassword"), None);
    }

    #[test]
    fn rejects_what_cannot_be_forwarded_without_echoing_secrets() {
        for bad in [
            "postgres://x",
            "mongodb://",
            "mongodb://u:hunter2@h:0",
            "mongodb://u:hunter2@h:notaport",
            "mongodb://%2Ftmp%2Fmongodb-27017.sock",
            "mongodb+srv://u:hunter2@c.example:27017",
        ] {
            let e = MongoUri::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{bad}: {e}");
        }
    }
}
