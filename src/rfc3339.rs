//! Timestamps as RFC 3339 text: probe bodies, audit lines, certificate validity in host-key errors.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `t` as RFC 3339; `None` for a time the format cannot express (a year beyond 9999).
pub fn format(t: OffsetDateTime) -> Option<String> {
    t.format(&Rfc3339).ok()
}

/// Now (UTC), as RFC 3339.
pub fn now() -> String {
    format(OffsetDateTime::now_utc()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_with_a_z() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(super::format(t).unwrap(), "2023-11-14T22:13:20Z");
    }
}
