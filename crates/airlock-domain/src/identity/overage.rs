//! Entra ID's groups overage: a token whose groups did not fit in it is
//! logged, once per subject, so that an operator learns why group grants do
//! not select its caller ([`Principal::groups_overage`]).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use super::Principal;

/// How many subjects are remembered as warned about; past it the memory
/// starts over (a subject may then be warned about again).
const MAX_REMEMBERED: usize = 10_000;

/// The subjects already warned about, per issuer.
#[derive(Debug, Default)]
pub(crate) struct OverageWarnings {
    warned: Mutex<HashSet<(String, String)>>,
}

impl OverageWarnings {
    /// Logs a warning when `principal`'s token carries the overage marker
    /// and its subject was not warned about yet; whether it logged. Only
    /// the issuer and subject are logged, never the token or its claims.
    pub(crate) fn warn_once(&self, principal: &Principal) -> bool {
        if !principal.groups_overage() {
            return false;
        }
        let key = (principal.issuer.clone(), principal.subject.clone());
        {
            let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
            if warned.contains(&key) {
                return false;
            }
            if warned.len() >= MAX_REMEMBERED {
                warned.clear();
            }
            warned.insert(key);
        }
        tracing::warn!(
            issuer = %principal.issuer,
            subject = %principal.subject,
            reason = "groups_overage",
            "the token's groups did not fit in it (groups overage: `_claim_names`/`hasgroups` instead of `groups`); group grants cannot select this caller: grant by app role or subject instead"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{IssuerConfig, Preset, principal_from_unverified_claims};
    use super::*;

    fn entra(claims: serde_json::Value) -> Principal {
        let mut config = IssuerConfig::new("https://login.example/t/v2.0", &["api://airlock"]);
        config.preset = Preset::Entra;
        let mut all = json!({"iss": "https://login.example/t/v2.0"});
        for (key, value) in claims.as_object().expect("object") {
            all[key] = value.clone();
        }
        principal_from_unverified_claims(&[config], all).expect("maps")
    }

    #[test]
    fn overage_markers_are_recognised() {
        let sources = json!({"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/u/getMemberObjects"}});
        let claim_names = entra(
            json!({"oid": "u", "_claim_names": {"groups": "src1"}, "_claim_sources": sources}),
        );
        assert!(claim_names.groups_overage());
        assert!(claim_names.groups.is_empty());
        assert!(entra(json!({"oid": "u", "hasgroups": true})).groups_overage());
        for not_overage in [
            json!({"oid": "u", "groups": ["g1"]}),
            json!({"oid": "u", "hasgroups": false}),
            json!({"oid": "u", "hasgroups": "true"}),
            json!({"oid": "u", "_claim_names": {"roles": "src1"}}),
            json!({"oid": "u", "_claim_names": "groups"}),
        ] {
            assert!(
                !entra(not_overage.clone()).groups_overage(),
                "{not_overage}"
            );
        }
    }

    #[test]
    fn a_subject_is_warned_about_once() {
        let warnings = OverageWarnings::default();
        let overage = entra(json!({"oid": "u1", "hasgroups": true}));
        assert!(warnings.warn_once(&overage));
        assert!(!warnings.warn_once(&overage), "once per subject");
        assert!(warnings.warn_once(&entra(json!({"oid": "u2", "hasgroups": true}))));
        assert!(
            !warnings.warn_once(&entra(json!({"oid": "u3", "groups": ["g"]}))),
            "no marker, no warning"
        );
    }
}
