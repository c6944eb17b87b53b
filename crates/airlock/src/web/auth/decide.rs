//! What the guard decides, and what it records: every decision about a
//! caller goes through these methods, so that each is counted
//! (`airlock_authorization_decisions_total`) and each refusal is logged and
//! audited the same way at every door. Nothing else takes a decision
//! (`Policy::decide`) about a caller, which the architecture test holds the
//! code to; elsewhere the policy is only asked questions ([`Caller::may`],
//! `Policy::allows`) to filter what a caller sees.

use super::{Caller, Refusal, action_of, place};
use crate::web::AppState;
use airlock_domain::audit;
use airlock_domain::policy::{Decision, Permission, Resource};

impl Caller {
    /// An audit record of this caller doing `action`.
    pub fn entry(&self, action: &str, decision: &Decision) -> audit::Entry {
        let verdict = if decision.allowed { "allow" } else { "deny" };
        self.record_of(action, verdict, Some(decision.reason.to_string()))
    }

    /// This caller's origin, identity and channel doing `action`, with the
    /// verdict and its reason: what every record of the guard starts from.
    fn record_of(&self, action: &str, verdict: &str, reason: Option<String>) -> audit::Entry {
        audit::Entry {
            origin: self.origin.clone(),
            actor: audit::Actor::of(&self.principal),
            channel: self.channel.to_owned(),
            action: action.to_owned(),
            decision: verdict.to_owned(),
            reason,
            ..audit::Entry::default()
        }
    }

    /// Decides `permission` on `resource`; a denial is logged, counted and
    /// audited, and refused (hidden, at a door that hides out-of-scope
    /// resources and for a workspace or connection).
    pub async fn authorize(
        &self,
        state: &AppState,
        permission: Permission,
        resource: &Resource,
    ) -> Result<Decision, Refusal> {
        let decision = state.policy().decide(&self.principal, permission, resource);
        state.metrics().authorization(permission, decision.allowed);
        if decision.allowed {
            return Ok(decision);
        }
        let hidden = self.door.hides_out_of_scope && *resource != Resource::Global;
        let status = if hidden { "404" } else { "403" };
        self.deny(
            state,
            &action_of(permission),
            resource,
            &decision.reason.to_string(),
            status,
        )
        .await;
        Err(Refusal::Forbidden { hidden })
    }

    /// Refused unless some grant gives `permission` somewhere: checked
    /// before looking anything up, so that callers without the permission
    /// learn nothing about what exists.
    pub async fn require_somewhere(
        &self,
        state: &AppState,
        permission: Permission,
    ) -> Result<(), Refusal> {
        if state.policy().can_anywhere(&self.principal, permission) {
            return Ok(());
        }
        state.metrics().authorization(permission, false);
        self.deny(
            state,
            &action_of(permission),
            &Resource::Global,
            "no_grant_anywhere",
            "403",
        )
        .await;
        Err(Refusal::Forbidden { hidden: false })
    }

    /// Records a successful read, when `[audit] record_reads` asks for it.
    pub async fn read(&self, state: &AppState, action: &str, resource: &Resource) {
        if !state.records_reads() {
            return;
        }
        self.record(state, action, None, resource, "200".to_owned(), None)
            .await;
    }

    /// Audits an allowed request with its outcome (the status answered, or
    /// Airbyte's); `decision` is `None` where none was taken as a whole
    /// (lists are decided item by item).
    pub async fn record(
        &self,
        state: &AppState,
        action: &str,
        decision: Option<&Decision>,
        resource: &Resource,
        outcome: String,
        detail: Option<serde_json::Value>,
    ) {
        let mut entry = self.record_of(action, "allow", decision.map(|d| d.reason.to_string()));
        entry.outcome = Some(outcome);
        entry.detail = detail;
        place(&mut entry, resource);
        state.audit(&entry).await;
    }

    /// Logs and audits a refusal of `action` answered with `status`.
    pub async fn deny(
        &self,
        state: &AppState,
        action: &str,
        resource: &Resource,
        reason: &str,
        status: &str,
    ) {
        tracing::info!(
            request_id = %self.request_id.0,
            subject = %self.principal.subject,
            action,
            reason,
            "denied"
        );
        let mut entry = self.record_of(action, "deny", Some(reason.to_owned()));
        entry.outcome = Some(status.to_owned());
        place(&mut entry, resource);
        state.audit(&entry).await;
    }

    /// [`Self::authorize`] on something found by id (a job, an approval
    /// request): a refusal is hidden at every door, so that an id outside
    /// the caller's scope cannot be told from an unknown one.
    pub async fn authorize_hidden(
        &self,
        state: &AppState,
        permission: Permission,
        resource: &Resource,
    ) -> Result<Decision, Refusal> {
        self.authorize(state, permission, resource)
            .await
            .map_err(|_| Refusal::Forbidden { hidden: true })
    }

    /// The first of `resources` on which `permission` is allowed, counted
    /// as one decision; `None` when there is none (nothing is recorded: the
    /// door decides what to ask next).
    pub fn allowed_on_any(
        &self,
        state: &AppState,
        permission: Permission,
        resources: impl IntoIterator<Item = Resource>,
    ) -> Option<Decision> {
        let policy = state.policy();
        let decision = resources
            .into_iter()
            .map(|resource| policy.decide(&self.principal, permission, &resource))
            .find(|decision| decision.allowed)?;
        state.metrics().authorization(permission, true);
        Some(decision)
    }

    /// Whether `permission` is allowed on `resource`: a question, not a
    /// decision (nothing is counted or recorded). For what a caller may
    /// see of a list or a stream, and whether a thing exists for them.
    pub fn may(&self, state: &AppState, permission: Permission, resource: &Resource) -> bool {
        state.policy().allows(&self.principal, permission, resource)
    }
}
