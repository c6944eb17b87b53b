//! The job calls: start one, read one, list them, cancel one.

use http::Method;
use uuid::Uuid;

use super::{AirbyteClient, Pages, decode};
use crate::error::{ConflictKind, Error, Result};
use crate::models::{Job, JobCreate, JobFilter, JobStatus, JobType, Page};
use crate::retry::Idempotency;

impl AirbyteClient {
    /// Starts a job (`POST /jobs`). Never retried once it may have reached Airbyte:
    /// a timeout, a dropped connection, a 5xx or an unreadable 2xx give
    /// [`Error::Ambiguous`], and the caller reconciles by listing the connection's
    /// recent jobs. Connect errors, 401 and 429 (nothing was processed) are retried.
    /// A sync already running gives [`Error::Conflict`] with
    /// [`ConflictKind::SyncRunning`].
    pub async fn create_job(&self, connection_id: Uuid, job_type: JobType) -> Result<Job> {
        let body = serde_json::to_vec(&JobCreate {
            connection_id,
            job_type: &job_type,
        })
        .map_err(|error| Error::InvalidInput(error.to_string()))?;
        let mut call = self.call(Method::POST, "POST /jobs", "/jobs".to_owned());
        call.body = Some(body.into());
        call.idempotency = Idempotency::NonIdempotent;
        self.call_json(call).await
    }

    /// One job (`GET /jobs/{jobId}`), what pollers call.
    pub async fn get_job(&self, job_id: i64) -> Result<Job> {
        let call = self.call(Method::GET, "GET /jobs/{jobId}", format!("/jobs/{job_id}"));
        self.call_json(call).await
    }

    /// One page of jobs (`GET /jobs`).
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Page<Job>> {
        self.list_page(
            "GET /jobs",
            "/jobs",
            filter.filter_query(),
            filter.limit,
            filter.offset,
        )
        .await
    }

    /// A pager over jobs, for callers that may stop early (such as "is a sync of
    /// this connection running?").
    pub fn list_jobs_pages(&self, filter: &JobFilter) -> Pages<Job> {
        Pages::new(
            self.clone(),
            "GET /jobs",
            "/jobs",
            filter.filter_query(),
            filter.limit,
            filter.offset,
        )
    }

    /// Every job matching `filter`, following pages.
    pub async fn list_all_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.list_jobs_pages(filter).collect_all().await
    }

    /// Cancels a job (`DELETE /jobs/{jobId}`).
    ///
    /// Treated as idempotent, because the goal ("the job is not running") is the
    /// same however often it is asked: transient failures are retried. When a retry
    /// then meets a 409 `state-conflict`, an earlier attempt may have done the
    /// cancelling, so the job is read back: if it is cancelled, that is success.
    pub async fn cancel_job(&self, job_id: i64) -> Result<Job> {
        let call = self.call(
            Method::DELETE,
            "DELETE /jobs/{jobId}",
            format!("/jobs/{job_id}"),
        );
        let outcome = self.execute(&call).await?;
        let attempts = outcome.attempts;
        match decode::<Job>(&call, outcome) {
            Err(Error::Conflict {
                kind: ConflictKind::StateConflict,
                problem,
            }) if attempts > 1 => {
                let job = self.get_job(job_id).await?;
                if job.status == JobStatus::Cancelled {
                    tracing::debug!(job_id, "cancel retried into a 409; the job is cancelled");
                    Ok(job)
                } else {
                    Err(Error::Conflict {
                        kind: ConflictKind::StateConflict,
                        problem,
                    })
                }
            }
            other => other,
        }
    }
}
