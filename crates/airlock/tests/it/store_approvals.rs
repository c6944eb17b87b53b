//! Four-eyes approval requests in the store, on both backends: created and
//! listed, decided under a compare-and-set (of decisions racing, one wins),
//! expired when due, a grant used once; every change audited in the chain.

use airlock_domain::approvals::rules::Refusal;
use airlock_domain::approvals::{
    Action, Approval, ApprovalState, ApprovalsConfig, Decision, NewApproval, Party, Verdict,
};
use airlock_domain::audit::Entry;
use airlock_domain::jobs::{Channel, JobType};
use airlock_domain::policy::Permission;
use airlock_store::Store;
use airlock_store::approvals::{ApprovalFilter, Change};
use airlock_store::audit::AuditFilter;

use crate::support::{Db, both_backends, fresh_database};

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;

async fn store(kind: Db) -> Store {
    Store::connect(&fresh_database(kind).await)
        .await
        .expect("store connects and migrates")
}

fn party(subject: &str) -> Party {
    Party {
        issuer: "https://id.example.com".into(),
        subject: subject.into(),
        kind: "user".into(),
        client_id: None,
    }
}

fn action(connection: &str) -> Action {
    Action {
        permission: Permission::JobsReset,
        connection_id: connection.into(),
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

/// The (test) request's audit record behind a change.
fn request(channel: &str) -> Entry {
    Entry {
        channel: channel.to_owned(),
        action: "test".to_owned(),
        decision: "allow".to_owned(),
        ..Entry::default()
    }
}

/// `who`'s pending request on `connection`, made at `at` and stored.
async fn requested(
    store: &Store,
    who: &str,
    connection: &str,
    at: i64,
    min_approvals: u32,
) -> Approval {
    let new = NewApproval {
        action: action(connection),
        requester: party(who),
        channel: Channel::Api,
        reason: Some("the schema changed".into()),
        job_id: None,
    };
    let approval = Approval::request(new, &config(min_approvals), at);
    store
        .create_approval(&approval, &request("api"))
        .await
        .expect("create");
    approval
}

fn decision(who: &str, verdict: Verdict, at: i64) -> Decision {
    Decision {
        decider: party(who),
        verdict,
        reason: (verdict == Verdict::Deny).then(|| "not now".to_owned()),
        channel: Channel::Console,
        at,
    }
}

async fn decide(store: &Store, approval: &Approval, who: &str, verdict: Verdict) -> Change {
    store
        .decide_approval(
            &approval.id,
            &decision(who, verdict, T0 + 1),
            HOUR,
            &request("console"),
        )
        .await
        .expect("decide")
}

async fn actions(store: &Store) -> Vec<String> {
    let filter = AuditFilter {
        ascending: true,
        limit: 1_000,
        ..AuditFilter::default()
    };
    let records = store.audit_records(&filter).await.expect("audit");
    records.into_iter().map(|r| r.entry.action).collect()
}

async fn verifies(store: &Store) {
    let report = airlock_store::audit::verify_store(store, &[])
        .await
        .expect("verify");
    assert_eq!(report.broken, None);
}

async fn requests_are_stored_and_listed(kind: Db) {
    let store = store(kind).await;
    let first = requested(&store, "alice", "c1", T0, 1).await;
    let second = requested(&store, "bob", "c2", T0 + 1, 2).await;
    assert_eq!(
        store.get_approval(&first.id).await.expect("get"),
        Some(first.clone())
    );
    let all = store
        .list_approvals(&ApprovalFilter {
            limit: 10,
            ..ApprovalFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(all, [second.clone(), first.clone()], "newest first");
    let alices = ApprovalFilter {
        requester: Some(("https://id.example.com".into(), "alice".into())),
        limit: 10,
        ..ApprovalFilter::default()
    };
    assert_eq!(
        store.list_approvals(&alices).await.expect("list"),
        std::slice::from_ref(&first)
    );
    let on_c2 = ApprovalFilter {
        connection_id: Some("c2".into()),
        state: Some(ApprovalState::Pending),
        limit: 10,
        ..ApprovalFilter::default()
    };
    assert_eq!(store.list_approvals(&on_c2).await.expect("list"), [second]);
    let approved = ApprovalFilter {
        state: Some(ApprovalState::Approved),
        limit: 10,
        ..ApprovalFilter::default()
    };
    assert!(
        store
            .list_approvals(&approved)
            .await
            .expect("list")
            .is_empty()
    );
    let unknown = airlock_domain::approvals::ApprovalId::generate();
    assert_eq!(store.get_approval(&unknown).await.expect("get"), None);
    assert_eq!(
        decide(
            &store,
            &Approval {
                id: unknown,
                ..first
            },
            "bob",
            Verdict::Approve
        )
        .await,
        Change::Missing
    );
    assert_eq!(
        actions(&store).await,
        ["approvals.request", "approvals.request"]
    );
    verifies(&store).await;
}

async fn a_decided_request_cannot_be_decided_again(kind: Db) {
    let store = store(kind).await;
    let pending = requested(&store, "alice", "c1", T0, 1).await;
    assert_eq!(
        decide(&store, &pending, "alice", Verdict::Approve).await,
        Change::Refused(Refusal::OwnRequest)
    );
    let Change::Done(approved) = decide(&store, &pending, "bob", Verdict::Approve).await else {
        panic!("bob approves");
    };
    assert_eq!(approved.state, ApprovalState::Approved);
    assert_eq!(approved.grant_expires_at, Some(T0 + 1 + HOUR));
    assert_eq!(
        store.get_approval(&pending.id).await.expect("get"),
        Some(*approved.clone())
    );
    for verdict in [Verdict::Approve, Verdict::Deny] {
        assert_eq!(
            decide(&store, &pending, "carol", verdict).await,
            Change::Refused(Refusal::NotPending(ApprovalState::Approved))
        );
    }
    let other = requested(&store, "alice", "c2", T0, 1).await;
    let Change::Done(denied) = decide(&store, &other, "carol", Verdict::Deny).await else {
        panic!("carol denies");
    };
    assert_eq!(denied.state, ApprovalState::Denied);
    assert_eq!(denied.decisions[0].reason.as_deref(), Some("not now"));
    let records = store
        .audit_records(&AuditFilter {
            action: Some("approvals.deny".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .expect("audit");
    assert_eq!(records.len(), 1);
    let detail = records[0].entry.detail.clone().expect("detail");
    assert_eq!(detail["approval_id"], other.id.as_str());
    assert_eq!(detail["reason"], "not now");
    assert_eq!(records[0].entry.outcome.as_deref(), Some("denied"));
    assert_eq!(records[0].entry.connection_id.as_deref(), Some("c2"));
    assert_eq!(
        actions(&store).await,
        [
            "approvals.request",
            "approvals.approve",
            "approvals.request",
            "approvals.deny"
        ],
        "refusals write nothing"
    );
    verifies(&store).await;
}

async fn of_decisions_racing_one_wins(kind: Db) {
    let store = store(kind).await;
    let pending = requested(&store, "alice", "c1", T0, 1).await;
    let racers = (0..8).map(|i| {
        let store = store.clone();
        let pending = pending.clone();
        let verdict = if i % 2 == 0 {
            Verdict::Approve
        } else {
            Verdict::Deny
        };
        tokio::spawn(
            async move { decide(&store, &pending, &format!("approver-{i}"), verdict).await },
        )
    });
    let mut won = Vec::new();
    for racer in racers.collect::<Vec<_>>() {
        match racer.await.expect("join") {
            Change::Done(approval) => won.push(approval),
            Change::Refused(Refusal::NotPending(_)) => {}
            other => panic!("refused as decided already: {other:?}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let stored = store
        .get_approval(&pending.id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored, *won[0]);
    assert_eq!(stored.decisions.len(), 1);
    // With two approvals needed, two people approving at once both count.
    let pair = requested(&store, "alice", "c2", T0, 2).await;
    let both = ["bob", "carol"].map(|who| {
        let store = store.clone();
        let pair = pair.clone();
        tokio::spawn(async move { decide(&store, &pair, who, Verdict::Approve).await })
    });
    for racer in both {
        assert!(matches!(racer.await.expect("join"), Change::Done(_)));
    }
    let stored = store
        .get_approval(&pair.id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.state, ApprovalState::Approved);
    assert_eq!(stored.approvals(), 2);
    let decisions = actions(&store)
        .await
        .iter()
        .filter(|a| a.starts_with("approvals.a") || a.starts_with("approvals.d"))
        .count();
    assert_eq!(decisions, 3, "one record per decision that won");
    verifies(&store).await;
}

async fn due_requests_and_grants_expire_once(kind: Db) {
    let store = store(kind).await;
    let pending = requested(&store, "alice", "c1", T0, 1).await;
    let granted = requested(&store, "alice", "c2", T0, 1).await;
    let Change::Done(granted) = decide(&store, &granted, "bob", Verdict::Approve).await else {
        panic!("approved");
    };
    let later = requested(&store, "alice", "c3", T0 + 2 * HOUR, 1).await;
    // The grant ends an hour after its approval, the requests a day after.
    assert!(
        store
            .expire_approvals(T0 + HOUR)
            .await
            .expect("expire")
            .is_empty()
    );
    let expired = store.expire_approvals(T0 + 1 + HOUR).await.expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, granted.id);
    assert_eq!(expired[0].state, ApprovalState::Expired);
    let expired = store
        .expire_approvals(T0 + 24 * HOUR)
        .await
        .expect("expire");
    assert_eq!(
        expired.iter().map(|a| &a.id).collect::<Vec<_>>(),
        [&pending.id]
    );
    assert!(
        store
            .expire_approvals(T0 + 24 * HOUR)
            .await
            .expect("expire")
            .is_empty()
    );
    let still = store
        .get_approval(&later.id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(still.state, ApprovalState::Pending);
    assert_eq!(
        decide(&store, &pending, "bob", Verdict::Approve).await,
        Change::Refused(Refusal::NotPending(ApprovalState::Expired))
    );
    let records = store
        .audit_records(&AuditFilter {
            action: Some("approvals.expire".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .expect("audit");
    assert_eq!(records.len(), 2);
    assert!(
        records.iter().all(
            |r| r.entry.decision == "system" && r.entry.actor.kind.as_deref() == Some("system")
        )
    );
    verifies(&store).await;
}

async fn a_grant_is_used_once(kind: Db) {
    let store = store(kind).await;
    let pending = requested(&store, "alice", "c1", T0, 1).await;
    let Change::Done(_) = decide(&store, &pending, "bob", Verdict::Approve).await else {
        panic!("approved");
    };
    let use_as = |who: &'static str, connection: &'static str| {
        let store = store.clone();
        let id = pending.id.clone();
        async move {
            store
                .use_approval_grant(
                    &id,
                    &party(who),
                    &action(connection),
                    T0 + 2,
                    &request("front"),
                )
                .await
                .expect("use")
        }
    };
    assert_eq!(
        use_as("bob", "c1").await,
        Change::Refused(Refusal::NotRequester)
    );
    assert_eq!(
        use_as("alice", "c2").await,
        Change::Refused(Refusal::OtherAction)
    );
    let racers: Vec<_> = (0..6)
        .map(|_| tokio::spawn(use_as("alice", "c1")))
        .collect();
    let mut used = 0;
    for racer in racers {
        match racer.await.expect("join") {
            Change::Done(approval) => {
                assert_eq!(approval.state, ApprovalState::Used);
                assert_eq!(approval.used_at, Some(T0 + 2));
                used += 1;
            }
            Change::Refused(Refusal::NotApproved(ApprovalState::Used)) => {}
            other => panic!("refused as used already: {other:?}"),
        }
    }
    assert_eq!(used, 1);
    assert_eq!(
        actions(&store).await,
        ["approvals.request", "approvals.approve", "approvals.use"]
    );
    verifies(&store).await;
}

both_backends!(
    requests_are_stored_and_listed,
    a_decided_request_cannot_be_decided_again,
    of_decisions_racing_one_wins,
    due_requests_and_grants_expire_once,
    a_grant_is_used_once,
);
