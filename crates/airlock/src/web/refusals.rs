//! Refusals of requests that nobody is identified for: a credential that
//! does not verify, a door's host gate, a failed token exchange. Anyone can
//! cause them, as often as they like, so they must not cost a database
//! write each. Per window (`[server] refusal_window_secs`):
//!
//! - the first refusal of a source address, channel, action, reason (and
//!   client id, at the token endpoint) is audited at once, as before;
//! - the ones after it are only counted, and one record per key with the
//!   count (`detail.repeated`) is written when the window closes;
//! - an address (or a client id) that caused `[server]
//!   refusals_per_address` of them is throttled until the window closes:
//!   what it sends is refused with 429 before any work, unless it carries
//!   a credential that already verified.
//!
//! The ledger only counts; [`super::AppState`] writes what it hands back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use airlock_domain::audit;

use super::AppState;

/// Keys tallied per window; refusals beyond go to one key per action and
/// reason, with no address (a flood from many addresses still costs a
/// bounded number of writes).
const MAX_TALLIES: usize = 4_096;

/// Addresses and client ids charged per window: past this many, new keys
/// are not charged (known ones still are), so that made-up client ids
/// cannot grow the ledger without bound.
const MAX_CHARGED: usize = 65_536;

/// Longest text kept of a request-supplied value (a path, a client id).
pub const MAX_DETAIL_CHARS: usize = 256;

/// `value` cut to [`MAX_DETAIL_CHARS`] characters, marked when cut.
pub fn bounded(value: &str) -> String {
    let mut chars = value.chars();
    let mut kept: String = chars.by_ref().take(MAX_DETAIL_CHARS).collect();
    if chars.next().is_some() {
        kept.push('…');
    }
    kept
}

/// What a throttle is counted against: the source address (IPv6 by its
/// /64, which one host usually holds whole), or a client id.
pub fn address_key(source_ip: Option<&str>) -> String {
    match source_ip.and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(String::new, |v4| v4.to_string()),
        Some(ip) => ip.to_string(),
        None => "unknown".to_owned(),
    }
}

/// A refusal of a request before anyone is identified (a credential that
/// does not verify, a door's host gate): what the audit trail records of it.
#[derive(Debug)]
pub struct Unidentified<'a> {
    pub channel: &'a str,
    pub action: &'a str,
    pub reason: &'a str,
    /// The status answered.
    pub status: &'a str,
    pub detail: serde_json::Value,
}

impl Unidentified<'_> {
    /// Audits the refusal, counted with the others of its source address
    /// and reason this window (see the module's documentation), and
    /// charges it to the address's throttle.
    pub async fn record(self, state: &AppState, origin: audit::Origin) {
        let address = address_key(origin.source_ip.as_deref());
        state.refused(self.entry(origin), None, &[&address]).await;
    }

    /// The refusal's audit record.
    pub fn entry(self, origin: audit::Origin) -> audit::Entry {
        audit::Entry {
            origin,
            channel: self.channel.to_owned(),
            action: self.action.to_owned(),
            decision: "deny".to_owned(),
            reason: Some(self.reason.to_owned()),
            outcome: Some(self.status.to_owned()),
            detail: Some(self.detail),
            ..audit::Entry::default()
        }
    }
}

/// Where the tallies of one window stand.
#[derive(Debug)]
pub struct Refusals {
    window_ms: i64,
    /// Refusals an address or client id may cause per window (0: no
    /// throttle).
    budget: u32,
    ledger: Mutex<Ledger>,
    /// Keys that reached the budget this window: while none has, which is
    /// nearly always, a request asks no lock to learn it is not throttled.
    over_budget: AtomicUsize,
}

#[derive(Debug, Default)]
struct Ledger {
    window_start: i64,
    tallies: HashMap<Key, Tally>,
    /// Refusals charged per address or client id this window.
    charges: HashMap<String, u32>,
}

impl Ledger {
    /// One more refusal charged to `key`; its count this window (0 when
    /// the ledger is full and `key` is new).
    fn charge(&mut self, key: &str) -> u32 {
        if let Some(count) = self.charges.get_mut(key) {
            *count = count.saturating_add(1);
            return *count;
        }
        if self.charges.len() >= MAX_CHARGED {
            return 0;
        }
        self.charges.insert(key.to_owned(), 1);
        1
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    address: Option<String>,
    channel: String,
    action: String,
    reason: Option<String>,
    /// The client id a token exchange named.
    subject: Option<String>,
}

#[derive(Debug)]
struct Tally {
    /// The first refusal's record (already written).
    first: audit::Entry,
    /// Refusals after the first, not yet written.
    repeated: u64,
}

/// What became of a refusal handed to [`Refusals::note`].
#[derive(Debug, Default)]
pub struct Noted {
    /// To write now: the first of its key this window.
    pub write: Option<audit::Entry>,
    /// To write now too: the counts of the window that just closed.
    pub closed: Vec<audit::Entry>,
}

impl Refusals {
    /// Tallies per `window_secs`, throttling past `budget` (0: never).
    pub fn new(window_secs: u64, budget: u32) -> Self {
        Self {
            window_ms: i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            budget,
            ledger: Mutex::new(Ledger::default()),
            over_budget: AtomicUsize::new(0),
        }
    }

    /// The window's length in seconds.
    pub fn window_secs(&self) -> u64 {
        u64::try_from(self.window_ms / 1000).unwrap_or(0)
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `entry` (a refusal; `subject` is the client id it named, if
    /// any), charging it to each of `charged` (address or client keys).
    pub fn note(
        &self,
        now_ms: i64,
        entry: audit::Entry,
        subject: Option<&str>,
        charged: &[&str],
    ) -> Noted {
        let mut ledger = self.ledger();
        let closed = self.roll(&mut ledger, now_ms, false);
        for key in charged {
            let count = ledger.charge(key);
            self.count_over_budget(count);
        }
        let mut key = Key {
            address: Some(address_key(entry.origin.source_ip.as_deref())),
            channel: entry.channel.clone(),
            action: entry.action.clone(),
            reason: entry.reason.clone(),
            subject: subject.map(bounded),
        };
        if ledger.tallies.len() >= MAX_TALLIES && !ledger.tallies.contains_key(&key) {
            key.address = None;
            key.subject = None;
        }
        let write = match ledger.tallies.get_mut(&key) {
            Some(tally) => {
                tally.repeated += 1;
                None
            }
            None => {
                ledger.tallies.insert(
                    key,
                    Tally {
                        first: entry.clone(),
                        repeated: 0,
                    },
                );
                Some(entry)
            }
        };
        Noted { write, closed }
    }

    /// Charges one costly action anyone may ask for (a console login's
    /// start) to `key`: whether `key` is still within the budget this
    /// window, and the counts of a window that closed, to write.
    pub fn spend(&self, now_ms: i64, key: &str) -> (bool, Vec<audit::Entry>) {
        let mut ledger = self.ledger();
        let closed = self.roll(&mut ledger, now_ms, false);
        let count = ledger.charge(key);
        self.count_over_budget(count);
        (self.budget == 0 || count <= self.budget, closed)
    }

    /// Notes a key whose charges just reached the budget.
    fn count_over_budget(&self, count: u32) {
        if self.budget != 0 && count == self.budget {
            self.over_budget.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether any key may be throttled now (no lock taken): when false,
    /// [`Refusals::throttled`] is false for every key.
    pub fn any_throttled(&self) -> bool {
        self.over_budget.load(Ordering::Relaxed) > 0
    }

    /// Whether `key` (an address or client key) is throttled now.
    pub fn throttled(&self, now_ms: i64, key: &str) -> bool {
        if !self.any_throttled() {
            return false;
        }
        let ledger = self.ledger();
        now_ms < ledger.window_start.saturating_add(self.window_ms)
            && ledger.charges.get(key).is_some_and(|n| *n >= self.budget)
    }

    /// The counts of a window that has closed by `now_ms` (all of them,
    /// when `force`: at shutdown), for the caller to write.
    pub fn close(&self, now_ms: i64, force: bool) -> Vec<audit::Entry> {
        let mut ledger = self.ledger();
        self.roll(&mut ledger, now_ms, force)
    }

    /// Starts a new window if the current one is over, returning the
    /// records of the repeats it counted.
    fn roll(&self, ledger: &mut Ledger, now_ms: i64, force: bool) -> Vec<audit::Entry> {
        if !force && now_ms < ledger.window_start.saturating_add(self.window_ms) {
            return Vec::new();
        }
        ledger.window_start = now_ms;
        ledger.charges.clear();
        self.over_budget.store(0, Ordering::Relaxed);
        let window_secs = self.window_secs();
        ledger
            .tallies
            .drain()
            .filter(|(_, tally)| tally.repeated > 0)
            .map(|(key, tally)| summary(key, tally, window_secs))
            .collect()
    }
}

/// The record of a key's repeats in one window.
fn summary(key: Key, tally: Tally, window_secs: u64) -> audit::Entry {
    let mut detail = match tally.first.detail {
        Some(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    detail.insert("repeated".to_owned(), tally.repeated.into());
    detail.insert("window_secs".to_owned(), window_secs.into());
    audit::Entry {
        origin: audit::Origin {
            request_id: None,
            source_ip: key.address.and(tally.first.origin.source_ip),
            user_agent: None,
        },
        detail: Some(serde_json::Value::Object(detail)),
        ..tally.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(ip: &str, reason: &str) -> audit::Entry {
        audit::Entry {
            origin: audit::Origin {
                request_id: Some("r".to_owned()),
                source_ip: Some(ip.to_owned()),
                user_agent: None,
            },
            channel: "api".to_owned(),
            action: "authenticate".to_owned(),
            decision: "deny".to_owned(),
            reason: Some(reason.to_owned()),
            outcome: Some("401".to_owned()),
            detail: Some(serde_json::json!({"path": "/v1/jobs"})),
            ..audit::Entry::default()
        }
    }

    #[test]
    fn the_first_is_written_and_the_rest_counted_once_per_window() {
        let refusals = Refusals::new(10, 0);
        let noted = refusals.note(0, refusal("10.0.0.1", "malformed"), None, &[]);
        assert!(noted.write.is_some() && noted.closed.is_empty());
        for _ in 0..999 {
            let noted = refusals.note(5, refusal("10.0.0.1", "malformed"), None, &[]);
            assert!(noted.write.is_none() && noted.closed.is_empty());
        }
        // Another reason, another address: their own first records.
        assert!(
            refusals
                .note(6, refusal("10.0.0.1", "expired"), None, &[])
                .write
                .is_some()
        );
        assert!(
            refusals
                .note(6, refusal("10.0.0.2", "malformed"), None, &[])
                .write
                .is_some()
        );
        assert!(refusals.close(9_999, false).is_empty(), "window still open");
        let closed = refusals.close(10_000, false);
        assert_eq!(closed.len(), 1, "{closed:?}");
        let detail = closed[0].detail.as_ref().expect("detail");
        assert_eq!(detail["repeated"], 999);
        assert_eq!(detail["window_secs"], 10);
        assert_eq!(detail["path"], "/v1/jobs");
        assert_eq!(closed[0].origin.source_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(closed[0].origin.request_id, None);
        // A new window: the next refusal is a first again.
        assert!(
            refusals
                .note(10_001, refusal("10.0.0.1", "malformed"), None, &[])
                .write
                .is_some()
        );
    }

    #[test]
    fn a_window_closed_by_a_late_refusal_hands_its_counts_over() {
        let refusals = Refusals::new(1, 0);
        refusals.note(0, refusal("10.0.0.1", "malformed"), None, &[]);
        refusals.note(1, refusal("10.0.0.1", "malformed"), None, &[]);
        let noted = refusals.note(5_000, refusal("10.0.0.1", "malformed"), None, &[]);
        assert_eq!(noted.closed.len(), 1);
        assert!(noted.write.is_some());
        assert_eq!(refusals.close(5_001, true).len(), 0, "nothing repeated yet");
    }

    #[test]
    fn an_address_is_throttled_past_its_budget_until_the_window_closes() {
        let refusals = Refusals::new(10, 3);
        let key = address_key(Some("10.0.0.1"));
        for _ in 0..3 {
            assert!(!refusals.throttled(1, &key));
            refusals.note(1, refusal("10.0.0.1", "malformed"), None, &[&key]);
        }
        assert!(refusals.any_throttled() && refusals.throttled(2, &key));
        assert!(!refusals.throttled(2, &address_key(Some("10.0.0.2"))));
        assert!(!refusals.throttled(10_000, &key), "the window is over");
        refusals.close(10_000, false);
        assert!(!refusals.any_throttled(), "a new window starts clean");
        assert!(!refusals.throttled(10_001, &key));
        assert!(!Refusals::new(10, 0).throttled(0, &key), "0: no throttle");
    }

    #[test]
    fn costly_actions_spend_the_budget_of_their_key() {
        let refusals = Refusals::new(10, 2);
        refusals.note(0, refusal("10.0.0.1", "malformed"), None, &[]);
        refusals.note(1, refusal("10.0.0.1", "malformed"), None, &[]);
        assert!(refusals.spend(1, "login:10.0.0.1").0);
        assert!(refusals.spend(2, "login:10.0.0.1").0);
        assert!(!refusals.spend(3, "login:10.0.0.1").0, "over the budget");
        assert!(refusals.spend(3, "login:10.0.0.2").0, "another address");
        let (allowed, closed) = refusals.spend(10_000, "login:10.0.0.1");
        assert!(allowed, "a new window");
        assert_eq!(
            closed.len(),
            1,
            "the closed window's counts are handed over"
        );
        assert!(Refusals::new(10, 0).spend(0, "k").0, "0: no budget");
    }

    #[test]
    fn made_up_keys_cannot_grow_the_charges_past_their_bound() {
        let refusals = Refusals::new(10, 1);
        for i in 0..(MAX_CHARGED + 100) {
            let key = format!("client:{i}");
            refusals.note(1, refusal("10.0.0.1", "wrong_secret"), None, &[&key]);
        }
        assert_eq!(refusals.ledger().charges.len(), MAX_CHARGED);
        assert!(refusals.throttled(2, "client:0"), "a known key is charged");
        let late = format!("client:{}", MAX_CHARGED + 50);
        assert!(!refusals.throttled(2, &late), "a key past the bound is not");
    }

    #[test]
    fn many_sources_fold_into_one_tally_per_reason() {
        let refusals = Refusals::new(10, 0);
        let mut written = 0;
        for i in 0..(MAX_TALLIES + 500) {
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            if refusals
                .note(1, refusal(&ip, "malformed"), None, &[])
                .write
                .is_some()
            {
                written += 1;
            }
        }
        assert_eq!(written, MAX_TALLIES + 1);
        let closed = refusals.close(10_000, false);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].origin.source_ip, None);
        assert_eq!(closed[0].detail.as_ref().expect("detail")["repeated"], 499);
    }

    #[test]
    fn addresses_are_keyed_by_host_and_values_bounded() {
        assert_eq!(address_key(Some("192.0.2.7")), "192.0.2.7");
        assert_eq!(address_key(Some("::ffff:192.0.2.7")), "192.0.2.7");
        assert_eq!(
            address_key(Some("2001:db8:1:2:aaaa::1")),
            address_key(Some("2001:db8:1:2:bbbb::9"))
        );
        assert_eq!(address_key(None), "unknown");
        let long = "x".repeat(70_000);
        assert_eq!(bounded(&long).chars().count(), MAX_DETAIL_CHARS + 1);
        assert_eq!(bounded("/v1/jobs"), "/v1/jobs");
    }
}
