//! Parsing a trigger's options.

use super::*;

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
    assert!(parse_duration("soon").is_err());
    assert!(parse_duration("5d").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration(" 5m").is_err(), "the pattern has no spaces");
    assert_eq!(
        parse_duration("999999999ms"),
        Ok(Duration::from_millis(999_999_999))
    );
    assert!(
        parse_duration("1234567890s").is_err(),
        "at most nine digits"
    );
}

#[test]
fn times_render_as_rfc3339() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.5Z");
}
