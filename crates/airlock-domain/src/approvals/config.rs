//! `[approvals]`: which permissions' actions wait for a second person, and
//! how long requests and grants live.

use serde::{Deserialize, Serialize};

use crate::policy::Permission;
use crate::settings::{InvalidKey, at_least_one_sec};

/// The permissions whose actions can wait for approval today: only a reset
/// (it throws a destination's data away). Others are refused at load, so a
/// setting never silently does nothing.
pub const APPROVABLE: [Permission; 1] = [Permission::JobsReset];

/// Four-eyes approvals: off (nothing waits) unless `require` names a
/// permission.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// The permissions whose actions wait until another person approves.
    pub require: Vec<Permission>,
    /// How long a request waits for its decision before it expires.
    pub request_ttl_secs: u64,
    /// How long an approval stays usable (once) after it is granted.
    pub grant_ttl_secs: u64,
    /// How many different people must approve.
    pub min_approvals: u32,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            require: Vec::new(),
            request_ttl_secs: 86_400,
            grant_ttl_secs: 3_600,
            min_approvals: 1,
        }
    }
}

impl ApprovalsConfig {
    /// Whether an action needing `permission` waits for approval.
    pub fn requires(&self, permission: Permission) -> bool {
        self.require.contains(&permission)
    }

    /// `request_ttl_secs` in milliseconds, the unit stored times use.
    pub fn request_ttl_ms(&self) -> i64 {
        secs_to_ms(self.request_ttl_secs)
    }

    /// `grant_ttl_secs` in milliseconds.
    pub fn grant_ttl_ms(&self) -> i64 {
        secs_to_ms(self.grant_ttl_secs)
    }

    /// Checks the values make sense; errors name the key.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        for (i, permission) in self.require.iter().enumerate() {
            if !APPROVABLE.contains(permission) {
                let known: Vec<&str> = APPROVABLE.iter().map(|p| p.as_str()).collect();
                return Err(InvalidKey::new(
                    format!("approvals.require[{i}]"),
                    format!(
                        "`{permission}` cannot wait for approval; only {} can",
                        known.join(", ")
                    ),
                ));
            }
        }
        at_least_one_sec("approvals.request_ttl_secs", self.request_ttl_secs)?;
        at_least_one_sec("approvals.grant_ttl_secs", self.grant_ttl_secs)?;
        if self.min_approvals == 0 {
            return Err(InvalidKey::new(
                "approvals.min_approvals",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1_000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ApprovalsConfig, String> {
        let config: ApprovalsConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn nothing_waits_by_default() {
        let config = parse("").expect("defaults");
        assert_eq!(config, ApprovalsConfig::default());
        assert!(Permission::ALL.iter().all(|p| !config.requires(*p)));
        assert_eq!(config.request_ttl_ms(), 86_400_000);
        assert_eq!(config.grant_ttl_ms(), 3_600_000);
        assert_eq!(config.min_approvals, 1);
    }

    #[test]
    fn resets_can_wait_and_other_permissions_are_named_as_refused() {
        let config = parse("require = [\"jobs:reset\"]\nmin_approvals = 2").expect("valid");
        assert!(config.requires(Permission::JobsReset));
        assert!(!config.requires(Permission::JobsSync));
        assert_eq!(
            parse("require = [\"jobs:reset\", \"jobs:sync\"]").unwrap_err(),
            "approvals.require[1]: `jobs:sync` cannot wait for approval; only jobs:reset can"
        );
        let unknown = parse("require = [\"jobs:delete\"]").unwrap_err();
        assert!(
            unknown.contains("unknown permission `jobs:delete`"),
            "{unknown}"
        );
        assert_eq!(
            parse("min_approvals = 0").unwrap_err(),
            "approvals.min_approvals: must be at least 1"
        );
        assert_eq!(
            parse("grant_ttl_secs = 0").unwrap_err(),
            "approvals.grant_ttl_secs: must be at least 1"
        );
        assert!(parse("request_ttl_secs = 0").is_err());
        assert!(parse("requires = []").is_err(), "unknown keys are refused");
    }
}
