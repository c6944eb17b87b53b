//! Simulated time: the wall clock (or a frozen one) plus whatever `/_sim/advance` added.
//!
//! Job states, token expiry and timestamps all read this clock, so a test moves a
//! sync from `pending` to `succeeded` by advancing it rather than by sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, in simulated time.
pub(crate) type Millis = i64;

#[derive(Debug)]
pub(crate) struct Clock {
    origin_ms: Millis,
    origin: Instant,
    manual: bool,
    advanced_ms: AtomicI64,
}

impl Clock {
    pub(crate) fn new(start: OffsetDateTime, manual: bool) -> Clock {
        Clock {
            origin_ms: to_millis(start),
            origin: Instant::now(),
            manual,
            advanced_ms: AtomicI64::new(0),
        }
    }

    /// The current simulated time.
    pub(crate) fn now_ms(&self) -> Millis {
        let real = if self.manual {
            0
        } else {
            i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX / 4)
        };
        self.origin_ms + real + self.advanced_ms.load(Ordering::SeqCst)
    }

    /// Moves simulated time forward; returns the new time.
    pub(crate) fn advance(&self, ms: Millis) -> Millis {
        self.advanced_ms.fetch_add(ms.max(0), Ordering::SeqCst);
        self.now_ms()
    }
}

pub(crate) fn to_millis(t: OffsetDateTime) -> Millis {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// A UTC timestamp as Airbyte prints it, to the second: `2026-11-28T08:30:00Z`.
pub(crate) fn format_utc(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let t = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let d = t.date();
    let tm = t.time();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        tm.hour(),
        tm.minute(),
        tm.second()
    )
}

/// A duration as Java's `Duration.toString()` prints it, which is what Airbyte sends:
/// `PT8M12S`, `PT1H`, `PT0S`.
pub(crate) fn format_duration(secs: i64) -> String {
    let secs = secs.max(0);
    if secs == 0 {
        return "PT0S".to_owned();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 {
        out.push_str(&format!("{s}S"));
    }
    out
}

/// Parses a date-time query value: RFC 3339, or epoch milliseconds as in the
/// OpenAPI document's examples.
pub(crate) fn parse_instant(value: &str) -> Option<Millis> {
    if let Ok(ms) = value.parse::<i64>() {
        return Some(ms);
    }
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(to_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_java() {
        assert_eq!(format_duration(0), "PT0S");
        assert_eq!(format_duration(492), "PT8M12S");
        assert_eq!(format_duration(3600), "PT1H");
        assert_eq!(format_duration(29_172), "PT8H6M12S");
        assert_eq!(format_duration(61), "PT1M1S");
    }

    #[test]
    fn timestamps_print_to_the_second() {
        assert_eq!(format_utc(1_795_854_600_000), "2026-11-28T08:30:00Z");
        assert_eq!(
            parse_instant("2026-11-28T08:30:00Z"),
            Some(1_795_854_600_000)
        );
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let start = OffsetDateTime::from_unix_timestamp(1_000).expect("valid");
        let clock = Clock::new(start, true);
        assert_eq!(clock.now_ms(), 1_000_000);
        assert_eq!(clock.advance(5_000), 1_005_000);
    }
}
