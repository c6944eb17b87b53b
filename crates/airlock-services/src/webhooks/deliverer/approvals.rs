//! The approvals' timeline into deliveries: the entries of
//! `approval_events` after their own cursor (`Timeline::Approvals`), each
//! `requested`, `approved`, `denied` or `expired` one becoming one delivery
//! per webhook that subscribed to it and whose filters match the request's
//! connection, written in the same transaction as the cursor's move.
//! (`withdrawn` and `used` move the cursor and raise nothing: the job's own
//! events tell them.)

use std::collections::HashMap;

use super::{Deliverer, EVENT_BATCH, WebhookError, WebhookEvent, contiguous, payload};
use airlock_domain::approvals::{Approval, ApprovalId};
use airlock_store::approvals::ApprovalEvent;
use airlock_store::webhooks::{self as outbox, NewDelivery, Timeline};

impl Deliverer {
    /// [`Deliverer::enqueue`] for the approvals' events.
    pub(super) async fn enqueue_approvals(&mut self) -> Result<usize, WebhookError> {
        let mut created = 0;
        loop {
            let from = outbox::cursor(&self.store, Timeline::Approvals).await?;
            let events = self.store.approval_events_after(from, EVENT_BATCH).await?;
            let read = events.len();
            let now = self.clock.now_ms();
            let events = contiguous(&mut self.approval_gap, from, events, |e| e.seq, now);
            let Some(to) = events.last().map(|e| e.seq) else {
                return Ok(created);
            };
            let deliveries = self.approval_deliveries_for(&events).await?;
            let timeline = Timeline::Approvals;
            if !outbox::commit_batch(&self.store, timeline, from, to, &deliveries, now).await? {
                // Another replica moved the cursor: its deliveries stand.
                return Ok(created);
            }
            created += deliveries.len();
            if read < usize::try_from(EVENT_BATCH).unwrap_or(usize::MAX) || events.len() < read {
                return Ok(created);
            }
        }
    }

    /// The deliveries the approvals' `events` raise, webhook by webhook.
    async fn approval_deliveries_for(
        &self,
        events: &[ApprovalEvent],
    ) -> Result<Vec<NewDelivery>, WebhookError> {
        let mut deliveries = Vec::new();
        let mut approvals: HashMap<ApprovalId, Option<Approval>> = HashMap::new();
        for event in events {
            let Some(kind) = WebhookEvent::for_approval(&event.event) else {
                continue;
            };
            if !self.webhooks.iter().any(|w| w.events.contains(&kind)) {
                continue;
            }
            if !approvals.contains_key(&event.approval_id) {
                let approval = self.store.get_approval(&event.approval_id).await?;
                approvals.insert(event.approval_id.clone(), approval);
            }
            let Some(Some(approval)) = approvals.get(&event.approval_id) else {
                tracing::warn!(
                    seq = event.seq, approval_id = %event.approval_id,
                    "approval event of an unknown request; skipped"
                );
                continue;
            };
            let connection = &approval.action.connection_id;
            let workspace = self.directory.connection_workspace(connection);
            let slug = self.directory.connection_slug(connection);
            let mut body = None;
            for webhook in &self.webhooks {
                let directory = self.directory.as_ref();
                if !webhook.wants_on(kind, connection, workspace.as_deref(), directory) {
                    continue;
                }
                let body = body.get_or_insert_with(|| {
                    payload::approval_body(kind, approval, slug.as_deref(), event.at).to_string()
                });
                deliveries.push(NewDelivery {
                    id: uuid::Uuid::now_v7().to_string(),
                    webhook_id: webhook.id.clone(),
                    job_id: approval
                        .job_id
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    approval_id: Some(approval.id.to_string()),
                    event_seq: event.seq,
                    event: kind.name(),
                    payload: body.clone(),
                });
            }
        }
        Ok(deliveries)
    }
}
