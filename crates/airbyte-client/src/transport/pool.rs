//! The idle connections of one site: the most recently used is taken first
//! (its socket and the server's worker are warm), none is kept longer than
//! its idle timeout ([`IDLE_TIMEOUT`]), and at most [`MAX_IDLE`] are kept at
//! all.
//!
//! Nothing polls an idle connection, so a sweep looks at them every sixth
//! of the idle timeout while any are kept: expired ones are closed, and ones
//! the server closed are let go (their sockets would otherwise wait in
//! `CLOSE_WAIT` for the next request). The sweep is a task that runs only
//! while the pool holds connections, and ends with the pool.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::conn::Conn;

/// How long an idle connection is kept (reqwest's default, which this
/// client replaced). Airbyte's own server keeps one open for longer.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How many idle connections are kept; one more goes in only as the oldest
/// goes out.
const MAX_IDLE: usize = 128;

pub(super) struct Pool {
    idle: Mutex<Idle>,
    idle_timeout: Duration,
}

#[derive(Default)]
struct Idle {
    /// Oldest first; boxed, so that taking one out or putting it back
    /// moves a pointer, not the connection's buffers and state.
    conns: VecDeque<Box<Conn>>,
    /// Whether a sweep is under way (it ends once nothing is idle).
    sweeping: bool,
}

impl Pool {
    pub(super) fn new(idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::default(),
            idle_timeout,
        })
    }

    /// The most recently used idle connection that is still open, if any.
    /// Closed and expired ones met on the way are dropped.
    pub(super) fn checkout(&self) -> Option<Box<Conn>> {
        loop {
            let mut conn = self.lock().conns.pop_back()?;
            if self.fresh(&conn) && conn.open() {
                return Some(conn);
            }
        }
    }

    /// Puts a connection that carried a whole exchange back, and starts the
    /// sweep when none is under way (within a Tokio runtime; the request's).
    pub(super) fn put(self: &Arc<Self>, mut conn: Box<Conn>) {
        conn.idle_since = Instant::now();
        let (dropped, sweep) = {
            let mut idle = self.lock();
            let oldest_expired = idle.conns.front().is_some_and(|c| !self.fresh(c));
            let dropped = if oldest_expired || idle.conns.len() >= MAX_IDLE {
                idle.conns.pop_front()
            } else {
                None
            };
            idle.conns.push_back(conn);
            let sweep = !idle.sweeping;
            idle.sweeping = true;
            (dropped, sweep)
        };
        drop(dropped);
        if sweep {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(sweep_while_idle(Arc::downgrade(self)))),
                Err(_) => self.lock().sweeping = false,
            }
        }
    }

    /// How many connections are idle.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.lock().conns.len()
    }

    /// Lets go of the expired connections and those the server closed;
    /// whether any are still kept (when none are, the sweep ends).
    fn sweep(&self) -> bool {
        let mut idle = self.lock();
        let mut gone = Vec::new();
        let mut kept = VecDeque::with_capacity(idle.conns.len());
        for mut conn in idle.conns.drain(..) {
            if self.fresh(&conn) && conn.open() {
                kept.push_back(conn);
            } else {
                gone.push(conn);
            }
        }
        idle.conns = kept;
        idle.sweeping = !idle.conns.is_empty();
        let sweeping = idle.sweeping;
        drop(idle);
        // Closed outside the lock.
        drop(gone);
        sweeping
    }

    fn fresh(&self, conn: &Conn) -> bool {
        conn.idle_since.elapsed() < self.idle_timeout
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sweep: every sixth of the idle timeout while the pool lives and holds
/// connections.
async fn sweep_while_idle(pool: Weak<Pool>) {
    let Some(every) = pool.upgrade().map(|pool| pool.idle_timeout / 6) else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        match pool.upgrade() {
            Some(pool) if pool.sweep() => {}
            _ => return,
        }
    }
}
