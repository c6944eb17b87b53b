//! Where log lines go: standard error.
//!
//! Every line is written at once by the thread that logs it, except the
//! request log's (target `airlock::request`, one per request) once `serve`
//! asks for them to be gathered (`[server] request_log_flush_ms`): those are
//! held and written together, in order, at the end of each interval, as
//! nginx's `access_log ... buffer= flush=` and Envoy's access-log flush
//! interval do. One `write` per interval instead of one per request: on the
//! forwarded read, the line's `write` was 5% of Airlock's CPU (BENCHMARKS.md,
//! eleventh session). A warning or an error is never held back; held lines
//! are written when the interval ends or [`WRITE_AT`] bytes have gathered,
//! on a panic and when `serve` stops. A process killed outright loses at
//! most one interval of request lines.

use std::io::{self, Write as _};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// The request log's target.
const REQUEST_TARGET: &str = "airlock::request";

/// Held bytes at which the writing thread is told to write at once rather
/// than at the interval's end: a batch stays a few hundred kilobytes at any
/// rate of requests.
const WRITE_AT: usize = 256 << 10;

/// Held bytes beyond which the logging thread writes them itself: when the
/// writing thread cannot keep up (a blocked standard error), memory must
/// not grow without bound.
const MAX_HELD: usize = 4 << 20;

/// Where bytes finally go (standard error, or a test's buffer).
type Output = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The log's writer: cheap to clone, all clones share what is held.
#[derive(Clone)]
pub(super) struct Sink {
    shared: Arc<Shared>,
}

struct Shared {
    held: Mutex<Held>,
    /// Told when the first line of an interval is held.
    ready: Condvar,
    /// The batch being written: its lock is taken before `held`'s, so
    /// batches go out in order while request lines are held meanwhile
    /// (a slow standard error, a full pipe, blocks only the writer).
    writing: Mutex<Vec<u8>>,
    out: Output,
}

#[derive(Default)]
struct Held {
    bytes: Vec<u8>,
    /// How long a request line may wait: `None` until gathering starts and
    /// after it stops.
    interval: Option<Duration>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").finish_non_exhaustive()
    }
}

impl Sink {
    /// A sink writing to standard error, every line at once.
    pub(super) fn stderr() -> Self {
        Self::to(Box::new(|bytes| {
            // Nowhere to report a failed write to the log.
            let _ = io::stderr().write_all(bytes);
        }))
    }

    fn to(out: Output) -> Self {
        Self {
            shared: Arc::new(Shared {
                held: Mutex::default(),
                ready: Condvar::new(),
                writing: Mutex::default(),
                out,
            }),
        }
    }

    /// Holds request lines and writes them every `interval` from a thread
    /// of its own; a zero interval, or gathering already on, changes
    /// nothing. A panic writes what is held before the panic's message.
    pub(super) fn gather(&self, interval: Duration) -> io::Result<()> {
        if interval.is_zero() {
            return Ok(());
        }
        {
            let mut held = self.shared.lock();
            if held.interval.is_some() {
                return Ok(());
            }
            held.interval = Some(interval);
        }
        let shared = Arc::clone(&self.shared);
        let started = std::thread::Builder::new()
            .name("airlock-log".to_owned())
            .spawn(move || shared.write_every_interval());
        if let Err(error) = started {
            self.shared.lock().interval = None;
            return Err(error);
        }
        let shared = Arc::clone(&self.shared);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Not if the panic came from inside the sink (a lock held).
            if let (Ok(mut batch), Ok(mut held)) =
                (shared.writing.try_lock(), shared.held.try_lock())
            {
                (shared.out)(&batch);
                (shared.out)(&held.bytes);
                batch.clear();
                held.bytes.clear();
            }
            previous(info);
        }));
        Ok(())
    }

    /// Writes what is held and stops holding: later lines go at once.
    pub(super) fn stop(&self) {
        self.shared.lock().interval = None;
        self.shared.write_held();
        self.shared.ready.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds a request line if gathering is on; false when it is not.
    fn hold(&self, line: &[u8]) -> bool {
        let mut held = self.lock();
        if held.interval.is_none() {
            return false;
        }
        let before = held.bytes.len();
        held.bytes.extend_from_slice(line);
        if before == 0 || (before < WRITE_AT && held.bytes.len() >= WRITE_AT) {
            self.ready.notify_one();
        }
        let flood = held.bytes.len() >= MAX_HELD;
        drop(held);
        if flood {
            self.write_held();
        }
        true
    }

    /// Takes the held lines out and writes them, after any batch still
    /// being written; the two buffers trade places, so neither is
    /// allocated again.
    fn write_held(&self) {
        let mut batch = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut self.lock().bytes, &mut *batch);
        if !batch.is_empty() {
            (self.out)(&batch);
            batch.clear();
        }
    }

    /// The writing thread: waits for a first held line, then for the
    /// interval to pass or [`WRITE_AT`] bytes to gather, writes, until
    /// gathering stops.
    fn write_every_interval(&self) {
        let wait = |held| {
            self.ready
                .wait(held)
                .unwrap_or_else(PoisonError::into_inner)
        };
        loop {
            let mut held = self.lock();
            let interval = loop {
                match held.interval {
                    None => return,
                    Some(interval) if !held.bytes.is_empty() => break interval,
                    Some(_) => held = wait(held),
                }
            };
            let deadline = Instant::now() + interval;
            while held.interval.is_some() && held.bytes.len() < WRITE_AT {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                held = self
                    .ready
                    .wait_timeout(held, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            drop(held);
            self.write_held();
        }
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.shared,
            request: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            shared: &self.shared,
            request: meta.target() == REQUEST_TARGET,
        }
    }
}

/// One line's writer (the formatter writes a whole line in one call).
pub(super) struct Line<'a> {
    shared: &'a Shared,
    request: bool,
}

impl io::Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !(self.request && self.shared.hold(buf)) {
            (self.shared.out)(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink writing to a buffer the test reads.
    fn captured() -> (Sink, Arc<Mutex<Vec<u8>>>) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&written);
        let sink = Sink::to(Box::new(move |bytes| {
            into.lock().unwrap().extend_from_slice(bytes);
        }));
        (sink, written)
    }

    fn text(written: &Mutex<Vec<u8>>) -> String {
        String::from_utf8(written.lock().unwrap().clone()).unwrap()
    }

    fn log(sink: &Sink, request: bool, line: &str) {
        let mut writer = Line {
            shared: &sink.shared,
            request,
        };
        writer.write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn without_gathering_every_line_is_written_at_once() {
        let (sink, written) = captured();
        log(&sink, true, "request 1\n");
        log(&sink, false, "warning\n");
        assert_eq!(text(&written), "request 1\nwarning\n");
    }

    #[test]
    fn request_lines_wait_for_the_interval_and_others_do_not() {
        let (sink, written) = captured();
        sink.gather(Duration::from_millis(100)).unwrap();
        log(&sink, true, "request 1\n");
        log(&sink, true, "request 2\n");
        log(&sink, false, "warning\n");
        assert_eq!(text(&written), "warning\n", "the request lines are held");
        let deadline = Instant::now() + Duration::from_secs(5);
        while text(&written).len() < "warning\nrequest 1\nrequest 2\n".len() {
            assert!(Instant::now() < deadline, "held lines were never written");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(text(&written), "warning\nrequest 1\nrequest 2\n");
        // The next interval's lines too.
        log(&sink, true, "request 3\n");
        while !text(&written).ends_with("request 3\n") {
            assert!(Instant::now() < deadline, "the second interval never ended");
            std::thread::sleep(Duration::from_millis(10));
        }
        sink.stop();
    }

    #[test]
    fn stopping_writes_what_is_held_and_later_lines_go_at_once() {
        let (sink, written) = captured();
        sink.gather(Duration::from_secs(3600)).unwrap();
        for n in 1..=3 {
            log(&sink, true, &format!("request {n}\n"));
        }
        assert_eq!(text(&written), "");
        sink.stop();
        assert_eq!(text(&written), "request 1\nrequest 2\nrequest 3\n");
        log(&sink, true, "request 4\n");
        assert!(text(&written).ends_with("request 4\n"));
    }

    #[test]
    fn a_slow_standard_error_does_not_hold_up_the_lines_being_logged() {
        use std::sync::mpsc;
        let (entered, writing) = mpsc::channel();
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let written = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&written);
        let sink = Sink::to(Box::new(move |bytes| {
            if bytes.starts_with(b"request 1") {
                entered.send(()).unwrap();
                gate.lock().unwrap().recv().unwrap();
            }
            into.lock().unwrap().extend_from_slice(bytes);
        }));
        sink.gather(Duration::from_millis(10)).unwrap();
        log(&sink, true, "request 1\n");
        writing.recv_timeout(Duration::from_secs(5)).unwrap();
        // The first batch is stuck in its write; the next line is held.
        let (logged, done) = mpsc::channel();
        let logging = sink.clone();
        std::thread::spawn(move || {
            log(&logging, true, "request 2\n");
            logged.send(()).unwrap();
        });
        done.recv_timeout(Duration::from_secs(5))
            .expect("logging waited for the write");
        release.send(()).unwrap();
        sink.stop();
        assert_eq!(text(&written), "request 1\nrequest 2\n");
    }

    #[test]
    fn a_big_batch_is_written_before_its_interval_ends() {
        let (sink, written) = captured();
        sink.gather(Duration::from_secs(3600)).unwrap();
        let line = format!("{}\n", "x".repeat(1023));
        let under = WRITE_AT / line.len() - 1;
        for _ in 0..under {
            log(&sink, true, &line);
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(text(&written).is_empty(), "under the size, lines wait");
        log(&sink, true, &line);
        let deadline = Instant::now() + Duration::from_secs(5);
        while written.lock().unwrap().len() < WRITE_AT {
            assert!(Instant::now() < deadline, "the batch was never written");
            std::thread::sleep(Duration::from_millis(10));
        }
        sink.stop();
        assert_eq!(text(&written).len(), (under + 1) * line.len());
    }

    #[test]
    fn only_the_request_log_s_target_is_held() {
        let (sink, _) = captured();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
        tracing::dispatcher::with_default(&dispatch, || {
            let request = tracing::info_span!(target: "airlock::request", "probe");
            let other = tracing::info_span!(target: "airlock::web", "probe");
            let held = |span: &tracing::Span| {
                sink.make_writer_for(span.metadata().expect("enabled"))
                    .request
            };
            assert!(held(&request));
            assert!(!held(&other));
        });
    }
}
