//! An HTTP client for Airlock's API that signs in with the development
//! identity provider's tokens, with the calls the tests repeat.

use std::time::Duration;

use airlock::devidp::DevIdp;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{id_of, is_terminal, send};

/// An HTTP client for Airlock that signs in with the development identity
/// provider's tokens, one role per call.
#[derive(Debug, Clone)]
pub struct Client {
    pub http: reqwest::Client,
    /// Airlock's root URL.
    pub base: String,
    pub idp: DevIdp,
}

impl Client {
    /// Airlock's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A signed token of the development provider for `role`.
    pub fn token(&self, role: &str) -> String {
        self.idp.token_for(role).expect("a demo client")
    }

    /// A request to Airlock as `role` (`None`: without a token).
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        role: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match role {
            Some(role) => request.bearer_auth(self.token(role)),
            None => request,
        }
    }

    /// `POST path` as `role`; the status and the JSON body.
    pub async fn post(&self, path: &str, role: &str) -> (StatusCode, Value) {
        send(self.request(reqwest::Method::POST, path, Some(role))).await
    }

    /// `GET path` as `role`; the status and the JSON body.
    pub async fn get(&self, path: &str, role: &str) -> (StatusCode, Value) {
        send(self.request(reqwest::Method::GET, path, Some(role))).await
    }

    /// `POST /v1/connections/{connection}/sync{query}` as a runner.
    pub async fn sync(&self, connection: &str, query: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/v1/connections/{connection}/sync{query}"),
            "runner",
        )
        .await
    }

    /// A sync that must be accepted (202); returns the job's id.
    pub async fn accepted_sync(&self, connection: &str) -> String {
        let (status, job) = self.sync(connection, "").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        id_of(&job)
    }

    /// A job as an admin sees it.
    pub async fn job(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/jobs/{id}"), "admin").await;
        assert_eq!(status, StatusCode::OK, "GET /v1/jobs/{id}: {body}");
        body
    }

    /// Polls a job until `done` holds; panics with its last state after
    /// `within` (a generous deadline, not a timing assertion).
    pub async fn wait_job(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} did not get there; last seen: {job:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a job until it is in a terminal state.
    pub async fn wait_terminal(&self, id: &str) -> Value {
        self.wait_job(id, Duration::from_secs(60), is_terminal)
            .await
    }

    /// Every job (or every job of one connection), newest first, as an
    /// admin sees them, following `next_cursor`.
    pub async fn jobs(&self, connection: Option<&str>) -> Vec<Value> {
        let filter = connection.map_or(String::new(), |c| format!("&connection={c}"));
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, body) = self
                .get(&format!("/v1/jobs?limit=200{filter}{cursor}"), "admin")
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            all.extend(body["data"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return all,
            }
        }
    }

    /// The job's timeline from `GET /v1/jobs/{id}/events`, read until the
    /// server ends the stream (after a terminal state): `(seq, state, at)`.
    pub async fn events(&self, id: &str) -> Vec<(i64, String, i64)> {
        let mut response = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/jobs/{id}/events"),
                Some("reader"),
            )
            .send()
            .await
            .expect("the event stream opens");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let mut text = String::new();
        let read = async {
            while let Some(chunk) = response.chunk().await.expect("the stream reads") {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("the event stream ends after a terminal state");
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|data| {
                let event: Value = serde_json::from_str(data.trim()).expect("JSON event");
                let at = time::OffsetDateTime::parse(
                    event["at"].as_str().expect("at"),
                    &time::format_description::well_known::Rfc3339,
                )
                .expect("an RFC 3339 time");
                (
                    event["seq"].as_i64().expect("seq"),
                    event["state"].as_str().expect("state").to_owned(),
                    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("ms"),
                )
            })
            .collect()
    }
}
