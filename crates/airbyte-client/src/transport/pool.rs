//! The idle connections of one site: the most recently used is taken first
//! (its socket and the server's worker are warm), none is kept longer than
//! [`IDLE_TIMEOUT`], and at most [`MAX_IDLE`] are kept at all.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::conn::Conn;

/// How long an idle connection is kept (reqwest's default, which this
/// client replaced). Airbyte's own server keeps one open for longer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How many idle connections are kept; one more goes in only as the oldest
/// goes out.
const MAX_IDLE: usize = 128;

#[derive(Default)]
pub(super) struct Pool {
    /// Oldest first.
    idle: Mutex<VecDeque<Conn>>,
}

impl Pool {
    /// The most recently used idle connection that is still open, if any.
    /// Closed and expired ones met on the way are dropped.
    pub(super) fn checkout(&self) -> Option<Conn> {
        loop {
            let mut conn = self.lock().pop_back()?;
            if conn.idle_since.elapsed() < IDLE_TIMEOUT && conn.open() {
                return Some(conn);
            }
        }
    }

    /// Puts a connection that carried a whole exchange back.
    pub(super) fn put(&self, mut conn: Conn) {
        conn.idle_since = std::time::Instant::now();
        let dropped = {
            let mut idle = self.lock();
            let oldest_expired = idle
                .front()
                .is_some_and(|oldest| oldest.idle_since.elapsed() >= IDLE_TIMEOUT);
            let dropped = if oldest_expired || idle.len() >= MAX_IDLE {
                idle.pop_front()
            } else {
                None
            };
            idle.push_back(conn);
            dropped
        };
        drop(dropped);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Conn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
