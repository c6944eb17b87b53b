//! What the span processor hands finished spans to: a bounded
//! queue that a finished span enters without waiting (or is dropped from,
//! and counted), and a task on the Tokio runtime that sends it in batches.
//!
//! Why not the SDK's `BatchSpanProcessor`: it keeps its drop count to
//! itself (one warning, then a total at shutdown), and Airlock's promise is
//! that dropped spans are counted where operators look, in
//! `airlock_trace_spans_total{outcome="dropped"}`. Its export thread also
//! cannot drive the OTLP exporter over Airlock's async reqwest client (it
//! would need reqwest's blocking client, a runtime thread of its own). The
//! batching rules are the specification's: a batch leaves when it holds
//! `max_batch` spans or `delay` after its first span.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::sync::{mpsc, oneshot};

use airlock_services::metrics::SpanCounters;

use crate::telemetry::config::Queue;

/// The longest a stop waits for the last spans to leave.
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// Hands finished spans to the export task, or drops and counts them.
/// The provider's processor ([`super::Traces`]) pushes into it once started.
#[derive(Debug)]
pub(super) struct Queued {
    spans: mpsc::Sender<SpanData>,
    counters: SpanCounters,
}

/// Asks the export task to send what it holds now.
#[derive(Debug, Clone)]
pub(super) struct Flush(mpsc::Sender<oneshot::Sender<()>>);

impl Flush {
    /// Sends what is queued and waits for it, at most [`FLUSH_WAIT`].
    pub(super) async fn now(&self) {
        let (done, finished) = oneshot::channel();
        if self.0.send(done).await.is_ok() {
            let _ = tokio::time::timeout(FLUSH_WAIT, finished).await;
        }
    }
}

/// The processor, and the flush handle of its export task (spawned on the
/// current Tokio runtime).
pub(super) fn start<E: SpanExporter + 'static>(
    exporter: E,
    queue: Queue,
    counters: SpanCounters,
) -> (Queued, Flush) {
    let (spans, waiting) = mpsc::channel(queue.max_queue);
    let (flush, flushes) = mpsc::channel(1);
    let task = Export {
        exporter,
        counters: counters.clone(),
        failing: AtomicBool::new(false),
    };
    tokio::spawn(task.run(waiting, flushes, queue));
    (Queued { spans, counters }, Flush(flush))
}

impl Queued {
    /// Queues a finished span, or drops and counts it when the queue is full.
    pub(super) fn push(&self, span: SpanData) {
        if self.spans.try_send(span).is_err() {
            self.counters.dropped(1);
        }
    }
}

/// The export task's state.
struct Export<E> {
    exporter: E,
    counters: SpanCounters,
    /// Whether the last export failed: failures are logged when they start.
    failing: AtomicBool,
}

impl<E: SpanExporter> Export<E> {
    /// Waits for a span, gathers more until the batch is full or `delay`
    /// has passed, sends them; a flush sends what is queued at once.
    async fn run(
        self,
        mut waiting: mpsc::Receiver<SpanData>,
        mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
        queue: Queue,
    ) {
        let mut batch = Vec::with_capacity(queue.max_batch);
        loop {
            let mut flushed = None;
            tokio::select! {
                span = waiting.recv() => match span {
                    Some(span) => batch.push(span),
                    None => return,
                },
                Some(done) = flushes.recv() => flushed = Some(done),
            }
            if flushed.is_none() {
                let deadline = tokio::time::Instant::now() + queue.delay;
                while batch.len() < queue.max_batch {
                    tokio::select! {
                        span = waiting.recv() => match span {
                            Some(span) => batch.push(span),
                            None => break,
                        },
                        Some(done) = flushes.recv() => {
                            flushed = Some(done);
                            break;
                        }
                        () = tokio::time::sleep_until(deadline) => break,
                    }
                }
            }
            if flushed.is_some() {
                while let Ok(span) = waiting.try_recv() {
                    batch.push(span);
                }
            }
            while !batch.is_empty() {
                let rest = batch.split_off(batch.len().min(queue.max_batch));
                self.send(std::mem::replace(&mut batch, rest)).await;
            }
            if let Some(done) = flushed {
                let _ = done.send(());
            }
        }
    }

    async fn send(&self, spans: Vec<SpanData>) {
        let count = spans.len() as u64;
        let result = self.exporter.export(spans).await;
        match &result {
            Ok(()) => self.counters.exported(count),
            Err(_) => self.counters.failed(count),
        }
        let failed = result.is_err();
        if self.failing.swap(failed, Ordering::Relaxed) == failed {
            return;
        }
        match result {
            Ok(()) => tracing::info!("the trace collector takes spans again"),
            Err(error) => tracing::warn!(
                %error,
                spans = count,
                "cannot send spans to the trace collector"
            ),
        }
    }
}
