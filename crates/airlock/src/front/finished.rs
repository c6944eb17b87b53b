//! Airbyte's answers about finished jobs, kept for a short while.
//!
//! A job that has succeeded, failed or been cancelled never changes in
//! Airbyte again, so reading it once more gets the same bytes. Keeping the
//! answer lets polling clients, dashboards and several tools watching the
//! same job cost Airbyte one read per `[front] finished_jobs_cache_secs`
//! instead of one per call. Authentication, authorization and auditing still
//! happen on every call: only the upstream read is skipped. Answers of jobs
//! that may still change (pending, queued, running, incomplete) are never
//! kept; nor are refusals, nor answers whose body is not a job with the id
//! asked for.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

/// Answers kept before the memory is cleared (a few hundred bytes each).
const CAPACITY: usize = 10_000;

/// Statuses after which Airbyte never changes a job.
const FINISHED: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// Airbyte's answer to `GET /jobs/{id}` for a finished job.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub body: Bytes,
    pub content_type: Option<String>,
    kept_at: Instant,
}

/// Finished jobs' answers by Airbyte job id.
#[derive(Debug)]
pub(super) struct FinishedAnswers {
    /// How long an answer is used; zero keeps none.
    ttl: Duration,
    answers: Mutex<HashMap<i64, Answer>>,
}

/// The part of a job that decides whether its answer is kept.
#[derive(Deserialize)]
struct JobHead<'a> {
    #[serde(rename = "jobId")]
    job_id: i64,
    #[serde(borrow)]
    status: &'a str,
}

impl FinishedAnswers {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            answers: Mutex::new(HashMap::new()),
        }
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Answer>> {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kept answer for `job_id`, unless it is older than the lifetime
    /// or the caller asked for something other than JSON.
    pub(super) fn get(&self, job_id: i64, request: &HeaderMap) -> Option<Answer> {
        if self.ttl.is_zero() || !accepts_json(request) {
            return None;
        }
        let mut answers = self.answers();
        let answer = answers.get(&job_id)?;
        if answer.kept_at.elapsed() < self.ttl {
            return Some(answer.clone());
        }
        answers.remove(&job_id);
        None
    }

    /// Keeps Airbyte's answer to `GET /jobs/{job_id}` when it shows the job
    /// finished.
    pub(super) fn offer(
        &self,
        job_id: i64,
        status: StatusCode,
        content_type: Option<&str>,
        body: &Bytes,
    ) {
        if self.ttl.is_zero()
            || status != StatusCode::OK
            || !content_type.is_some_and(is_json)
            || !serde_json::from_slice::<JobHead<'_>>(body)
                .is_ok_and(|head| head.job_id == job_id && FINISHED.contains(&head.status))
        {
            return;
        }
        let mut answers = self.answers();
        if answers.len() >= CAPACITY {
            answers.clear();
        }
        answers.insert(
            job_id,
            Answer {
                body: body.clone(),
                content_type: content_type.map(str::to_owned),
                kept_at: Instant::now(),
            },
        );
    }
}

fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether a kept JSON answer suits the request's `Accept` (absent, JSON
/// or a wildcard).
fn accepts_json(request: &HeaderMap) -> bool {
    let mut values = request.get_all(header::ACCEPT).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    values
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|range| range.split(';').next().unwrap_or_default().trim())
        .any(|range| {
            range == "*/*"
                || range.eq_ignore_ascii_case("application/*")
                || range.eq_ignore_ascii_case("application/json")
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn job(id: i64, status: &str) -> Bytes {
        Bytes::from(format!(
            r#"{{"jobId":{id},"status":"{status}","jobType":"sync","startTime":"2026-12-06T00:00:00Z","connectionId":"c"}}"#
        ))
    }

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn only_finished_jobs_are_kept() {
        let answers = FinishedAnswers::new(Duration::from_secs(60));
        let none = HeaderMap::new();
        for (id, status) in [(1, "succeeded"), (2, "failed"), (3, "cancelled")] {
            answers.offer(id, StatusCode::OK, JSON, &job(id, status));
            assert_eq!(
                answers.get(id, &none).map(|a| a.body),
                Some(job(id, status))
            );
        }
        for (id, status) in [
            (4, "pending"),
            (5, "queued"),
            (6, "running"),
            (7, "incomplete"),
        ] {
            answers.offer(id, StatusCode::OK, JSON, &job(id, status));
            assert!(answers.get(id, &none).is_none(), "{status}");
        }
    }

    #[test]
    fn refusals_other_jobs_and_other_types_are_not_kept() {
        let answers = FinishedAnswers::new(Duration::from_secs(60));
        let none = HeaderMap::new();
        answers.offer(1, StatusCode::NOT_FOUND, JSON, &job(1, "succeeded"));
        answers.offer(2, StatusCode::OK, JSON, &job(9, "succeeded"));
        answers.offer(3, StatusCode::OK, Some("text/plain"), &job(3, "succeeded"));
        answers.offer(4, StatusCode::OK, None, &job(4, "succeeded"));
        answers.offer(5, StatusCode::OK, JSON, &Bytes::from_static(b"not json"));
        for id in 1..=5 {
            assert!(answers.get(id, &none).is_none(), "job {id}");
        }
        answers.offer(
            6,
            StatusCode::OK,
            Some("Application/JSON; charset=utf-8"),
            &job(6, "failed"),
        );
        assert!(answers.get(6, &none).is_some());
    }

    #[test]
    fn a_zero_lifetime_keeps_nothing_and_old_answers_are_dropped() {
        let off = FinishedAnswers::new(Duration::ZERO);
        off.offer(1, StatusCode::OK, JSON, &job(1, "succeeded"));
        assert!(off.get(1, &HeaderMap::new()).is_none());

        let short = FinishedAnswers::new(Duration::from_millis(20));
        short.offer(1, StatusCode::OK, JSON, &job(1, "succeeded"));
        assert!(short.get(1, &HeaderMap::new()).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(short.get(1, &HeaderMap::new()).is_none());
        assert!(short.answers().is_empty());
    }

    #[test]
    fn the_request_must_accept_json() {
        let answers = FinishedAnswers::new(Duration::from_secs(60));
        answers.offer(1, StatusCode::OK, JSON, &job(1, "succeeded"));
        for (accept, served) in [
            ("application/json", true),
            ("text/html, */*;q=0.8", true),
            ("application/*", true),
            ("text/html", false),
            ("application/xml", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(answers.get(1, &headers).is_some(), served, "{accept}");
        }
    }
}
