//! The placeholders of multi-row statements, in each backend's style.

use sqlx::{AnyConnection, Database, Sqlite};

/// How a statement built at run time marks its parameters: `$1`, `$2`, ...
/// on Postgres; `?` on SQLite, which binds them by position.
///
/// SQLite finds a named parameter by a linear scan of the statement's
/// names, once per parameter when it prepares the statement and again
/// each time sqlx binds it, so a multi-row insert of a thousand `$N` made
/// a million string comparisons per execution (`sqlite3_bind_parameter_name`
/// was the busiest function of a burst of triggers). `?` needs no lookup.
/// Only for statements in which each parameter appears once, in order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placeholders {
    positional: bool,
}

impl Placeholders {
    /// The style of `conn`'s backend.
    pub(crate) fn of(conn: &AnyConnection) -> Self {
        Self {
            positional: conn.backend_name() == <Sqlite as Database>::NAME,
        }
    }

    /// `rows` groups of `per_row` placeholders, numbered on across the
    /// groups, each group rendered by `row`, joined with commas.
    pub(crate) fn rows(
        self,
        rows: usize,
        per_row: usize,
        row: impl Fn(&[String]) -> String,
    ) -> String {
        (0..rows)
            .map(|r| {
                let marks: Vec<String> =
                    (1..=per_row).map(|c| self.mark(r * per_row + c)).collect();
                row(&marks)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The placeholder of the `n`th parameter (from 1).
    fn mark(self, n: usize) -> String {
        if self.positional {
            "?".to_owned()
        } else {
            format!("${n}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Placeholders;

    #[test]
    fn numbered_on_across_rows_or_positional() {
        let numbered = Placeholders { positional: false };
        let sql = numbered.rows(2, 2, |p| format!("({}, 0, {})", p[0], p[1]));
        assert_eq!(sql, "($1, 0, $2), ($3, 0, $4)");
        let positional = Placeholders { positional: true };
        let sql = positional.rows(2, 2, |p| format!("({}, 0, {})", p[0], p[1]));
        assert_eq!(sql, "(?, 0, ?), (?, 0, ?)");
    }
}
