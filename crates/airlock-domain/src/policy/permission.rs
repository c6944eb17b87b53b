//! Permissions: the [`Permission`]s a role can carry, by name, and sets of
//! them ([`PermissionSet`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One thing a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Permission {
    /// List and read connections.
    ConnectionsRead,
    /// List and read jobs, follow their events.
    JobsRead,
    /// Start a sync.
    JobsSync,
    /// Cancel a running job.
    JobsCancel,
    /// Retry a failed job.
    JobsRetry,
    /// Reset or clear a connection's data (destructive).
    JobsReset,
    /// Read the audit trail.
    AuditRead,
    /// Change Airbyte configuration through the compatible front.
    AirbyteWrite,
    /// Approve or deny another caller's request for an action that waits
    /// for approval (`[approvals] require`).
    ApprovalsDecide,
    /// Break glass: carry out an action that waits for approval without
    /// waiting (with a reason, audited as such). No built-in role holds it.
    ApprovalsBypass,
}

impl Permission {
    /// Every permission, in display order.
    pub const ALL: [Permission; 10] = [
        Self::ConnectionsRead,
        Self::JobsRead,
        Self::JobsSync,
        Self::JobsCancel,
        Self::JobsRetry,
        Self::JobsReset,
        Self::AuditRead,
        Self::AirbyteWrite,
        Self::ApprovalsDecide,
        Self::ApprovalsBypass,
    ];

    /// The name used in configuration and responses (`jobs:sync`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionsRead => "connections:read",
            Self::JobsRead => "jobs:read",
            Self::JobsSync => "jobs:sync",
            Self::JobsCancel => "jobs:cancel",
            Self::JobsRetry => "jobs:retry",
            Self::JobsReset => "jobs:reset",
            Self::AuditRead => "audit:read",
            Self::AirbyteWrite => "airbyte:write",
            Self::ApprovalsDecide => "approvals:decide",
            Self::ApprovalsBypass => "approvals:bypass",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no permission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission `{0}` (known: connections:read, jobs:read, jobs:sync, jobs:cancel, jobs:retry, jobs:reset, audit:read, airbyte:write, approvals:decide, approvals:bypass)"
)]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

impl TryFrom<String> for Permission {
    type Error = UnknownPermission;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Permission> for String {
    fn from(value: Permission) -> Self {
        value.as_str().to_owned()
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u16);

impl PermissionSet {
    /// No permission.
    pub const EMPTY: Self = Self(0);

    /// The set of `permissions`.
    pub fn of(permissions: &[Permission]) -> Self {
        Self(permissions.iter().fold(0, |bits, p| bits | p.bit()))
    }

    /// Every permission.
    pub fn all() -> Self {
        Self::of(&Permission::ALL)
    }

    /// Whether `permission` is in the set.
    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// Both sets together.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions, in display order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn permissions_round_trip_through_strings() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
            assert_eq!(
                serde_json::to_value(p).expect("serializes"),
                json!(p.as_str())
            );
        }
        assert!("jobs:delete".parse::<Permission>().is_err());
        assert!("JOBS:READ".parse::<Permission>().is_err());
        assert_eq!(PermissionSet::all().iter().count(), 10);
    }
}
