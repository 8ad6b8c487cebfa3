//! `[targets.<name>]`: each named target's sections, layered as the top-level ones are — `ssh`, `tunnel` and
//! `mongo` over the compiled-in defaults only (a target never inherits another's bastion or database), `mcp` over
//! the top-level `[mcp]` (a target overrides the guards it needs to) — then type-checked like the top level, with
//! errors naming `targets.<name>.<section>.<key>`.

use std::collections::BTreeMap;

use config::{File, FileFormat, Map, Value};

use super::raw::{Raw, RawTarget};
use super::{ConfigError, DEFAULT_TARGET, DEFAULT_TOML, from_config_error, typed};

/// The longest target name: it is a metrics label value and a tool argument.
const MAX_NAME: usize = 32;

/// Each named target as (name, required, its sections as typed), by name.
pub(super) fn layered(
    targets: BTreeMap<String, RawTarget>,
    merged: &config::Config,
) -> Result<Vec<(String, bool, Raw)>, ConfigError> {
    let top_mcp = merged.get_table("mcp").unwrap_or_default();
    targets
        .into_iter()
        .map(|(name, target)| {
            check_name(&name)?;
            let raw = sections(&name, &target, &top_mcp)?;
            Ok((name, target.required, raw))
        })
        .collect()
}

/// A name users type in `connectionId` and dashboards show: 1–32 letters, digits, `-`, `_`; not `default`.
fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(ConfigError::invalid(
            format!("targets.{name}"),
            format!("a target's name is 1 to {MAX_NAME} letters, digits, '-' or '_'"),
        ));
    }
    if name == DEFAULT_TARGET {
        return Err(ConfigError::invalid(
            "targets.default",
            "`default` is the target of the top-level [ssh]/[tunnel]/[mongo] sections: set those, or pick \
             another name",
        ));
    }
    Ok(())
}

/// One target's sections over the defaults, type-checked.
fn sections(
    name: &str,
    target: &RawTarget,
    top_mcp: &Map<String, Value>,
) -> Result<Raw, ConfigError> {
    let prefix = format!("targets.{name}.");
    let mut builder =
        config::Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
    let mut set = |key: String, value: Value| {
        builder = std::mem::take(&mut builder)
            .set_override(key, value)
            .map_err(from_config_error)?;
        Ok::<_, ConfigError>(())
    };
    for (key, value) in top_mcp {
        set(format!("mcp.{key}"), value.clone())?;
    }
    for (section, table) in [
        ("ssh", &target.ssh),
        ("tunnel", &target.tunnel),
        ("mongo", &target.mongo),
        ("mcp", &target.mcp),
    ] {
        for (key, value) in table.iter().flatten() {
            set(format!("{section}.{key}"), value.clone())?;
        }
    }
    let built = builder.build().map_err(|e| {
        ConfigError::invalid(format!("targets.{name}"), from_config_error(e).to_string())
    })?;
    typed(built, &prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_are_short_plain_and_not_default() {
        for good in ["prod", "eu-west_1", "a", &"x".repeat(32)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "bad name", "prod.eu", &"x".repeat(33), "ünï"] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("targets.{bad}")), "{e}");
        }
        let e = check_name("default").unwrap_err().to_string();
        assert!(e.contains("top-level"), "{e}");
    }
}

#[cfg(test)]
mod layering_tests {
    use super::super::load;
    use super::super::testing::sources;

    const TWO: &str = r#"
        [mcp]
        read_only = false
        max_documents = 70
        [targets.prod.ssh]
        host = "prod-bastion"
        user = "deploy"
        agent = true
        [targets.prod.mongo]
        uri = "mongodb://prod-db:27017"
        [targets.prod.mcp]
        read_only = true
        [targets.staging]
        required = false
        [targets.staging.ssh]
        host = "staging-bastion"
        user = "deploy"
        agent = true
        port = 2222
        [targets.staging.mongo]
        uri = "mongodb://staging-db:27017"
    "#;

    #[test]
    fn named_targets_layer_over_the_defaults_and_mcp_over_the_top_level() {
        let (_d, s) = sources(
            TWO,
            &[(
                "NEXUS_TARGETS__STAGING__MCP__DENIED_DATABASES",
                "hr,billing",
            )],
        );
        let c = load(&s).unwrap();
        assert!(c.named);
        let names: Vec<&str> = c.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["prod", "staging"],
            "no default without top-level [mongo]"
        );
        let (prod, staging) = (&c.targets[0], &c.targets[1]);
        assert!(prod.required && !staging.required);
        assert!(prod.mcp.read_only && !staging.mcp.read_only);
        assert_eq!(prod.mcp.max_documents, 70, "[mcp] is inherited");
        assert_eq!(staging.mcp.denied_databases, ["hr", "billing"]);
        let (p, st) = (
            prod.tunnel.as_ref().unwrap(),
            staging.tunnel.as_ref().unwrap(),
        );
        assert_eq!(
            p.bastion.to_string(),
            "deploy@prod-bastion:22",
            "defaults apply"
        );
        assert_eq!(st.bastion.port, 2222);
        assert_eq!(p.keepalive_interval, st.keepalive_interval);
    }

    #[test]
    fn top_level_sections_are_the_default_target_beside_named_ones() {
        let toml = format!("{}\n{TWO}", super::super::testing::MINIMAL);
        let (_d, s) = sources(&toml, &[]);
        let c = load(&s).unwrap();
        let names: Vec<&str> = c.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["default", "prod", "staging"]);
    }

    #[test]
    fn two_targets_cannot_share_a_fixed_forward_port() {
        let toml = TWO
            .replace(
                "[targets.prod.mcp]",
                "[targets.prod.tunnel]\nlocal_listen = \"127.0.0.1:27099\"\n[targets.prod.mcp]",
            )
            .replace(
                "[targets.staging.mongo]",
                "[targets.staging.tunnel]\nlocal_listen = \"127.0.0.1:27099\"\n[targets.staging.mongo]",
            );
        let (_d, s) = sources(&toml, &[]);
        let e = load(&s).unwrap_err().to_string();
        assert!(e.contains("targets.staging.tunnel.local_listen"), "{e}");
        assert!(e.contains("targets.prod.tunnel.local_listen"), "{e}");
    }

    #[test]
    fn a_target_error_names_its_key() {
        let bad = TWO.replace("port = 2222", "port = \"often\"");
        let (_d, s) = sources(&bad, &[]);
        let e = load(&s).unwrap_err().to_string();
        assert!(e.contains("targets.staging.ssh.port"), "{e}");
        let typo = TWO.replace("required = false", "requird = false");
        let (_d, s) = sources(&typo, &[]);
        let e = load(&s).unwrap_err().to_string();
        assert!(
            e.contains("targets.staging") && e.contains("requird"),
            "{e}"
        );
    }
}
