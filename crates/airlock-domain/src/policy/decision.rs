//! Decisions: allowed or not, and the [`Reason`] why.

use std::fmt;

use serde::Serialize;

/// Why a decision went the way it did; printed as a short code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Allowed by this grant: `grant:INDEX:ROLE`.
    Grant {
        /// The grant's index in `[[grants]]`.
        index: usize,
        /// Its role.
        role: String,
    },
    /// No grant selects the principal: `no_matching_grant`.
    NoMatchingGrant,
    /// Grants select the principal, none carries the permission:
    /// `permission_not_granted`.
    PermissionNotGranted,
    /// A grant carries the permission, but not for this resource:
    /// `out_of_scope`.
    OutOfScope,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Grant { index, role } => write!(f, "grant:{index}:{role}"),
            Self::NoMatchingGrant => f.write_str("no_matching_grant"),
            Self::PermissionNotGranted => f.write_str("permission_not_granted"),
            Self::OutOfScope => f.write_str("out_of_scope"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The answer to "may this principal do this here?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Allowed or not.
    pub allowed: bool,
    /// Why, for the audit trail.
    pub reason: Reason,
    /// The grant that allowed it.
    pub grant_index: Option<usize>,
}
