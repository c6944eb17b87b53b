//! The text log's fields, written so that no value can forge a line.
//!
//! `tracing-subscriber`'s default field formatter writes `%` (Display)
//! values and messages as they are: a `client_id` of `x\n... INFO forged`
//! from a token request would start a line of its own in the text log (its
//! 0.3.20 fix escapes ANSI sequences in messages only, not line breaks nor
//! other fields). [`EscapedFields`] formats every field of every event and
//! span the way the default does, then escapes control characters (and
//! Unicode's line and paragraph separators) in what it wrote, so a request
//! cannot add a line, whichever macro or sigil logged it. The JSON format
//! needs none of this: JSON strings escape them already.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The text log's field formatter: `name=value` separated by spaces, the
/// message bare, control characters escaped (`\n`, `\r`, `\u{1b}`...).
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            out: Escaping(writer),
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Whether `c` must not reach a text log as it is: it could end a line,
/// move the cursor or start a terminal escape sequence.
fn must_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A writer that escapes what must not reach the log as it is.
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(must_escape) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(self.0, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

struct Visitor<'writer> {
    out: Escaping<Writer<'writer>>,
    first: bool,
    result: fmt::Result,
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // `log.*` are the log crate's bridge fields; `otel.*` tell the trace
        // bridge a span's kind and status.
        if self.result.is_err() || name.starts_with("log.") || name.starts_with("otel.") {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = match name {
            "message" => write!(self.out, "{separator}{value:?}"),
            name => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                write!(self.out, "{separator}{name}={value:?}")
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Everything the subscriber writes, kept for the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(
                self.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            )
            .expect("utf-8")
        }
    }

    /// The text log of `emit`, formatted with [`EscapedFields`].
    fn logged(emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(EscapedFields)
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        captured.text()
    }

    const FORGED: &str =
        "evil\n2026-12-06T17:00:00.000000Z  INFO airlock: admin login ok\r\u{1b}[2K\u{2028}x";

    #[test]
    fn request_values_cannot_add_lines() {
        let text = logged(|| {
            let span = tracing::info_span!("request", route = %FORGED, id = FORGED);
            let _entered = span.enter();
            tracing::info!(
                client_id = %FORGED,
                user_agent = ?FORGED,
                path = FORGED,
                count = 3,
                "token refused for {FORGED}"
            );
        });
        assert_eq!(text.lines().count(), 1, "one event, one line:\n{text}");
        assert!(text.ends_with('\n'), "{text}");
        assert!(!text.contains('\r') && !text.contains('\u{1b}') && !text.contains('\u{2028}'));
        let escaped =
            r"evil\n2026-12-06T17:00:00.000000Z  INFO airlock: admin login ok\r\u{1b}[2K\u{2028}x";
        assert!(text.contains(&format!("client_id={escaped}")), "{text}");
        assert!(
            text.contains(&format!("token refused for {escaped}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("route={escaped}")),
            "span fields too: {text}"
        );
        assert!(
            text.contains(r#"path="evil\n2026"#),
            "strings stay quoted: {text}"
        );
        assert!(text.contains(" count=3"), "{text}");
    }

    #[test]
    fn ordinary_values_read_as_with_the_default_formatter() {
        let text = logged(|| {
            tracing::info!(addr = %"127.0.0.1:8080", r#type = "x", "airlock listening");
        });
        assert!(
            text.ends_with("airlock listening addr=127.0.0.1:8080 type=\"x\"\n"),
            "{text}"
        );
    }
}
