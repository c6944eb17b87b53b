//! A bounded in-memory copy of finished jobs, for reads.
//!
//! A job that reached `succeeded`, `failed` or `cancelled` never changes
//! again (every update of a job row is guarded by a non-final state), so a
//! copy of it is as good as the row, on every replica. The one exception is
//! a job Airlock found in Airbyte by itself (channel `airbyte`): the front
//! may still attribute it to the caller who started it, so those are not
//! kept. Reads of finished jobs then skip the database round trip, which on
//! SQLite is two hand-offs to the driver's worker thread and back.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use airlock_domain::jobs::model::{Channel, Job};

/// How many finished jobs are kept (the oldest copy goes first).
const CAPACITY: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct FinishedJobs {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    order: VecDeque<String>,
}

impl FinishedJobs {
    pub(super) fn get(&self, id: &str) -> Option<Job> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.jobs.get(id).cloned()
    }

    /// Keeps `job` when it can no longer change.
    pub(super) fn offer(&self, job: &Job) {
        if !job.state.is_terminal() || job.channel == Channel::Airbyte {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = job.id.as_str();
        if inner.jobs.contains_key(id) {
            return;
        }
        if inner.order.len() >= CAPACITY
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.jobs.remove(&oldest);
        }
        inner.order.push_back(id.to_owned());
        inner.jobs.insert(id.to_owned(), job.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_domain::jobs::model::{JobId, JobState, JobType};

    fn job(state: JobState, channel: Channel) -> Job {
        Job {
            id: JobId::generate(),
            connection_id: "c".into(),
            workspace_id: "w".into(),
            job_type: JobType::Sync,
            state,
            airbyte_job_id: None,
            attempts: 1,
            max_attempts: 3,
            run_after: 0,
            lease_owner: None,
            lease_until: None,
            start_requested_at: None,
            cancel_requested: false,
            requested_by: "a".into(),
            requester: serde_json::json!({}),
            channel,
            retry_of: None,
            approval_id: None,
            approval_state: None,
            created_at: 0,
            updated_at: 0,
            finished_at: None,
            rows_synced: None,
            bytes_synced: None,
            duration: None,
            error: None,
            trace_parent: None,
        }
    }

    #[test]
    fn only_jobs_that_cannot_change_are_kept_and_the_oldest_go_first() {
        let cache = FinishedJobs::default();
        let running = job(JobState::Running, Channel::Api);
        let found = job(JobState::Succeeded, Channel::Airbyte);
        let done = job(JobState::Failed, Channel::Api);
        for j in [&running, &found, &done] {
            cache.offer(j);
        }
        assert!(cache.get(running.id.as_str()).is_none());
        assert!(cache.get(found.id.as_str()).is_none());
        assert_eq!(cache.get(done.id.as_str()), Some(done.clone()));

        let many: Vec<Job> = (0..CAPACITY)
            .map(|_| job(JobState::Succeeded, Channel::Api))
            .collect();
        for j in &many {
            cache.offer(j);
        }
        assert!(cache.get(done.id.as_str()).is_none(), "the oldest went");
        assert!(cache.get(many[0].id.as_str()).is_some());
        assert!(cache.get(many[CAPACITY - 1].id.as_str()).is_some());
    }
}
