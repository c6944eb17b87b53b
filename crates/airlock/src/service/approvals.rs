//! Four-eyes approvals as a caller acts on them: the gate a trigger of a
//! destructive action passes (wait, use a grant, or break glass), asking
//! for a pre-approval, listing, reading, approving and denying. The rules
//! are the domain's (`airlock_domain::approvals::rules`); the store applies
//! them under a compare-and-set; the guard decides who may see and decide
//! what, within their scopes, like every other permission.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::ServiceError;
use super::connections::resolve;
use crate::web::auth::action_of;
use crate::web::{AppState, Caller};
use airlock_domain::approvals::rules::Refusal;
use airlock_domain::approvals::{
    Action, Approval, ApprovalId, ApprovalState, Decision, NewApproval, Party, Verdict,
};
use airlock_domain::identity::Principal;
use airlock_domain::jobs::{Channel, JobType};
use airlock_domain::policy::{self, ConnectionResource, Permission, Policy, Resource};
use airlock_services::connections::{ConnectionInfo, Snapshot};
use airlock_store::approvals::{ApprovalFilter, Change};

/// How often the expiry loop looks for requests past their time.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(5);

/// The longest reason kept with a request or a decision.
pub const MAX_REASON: usize = 1_000;

/// What [`reason`] holds a reason to ([`MAX_REASON`] characters).
pub const REASON_RULE: &str =
    "must be at most 1000 characters, without control characters but line breaks";

/// The channel a caller came through, as jobs and approvals keep it.
pub fn channel_of(caller: &Caller) -> Channel {
    caller.channel.parse().unwrap_or(Channel::Api)
}

/// A reason as given: trimmed, `None` when empty, refused when too long or
/// when it holds control characters other than line breaks.
pub fn reason(text: Option<&str>) -> Result<Option<String>, ServiceError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_REASON || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ServiceError::Invalid(format!("reason: {REASON_RULE}")));
    }
    Ok(Some(text.to_owned()))
}

/// The policy's view of a request's connection (from the catalog when it
/// still knows the connection).
pub fn resource_in(snapshot: &Snapshot, approval: &Approval) -> Resource {
    match snapshot.resolve(&approval.action.connection_id) {
        Some(connection) => connection.resource(),
        None => Resource::Connection(ConnectionResource {
            id: approval.action.connection_id.clone(),
            slug: String::new(),
            workspace_id: String::new(),
            workspace_names: Vec::new(),
            tags: Vec::new(),
        }),
    }
}

/// Whether `caller` may see `approval`: they asked for it, or they may
/// decide on its connection.
fn visible(state: &AppState, caller: &Caller, approval: &Approval, resource: &Resource) -> bool {
    visible_to(&state.policy(), &caller.principal, approval, resource)
}

/// Whether `principal` may see `approval` under `policy` (the rule of
/// [`get`] and [`list`], for readers without a request in hand, such as the
/// event stream): they asked for it, or they may decide on its connection
/// (`resource`, from [`resource_in`]).
pub fn visible_to(
    policy: &Policy,
    principal: &Principal,
    approval: &Approval,
    resource: &Resource,
) -> bool {
    Party::of(principal).same_as(&approval.requester)
        || policy.allows(principal, Permission::ApprovalsDecide, resource)
}

/// What a trigger of `action` must pass before its job is stored: nothing
/// (the action does not wait), a grant approved earlier, or a new request.
#[derive(Debug)]
pub enum Gate {
    /// Queue it at once.
    Open,
    /// Queue it, using this grant.
    Grant(Approval),
    /// Store it `awaiting_approval`, with this new request.
    Await(Approval),
}

/// A new request by `caller` for `action`, made now.
pub(super) fn new_request(
    state: &AppState,
    caller: &Caller,
    action: Action,
    reason: Option<String>,
) -> Approval {
    let new = NewApproval {
        action,
        requester: Party::of(&caller.principal),
        channel: channel_of(caller),
        reason,
        job_id: None,
    };
    Approval::request(new, state.approvals_config(), state.now_ms())
}

/// The caller's open request for `action` (a grant first, else a pending
/// one), if any.
async fn open_request(
    state: &AppState,
    caller: &Caller,
    action: &Action,
) -> Result<Option<Approval>, ServiceError> {
    let requester = Party::of(&caller.principal);
    Ok(state
        .store()
        .open_approval_for(&requester, action, state.now_ms())
        .await?)
}

/// The gate of a trigger of `job_type` on connection `connection_id` by
/// `caller`, who may do it (checked before). `reason` goes with a new
/// request.
pub async fn gate(
    state: &AppState,
    caller: &Caller,
    connection_id: &str,
    job_type: JobType,
    reason: Option<String>,
) -> Result<Gate, ServiceError> {
    let permission = super::jobs::permission_for(job_type);
    if !state.approvals_config().requires(permission) {
        return Ok(Gate::Open);
    }
    let action = Action {
        permission,
        connection_id: connection_id.to_owned(),
        job_type,
    };
    if let Some(open) = open_request(state, caller, &action).await?
        && open.state == ApprovalState::Approved
    {
        return Ok(Gate::Grant(open));
    }
    Ok(Gate::Await(new_request(state, caller, action, reason)))
}

/// Break glass: with `bypass_reason`, `caller` skips the wait for an action
/// needing `permission` on `connection` that would wait for approval, which needs
/// `approvals:bypass` there and a reason. The reason, when it applies.
pub async fn break_glass(
    state: &AppState,
    caller: &Caller,
    connection: &ConnectionInfo,
    permission: Permission,
    bypass_reason: Option<String>,
) -> Result<Option<String>, ServiceError> {
    let Some(reason) = bypass_reason else {
        return Ok(None);
    };
    if !state.approvals_config().requires(permission) {
        // Nothing waits: there is no glass to break.
        return Ok(None);
    }
    caller
        .authorize(state, Permission::ApprovalsBypass, &connection.resource())
        .await?;
    Ok(Some(reason))
}

/// The audit record of a job queued by breaking glass (`approvals.bypass`,
/// naming the job and the reason), and a warning in the log.
pub async fn record_bypass(
    state: &AppState,
    caller: &Caller,
    decision: &airlock_domain::policy::Decision,
    job: &airlock_domain::jobs::Job,
    reason: &str,
) {
    let mut record = caller.entry("approvals.bypass", decision);
    record.job_id = Some(job.id.to_string());
    record.connection_id = Some(job.connection_id.clone());
    record.workspace_id = Some(job.workspace_id.clone());
    record.outcome = Some(job.state.as_str().to_owned());
    record.detail = Some(json!({ "bypass_reason": reason }));
    state.audit(&record).await;
    tracing::warn!(
        request_id = %caller.request_id.0,
        subject = %caller.principal.subject,
        job_id = %job.id,
        "approval bypassed (break glass)"
    );
}

/// A request made ahead of the action (a pre-approval): once approved, the
/// requester's next matching trigger, through any door, uses it. The
/// requester's open request for the same action is returned instead of a
/// second one (`false`: not new).
pub async fn request(
    state: &AppState,
    caller: &Caller,
    reference: &str,
    job_type: JobType,
    reason: Option<String>,
) -> Result<(Approval, bool), ServiceError> {
    let permission = super::jobs::permission_for(job_type);
    caller.require_somewhere(state, permission).await?;
    let connection = resolve(state, reference).await?;
    let decision = caller
        .authorize(state, permission, &connection.resource())
        .await?;
    if !state.approvals_config().requires(permission) {
        return Err(ServiceError::Unprocessable(format!(
            "{permission} does not wait for approval here; trigger it directly"
        )));
    }
    let action = Action {
        permission,
        connection_id: connection.id.clone(),
        job_type,
    };
    if let Some(open) = open_request(state, caller, &action).await? {
        return Ok((open, false));
    }
    let approval = new_request(state, caller, action, reason);
    let entry = caller.entry(&action_of(permission), &decision);
    state.store().create_approval(&approval, &entry).await?;
    tracing::info!(
        request_id = %caller.request_id.0,
        subject = %caller.principal.subject,
        approval_id = %approval.id,
        connection_id = %approval.action.connection_id,
        "approval requested"
    );
    Ok((approval, true))
}

/// What a refused trigger through a door that cannot wait (the front)
/// names: the requester's open request for the action, made now if there
/// is none.
pub async fn pending_for(
    state: &AppState,
    caller: &Caller,
    connection: &ConnectionInfo,
    job_type: JobType,
) -> Result<Approval, ServiceError> {
    let (approval, _) = request(state, caller, &connection.id, job_type, None).await?;
    Ok(approval)
}

/// A page of the requests `caller` made or may decide, newest first, and
/// the cursor of the next page.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    mut filter: ApprovalFilter,
) -> Result<(Vec<Approval>, Option<String>), ServiceError> {
    let snapshot = super::connections::catalog(state).await?;
    let deciders = state
        .policy()
        .can_anywhere(&caller.principal, Permission::ApprovalsDecide);
    if !deciders {
        // Only their own: narrow it in the database.
        filter.requester = Some((
            caller.principal.issuer.clone(),
            caller.principal.subject.clone(),
        ));
    }
    let found = state.store().list_approvals(&filter).await?;
    let next_cursor = (i64::try_from(found.len()).unwrap_or(0) == filter.limit)
        .then(|| found.last().map(|a| a.id.to_string()))
        .flatten();
    let shown = found
        .into_iter()
        .filter(|a| visible(state, caller, a, &resource_in(&snapshot, a)))
        .collect();
    caller
        .read(state, "approvals.list", &Resource::Global)
        .await;
    Ok((shown, next_cursor))
}

/// One request `caller` made or may decide; any other is "not found".
pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Approval, Arc<Snapshot>), ServiceError> {
    let id: ApprovalId = id.parse().map_err(|_| ServiceError::NotFound("approval"))?;
    let approval = state
        .store()
        .get_approval(&id)
        .await?
        .ok_or(ServiceError::NotFound("approval"))?;
    let snapshot = super::connections::catalog(state).await?;
    let resource = resource_in(&snapshot, &approval);
    if !visible(state, caller, &approval, &resource) {
        return Err(ServiceError::NotFound("approval"));
    }
    caller.read(state, "approvals.get", &resource).await;
    Ok((approval, snapshot))
}

/// Approves or denies request `id` as `caller`, who needs
/// `approvals:decide` on its connection. The four-eyes rules refuse the
/// requester themselves and the `/mcp` door; a denial needs a reason. An
/// approval that releases a job wakes the dispatcher.
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    verdict: Verdict,
    reason: Option<String>,
) -> Result<Approval, ServiceError> {
    let action = match verdict {
        Verdict::Approve => "approvals.approve",
        Verdict::Deny => "approvals.deny",
    };
    let (approval, resource, policy_decision) = decidable(state, caller, id, action).await?;
    let id = approval.id.clone();
    let decision = Decision {
        decider: Party::of(&caller.principal),
        verdict,
        reason,
        channel: channel_of(caller),
        at: state.now_ms(),
    };
    let entry = caller.entry(action, &policy_decision);
    let change = state
        .store()
        .decide_approval(
            &id,
            &decision,
            state.approvals_config().grant_ttl_ms(),
            &entry,
        )
        .await?;
    let decided = match change {
        Change::Done(next) => *next,
        Change::Missing => return Err(ServiceError::NotFound("approval")),
        Change::Refused(refusal) => {
            return Err(refused(state, caller, action, &resource, refusal).await);
        }
    };
    if decided.state == ApprovalState::Used && decided.job_id.is_some() {
        state.wake_dispatcher();
    }
    tracing::info!(
        request_id = %caller.request_id.0,
        subject = %caller.principal.subject,
        approval_id = %decided.id,
        verdict = verdict.as_str(),
        state = decided.state.as_str(),
        "approval decided"
    );
    Ok(decided)
}

/// The request `id` as `caller` may decide it, with its connection's
/// resource and the guard's decision: their own is refused with why
/// (whatever their permissions: it is their own request); anyone else
/// without `approvals:decide` learns nothing, and one outside their scope
/// is "not found" (audited).
async fn decidable(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<(Approval, Resource, policy::Decision), ServiceError> {
    let found = match id.parse::<ApprovalId>() {
        Ok(id) => state.store().get_approval(&id).await?,
        Err(_) => None,
    };
    // The requester hears why, whatever their permissions (it is their
    // own request); anyone else without the permission learns nothing.
    if let Some(approval) = &found
        && Party::of(&caller.principal).same_as(&approval.requester)
    {
        let snapshot = super::connections::catalog(state).await?;
        let resource = resource_in(&snapshot, approval);
        return Err(refused(state, caller, action, &resource, Refusal::OwnRequest).await);
    }
    caller
        .require_somewhere(state, Permission::ApprovalsDecide)
        .await?;
    let approval = found.ok_or(ServiceError::NotFound("approval"))?;
    let snapshot = super::connections::catalog(state).await?;
    let resource = resource_in(&snapshot, &approval);
    // Out of scope: audited, and as if it did not exist.
    let decision = caller
        .authorize_hidden(state, Permission::ApprovalsDecide, &resource)
        .await
        .map_err(|_| ServiceError::NotFound("approval"))?;
    Ok((approval, resource, decision))
}

/// The answer to a decision the rules refused; the four-eyes refusals are
/// audited as denials.
async fn refused(
    state: &AppState,
    caller: &Caller,
    action: &str,
    resource: &Resource,
    refusal: Refusal,
) -> ServiceError {
    match refusal {
        Refusal::OwnRequest | Refusal::Channel(_) => {
            let reason = match refusal {
                Refusal::OwnRequest => "own_request",
                _ => "channel_cannot_decide",
            };
            caller.deny(state, action, resource, reason, "403").await;
            ServiceError::FourEyes(refusal.to_string())
        }
        Refusal::ReasonRequired => ServiceError::Unprocessable(format!("reason: {refusal}")),
        Refusal::NotPending(_) | Refusal::Expired | Refusal::AlreadyApproved => {
            ServiceError::Conflict(refusal.to_string())
        }
        Refusal::NotApproved(_) | Refusal::NotRequester | Refusal::OtherAction => {
            ServiceError::Conflict(refusal.to_string())
        }
    }
}

/// Expires requests past their time, every [`EXPIRE_EVERY`], until `stop`
/// (jobs waiting for them end `expired`). Every replica may run it: the
/// compare-and-set lets only one expire each request.
pub async fn run_expiry(state: AppState, stop: Arc<tokio::sync::Notify>) {
    let stopped = stop.notified();
    tokio::pin!(stopped);
    stopped.as_mut().enable();
    loop {
        match state.store().expire_approvals(state.now_ms()).await {
            Ok(expired) if !expired.is_empty() => {
                tracing::info!(count = expired.len(), "approval requests expired");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "cannot expire approval requests"),
        }
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(EXPIRE_EVERY) => {}
        }
    }
}
