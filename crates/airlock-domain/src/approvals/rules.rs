//! The four-eyes rules, as pure functions from a request and what happens
//! to it to the request as it then stands (or why not).
//!
//! - The requester never decides their own request (same issuer and
//!   subject), whatever their roles, admins too, through any door.
//! - The `mcp` door decides nothing, neither approve nor deny: an agent is
//!   never one of the four eyes, and an agent that could deny could be
//!   steered (prompt injection) into refusing every request. It may request
//!   and use a grant. The `airbyte` channel is Airbyte itself and decides
//!   nothing either.
//! - Only a pending request that has not expired can be decided; a deny
//!   needs a non-empty reason; one person's approval counts once.
//! - Approvals from `min_approvals` different people make the request a
//!   grant, usable once by the requester for the same action within the
//!   grant's time.

use super::{Action, Approval, ApprovalState, Decision, Party, Verdict};
use crate::jobs::Channel;

/// Why a decision, or a use of a grant, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the requester cannot decide their own request")]
    OwnRequest,
    #[error("approvals cannot be decided through the {} channel", .0.as_str())]
    Channel(Channel),
    #[error("the request is {0}, no longer pending")]
    NotPending(ApprovalState),
    #[error("the request or its approval has expired")]
    Expired,
    #[error("a denial needs a reason")]
    ReasonRequired,
    #[error("this person has already approved the request")]
    AlreadyApproved,
    #[error("the request is {0}, not approved")]
    NotApproved(ApprovalState),
    #[error("the approval was granted to another caller")]
    NotRequester,
    #[error("the approval is for another action")]
    OtherAction,
}

/// Whether decisions may come through `channel`.
pub fn channel_may_decide(channel: Channel) -> bool {
    !matches!(channel, Channel::Mcp | Channel::Airbyte)
}

/// The request once `decision` is taken on it; a grant, with its end
/// `grant_ttl_ms` after the deciding approval, when it is the last approval
/// needed.
pub fn decide(
    approval: &Approval,
    mut decision: Decision,
    grant_ttl_ms: i64,
) -> Result<Approval, Refusal> {
    if approval.state != ApprovalState::Pending {
        return Err(Refusal::NotPending(approval.state));
    }
    if decision.at >= approval.expires_at {
        return Err(Refusal::Expired);
    }
    if !channel_may_decide(decision.channel) {
        return Err(Refusal::Channel(decision.channel));
    }
    if decision.decider.same_as(&approval.requester) {
        return Err(Refusal::OwnRequest);
    }
    decision.reason = decision
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let mut next = approval.clone();
    match decision.verdict {
        Verdict::Deny => {
            if decision.reason.is_none() {
                return Err(Refusal::ReasonRequired);
            }
            next.state = ApprovalState::Denied;
        }
        Verdict::Approve => {
            let again = approval
                .decisions
                .iter()
                .any(|d| d.verdict == Verdict::Approve && d.decider.same_as(&decision.decider));
            if again {
                return Err(Refusal::AlreadyApproved);
            }
        }
    }
    let at = decision.at;
    next.decisions.push(decision);
    let needed = usize::try_from(approval.min_approvals.max(1)).unwrap_or(usize::MAX);
    if next.state == ApprovalState::Pending && next.approvals() >= needed {
        next.state = ApprovalState::Approved;
        next.approved_at = Some(at);
        next.grant_expires_at = Some(at.saturating_add(grant_ttl_ms));
    }
    next.version += 1;
    Ok(next)
}

/// The request expired at `now` (unix ms), if it is due: pending past its
/// `expires_at`, or approved and unused past its grant's end.
pub fn expire(approval: &Approval, now: i64) -> Option<Approval> {
    let due = match approval.state {
        ApprovalState::Pending => now >= approval.expires_at,
        ApprovalState::Approved => approval.grant_expires_at.is_none_or(|end| now >= end),
        ApprovalState::Denied
        | ApprovalState::Expired
        | ApprovalState::Used
        | ApprovalState::Withdrawn => false,
    };
    due.then(|| {
        let mut next = approval.clone();
        next.state = ApprovalState::Expired;
        next.version += 1;
        next
    })
}

/// The grant once `who` uses it for `action` at `now`: only the requester,
/// only for the approved action, only once, only in time.
pub fn use_grant(
    approval: &Approval,
    who: &Party,
    action: &Action,
    now: i64,
) -> Result<Approval, Refusal> {
    if approval.state != ApprovalState::Approved {
        return Err(Refusal::NotApproved(approval.state));
    }
    if approval.grant_expires_at.is_none_or(|end| now >= end) {
        return Err(Refusal::Expired);
    }
    if !who.same_as(&approval.requester) {
        return Err(Refusal::NotRequester);
    }
    if *action != approval.action {
        return Err(Refusal::OtherAction);
    }
    let mut next = approval.clone();
    next.state = ApprovalState::Used;
    next.used_at = Some(now);
    next.version += 1;
    Ok(next)
}

/// The request once the job waiting for it is cancelled: only a pending
/// request is withdrawn (a decided one stands as it was decided).
pub fn withdraw(approval: &Approval) -> Result<Approval, Refusal> {
    if approval.state != ApprovalState::Pending {
        return Err(Refusal::NotPending(approval.state));
    }
    let mut next = approval.clone();
    next.state = ApprovalState::Withdrawn;
    next.version += 1;
    Ok(next)
}
