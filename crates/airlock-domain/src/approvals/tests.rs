//! The four-eyes rules.

use super::rules::{Refusal, channel_may_decide, decide, expire, use_grant};
use super::*;

const HOUR: i64 = 3_600_000;

fn party(subject: &str) -> Party {
    Party {
        issuer: "https://id.example.com".into(),
        subject: subject.into(),
        kind: "user".into(),
        client_id: None,
    }
}

fn action() -> Action {
    Action {
        permission: Permission::JobsReset,
        connection_id: "c1".into(),
        job_type: JobType::Reset,
    }
}

fn config(min_approvals: u32) -> ApprovalsConfig {
    ApprovalsConfig {
        require: vec![Permission::JobsReset],
        min_approvals,
        ..ApprovalsConfig::default()
    }
}

/// Alice's pending request, made at 0.
fn request(min_approvals: u32) -> Approval {
    let new = NewApproval {
        action: action(),
        requester: party("alice"),
        channel: Channel::Api,
        reason: Some("the schema changed".into()),
        job_id: None,
    };
    Approval::request(new, &config(min_approvals), 0)
}

fn decision(who: &str, verdict: Verdict, reason: Option<&str>, channel: Channel) -> Decision {
    Decision {
        decider: party(who),
        verdict,
        reason: reason.map(str::to_owned),
        channel,
        at: HOUR,
    }
}

fn approve(who: &str) -> Decision {
    decision(who, Verdict::Approve, None, Channel::Console)
}

#[test]
fn a_request_is_pending_until_its_ttl() {
    let pending = request(1);
    assert_eq!(pending.state, ApprovalState::Pending);
    assert_eq!(pending.expires_at, 24 * HOUR);
    assert_eq!(pending.approvals(), 0);
    assert!(expire(&pending, 24 * HOUR - 1).is_none());
    let expired = expire(&pending, 24 * HOUR).expect("due");
    assert_eq!(expired.state, ApprovalState::Expired);
    assert!(expired.version > pending.version);
    assert!(expire(&expired, 48 * HOUR).is_none(), "expires once");
}

#[test]
fn the_requester_never_decides_their_own_request() {
    let pending = request(1);
    // Whatever the door, approve or deny, and whatever the kind or client.
    for channel in [Channel::Api, Channel::Console, Channel::Cli] {
        for verdict in [Verdict::Approve, Verdict::Deny] {
            let mut own = decision("alice", verdict, Some("mine"), channel);
            own.decider.kind = "service".into();
            own.decider.client_id = Some("alice-script".into());
            assert_eq!(decide(&pending, own, HOUR), Err(Refusal::OwnRequest));
        }
    }
    // The same subject at another issuer is another person.
    let mut elsewhere = approve("alice");
    elsewhere.decider.issuer = "https://other.example.com".into();
    assert!(decide(&pending, elsewhere, HOUR).is_ok());
}

#[test]
fn the_mcp_channel_decides_nothing() {
    let pending = request(1);
    for verdict in [Verdict::Approve, Verdict::Deny] {
        let agent = decision("bob", verdict, Some("looks fine"), Channel::Mcp);
        assert_eq!(
            decide(&pending, agent, HOUR),
            Err(Refusal::Channel(Channel::Mcp))
        );
    }
    assert!(!channel_may_decide(Channel::Airbyte));
    for channel in [Channel::Api, Channel::Console, Channel::Cli, Channel::Front] {
        assert!(channel_may_decide(channel), "{channel:?}");
    }
}

#[test]
fn an_approval_is_a_grant_for_the_grant_ttl() {
    let approved = decide(&request(1), approve("bob"), HOUR).expect("approved");
    assert_eq!(approved.state, ApprovalState::Approved);
    assert_eq!(approved.approved_at, Some(HOUR));
    assert_eq!(approved.grant_expires_at, Some(2 * HOUR));
    assert_eq!(approved.decisions.len(), 1);
    assert_eq!(approved.decisions[0].decider, party("bob"));
    assert!(expire(&approved, 2 * HOUR - 1).is_none());
    assert_eq!(
        expire(&approved, 2 * HOUR).map(|a| a.state),
        Some(ApprovalState::Expired),
        "an unused grant expires"
    );
}

#[test]
fn a_decided_or_expired_request_cannot_be_decided_again() {
    let approved = decide(&request(1), approve("bob"), HOUR).expect("approved");
    let deny = decision("carol", Verdict::Deny, Some("no"), Channel::Api);
    assert_eq!(
        decide(&approved, deny.clone(), HOUR),
        Err(Refusal::NotPending(ApprovalState::Approved))
    );
    let denied = decide(&request(1), deny.clone(), HOUR).expect("denied");
    assert_eq!(denied.state, ApprovalState::Denied);
    assert_eq!(
        decide(&denied, approve("bob"), HOUR),
        Err(Refusal::NotPending(ApprovalState::Denied))
    );
    let expired = expire(&request(1), 24 * HOUR).expect("expired");
    assert_eq!(
        decide(&expired, approve("bob"), HOUR),
        Err(Refusal::NotPending(ApprovalState::Expired))
    );
    // Past its time but not yet marked expired: refused all the same.
    let mut late = approve("bob");
    late.at = 24 * HOUR;
    assert_eq!(decide(&request(1), late, HOUR), Err(Refusal::Expired));
}

#[test]
fn a_denial_needs_a_reason() {
    let pending = request(1);
    for reason in [None, Some(""), Some("   ")] {
        let deny = decision("bob", Verdict::Deny, reason, Channel::Api);
        assert_eq!(decide(&pending, deny, HOUR), Err(Refusal::ReasonRequired));
    }
    let deny = decision(
        "bob",
        Verdict::Deny,
        Some(" wrong connection "),
        Channel::Api,
    );
    let denied = decide(&pending, deny, HOUR).expect("denied");
    assert_eq!(
        denied.decisions[0].reason.as_deref(),
        Some("wrong connection")
    );
    assert_eq!(denied.grant_expires_at, None);
}

#[test]
fn approvals_count_once_per_person_toward_the_minimum() {
    let pending = request(2);
    let once = decide(&pending, approve("bob"), HOUR).expect("first approval");
    assert_eq!(once.state, ApprovalState::Pending);
    assert_eq!(once.approvals(), 1);
    assert_eq!(
        decide(&once, approve("bob"), HOUR),
        Err(Refusal::AlreadyApproved)
    );
    let twice = decide(&once, approve("carol"), HOUR).expect("second approval");
    assert_eq!(twice.state, ApprovalState::Approved);
    assert_eq!(twice.approvals(), 2);
    // A deny after one approval still ends the request.
    let deny = decision("carol", Verdict::Deny, Some("not today"), Channel::Cli);
    assert_eq!(
        decide(&once, deny, HOUR).map(|a| a.state),
        Ok(ApprovalState::Denied)
    );
}

#[test]
fn a_grant_is_used_once_by_the_requester_for_its_action_in_time() {
    let approved = decide(&request(1), approve("bob"), HOUR).expect("approved");
    assert_eq!(
        use_grant(&approved, &party("bob"), &action(), HOUR + 1),
        Err(Refusal::NotRequester)
    );
    let mut other = action();
    other.connection_id = "c2".into();
    assert_eq!(
        use_grant(&approved, &party("alice"), &other, HOUR + 1),
        Err(Refusal::OtherAction)
    );
    let mut sync = action();
    sync.job_type = JobType::Sync;
    assert_eq!(
        use_grant(&approved, &party("alice"), &sync, HOUR + 1),
        Err(Refusal::OtherAction)
    );
    assert_eq!(
        use_grant(&approved, &party("alice"), &action(), 2 * HOUR),
        Err(Refusal::Expired)
    );
    let used = use_grant(&approved, &party("alice"), &action(), HOUR + 1).expect("used");
    assert_eq!(used.state, ApprovalState::Used);
    assert_eq!(used.used_at, Some(HOUR + 1));
    assert_eq!(
        use_grant(&used, &party("alice"), &action(), HOUR + 2),
        Err(Refusal::NotApproved(ApprovalState::Used))
    );
    assert_eq!(
        use_grant(&request(1), &party("alice"), &action(), 1),
        Err(Refusal::NotApproved(ApprovalState::Pending))
    );
    assert!(
        expire(&used, 10 * HOUR).is_none(),
        "a used grant stays used"
    );
}

#[test]
fn ids_and_states_parse_only_their_own_text() {
    let id = ApprovalId::generate();
    assert_eq!(id.as_str().parse::<ApprovalId>(), Ok(id.clone()));
    assert!("../jobs".parse::<ApprovalId>().is_err());
    for state in ApprovalState::ALL {
        assert_eq!(state.as_str().parse::<ApprovalState>(), Ok(state));
    }
    assert!("approve".parse::<ApprovalState>().is_err());
}

#[test]
fn only_a_pending_request_is_withdrawn() {
    let pending = request(1);
    let withdrawn = rules::withdraw(&pending).expect("pending");
    assert_eq!(withdrawn.state, ApprovalState::Withdrawn);
    assert_eq!(withdrawn.version, pending.version + 1);
    assert_eq!(
        rules::withdraw(&withdrawn),
        Err(Refusal::NotPending(ApprovalState::Withdrawn))
    );
    assert!(rules::expire(&withdrawn, i64::MAX).is_none());
    let approved = rules::decide(&pending, approve("bob"), 1_000).expect("approved");
    assert_eq!(
        rules::withdraw(&approved),
        Err(Refusal::NotPending(ApprovalState::Approved))
    );
}
