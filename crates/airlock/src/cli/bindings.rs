//! What the names in the grants are bound to, read from the database for
//! `airlock check-config` and `airlock policy explain` (ARCHITECTURE.md,
//! "Names in grants are bound to ids"). Reading never creates a database:
//! a SQLite file that does not exist yet has bound nothing.

use std::time::Duration;

use airlock_domain::policy::{Grant, NameBindings, bindings_report};
use airlock_store::Store;

/// How long reading the bindings may take before the report says so.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// The bindings recorded in the database of `url`.
pub(super) async fn read(url: &str) -> Result<NameBindings, String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or_default();
        if path != ":memory:" && !std::path::Path::new(path).exists() {
            return Ok(NameBindings::default());
        }
    }
    let read = async {
        let store = Store::connect(url).await.map_err(|e| e.to_string())?;
        let recorded = store.bindings().await.map_err(|e| e.to_string())?;
        Ok(NameBindings {
            workspaces: recorded.workspaces,
            slugs: recorded.slugs,
        })
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err("the database did not answer in time".to_owned()))
}

/// The report's section: a heading, then one line per name.
pub(super) fn section<'a>(
    grants: impl IntoIterator<Item = &'a Grant>,
    bindings: &Result<NameBindings, String>,
) -> String {
    match bindings {
        Ok(bindings) => format!(
            "names in the grants, as bound in the database\n{}",
            bindings_report(grants, bindings)
        ),
        Err(error) => format!(
            "names in the grants: cannot read their bindings ({error})\n{}",
            bindings_report(grants, &NameBindings::default())
        ),
    }
}
