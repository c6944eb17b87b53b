//! Airlock's configuration as a TOML table assembled from typed parts:
//! sections, `[[grants]]` and `[[issuers]]` entries, and extra TOML text
//! parsed and merged in. Nothing here writes TOML by hand.

use std::path::Path;

use toml::{Table, Value};

/// The built-in roles, each granted everywhere to tokens whose `roles`
/// claim names it (the development provider's clients carry one each).
pub const ROLES: [&str; 6] = ["reader", "runner", "editor", "admin", "auditor", "approver"];

/// A configuration file's contents.
#[derive(Debug, Clone, Default)]
pub struct AirlockToml(Table);

impl AirlockToml {
    /// Sets `key` of the table `[section]`, making the table if needed.
    pub fn set(&mut self, section: &str, key: &str, value: impl Into<Value>) {
        section_mut(&mut self.0, section).insert(key.to_owned(), value.into());
    }

    /// Sets every key of `values` in the table `[section]`.
    pub fn set_all(&mut self, section: &str, values: &Table) {
        let table = section_mut(&mut self.0, section);
        for (key, value) in values {
            table.insert(key.clone(), value.clone());
        }
    }

    /// Appends `entry` to the array of tables `[[array]]`.
    pub fn push(&mut self, array: &str, entry: Table) {
        let list = self
            .0
            .entry(array.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        match list {
            Value::Array(list) => list.push(Value::Table(entry)),
            other => panic!("`{array}` is not an array of tables: {other}"),
        }
    }

    /// The same configuration with one more `[[grants]]` entry.
    pub fn with_grant(mut self, grant: Grant) -> Self {
        self.push("grants", grant.0);
        self
    }

    /// The same configuration with one more `[[issuers]]` entry.
    pub fn with_issuer(mut self, issuer: Issuer) -> Self {
        self.push("issuers", issuer.0);
        self
    }

    /// The first `[[grants]]` entry of `role`, to change it in place.
    pub fn grant_mut(&mut self, role: &str) -> &mut Table {
        let grants = match self.0.get_mut("grants") {
            Some(Value::Array(grants)) => grants,
            _ => panic!("the configuration has no grants"),
        };
        grants
            .iter_mut()
            .filter_map(Value::as_table_mut)
            .find(|grant| grant.get("role").and_then(Value::as_str) == Some(role))
            .unwrap_or_else(|| panic!("no grant of role {role}"))
    }

    /// Parses `text` as TOML and merges it in: tables key by key, arrays of
    /// tables appended, any other value replaced. Invalid TOML panics with
    /// the text, as a mistake in the test.
    pub fn merge_text(&mut self, text: &str) {
        let extra: Table = text
            .parse()
            .unwrap_or_else(|e| panic!("extra configuration is not TOML ({e}):\n{text}"));
        merge(&mut self.0, extra);
    }

    /// The TOML text.
    pub fn text(&self) -> String {
        self.0.to_string()
    }

    /// Writes the TOML text to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.text())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

impl std::fmt::Display for AirlockToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The table `[name]` of `table`, made empty if missing.
fn section_mut<'a>(table: &'a mut Table, name: &str) -> &'a mut Table {
    let value = table
        .entry(name.to_owned())
        .or_insert_with(|| Value::Table(Table::new()));
    match value {
        Value::Table(section) => section,
        other => panic!("`{name}` is not a table: {other}"),
    }
}

/// Merges `extra` into `into` (see [`AirlockToml::merge_text`]).
fn merge(into: &mut Table, extra: Table) {
    for (key, value) in extra {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(mine)), Value::Table(theirs)) => merge(mine, theirs),
            (Some(Value::Array(mine)), Value::Array(theirs))
                if mine.iter().all(Value::is_table)
                    && !theirs.is_empty()
                    && theirs.iter().all(Value::is_table) =>
            {
                mine.extend(theirs);
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// A TOML array of strings.
fn strings(values: &[&str]) -> Value {
    Value::Array(values.iter().map(|v| Value::from(*v)).collect())
}

/// One `[[grants]]` entry.
#[derive(Debug, Clone)]
pub struct Grant(Table);

impl Grant {
    /// `role` for tokens whose `key` (`sub`, `client_id`, `role`...) is
    /// `value`: `match = { key = value }`.
    pub fn matching(role: &str, key: &str, value: &str) -> Self {
        let mut matcher = Table::new();
        matcher.insert(key.to_owned(), value.into());
        let mut grant = Table::new();
        grant.insert("role".to_owned(), role.into());
        grant.insert("match".to_owned(), Value::Table(matcher));
        Self(grant)
    }

    /// `role` for tokens whose claim `claim` holds `value`.
    pub fn on_claim(role: &str, claim: &str, value: &str) -> Self {
        let mut grant = Self::matching(role, "claim", claim);
        if let Some(Value::Table(matcher)) = grant.0.get_mut("match") {
            matcher.insert("value".to_owned(), value.into());
        }
        grant
    }

    /// The built-in `role` on the `roles` claim, as in the demo.
    pub fn role(role: &str) -> Self {
        Self::on_claim(role, "roles", role)
    }

    /// Only in these workspaces.
    pub fn workspaces(mut self, workspaces: &[&str]) -> Self {
        self.0.insert("workspaces".to_owned(), strings(workspaces));
        self
    }

    /// Only on these connections (or `tag:` selectors).
    pub fn connections(mut self, connections: &[&str]) -> Self {
        self.0
            .insert("connections".to_owned(), strings(connections));
        self
    }
}

/// One `[[issuers]]` entry.
#[derive(Debug, Clone)]
pub struct Issuer(Table);

impl Issuer {
    /// Tokens of `issuer` for these audiences.
    pub fn new(issuer: &str, audiences: &[&str]) -> Self {
        let mut table = Table::new();
        table.insert("issuer".to_owned(), issuer.into());
        table.insert("audiences".to_owned(), strings(audiences));
        Self(table)
    }

    /// Sets another key (`token_type`, `console_client_id`...).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// The entry as a table.
    pub fn into_table(self) -> Table {
        self.0
    }
}

/// A secret read from the environment variable `var`: `{ env = "VAR" }`.
pub fn secret_env(var: &str) -> Value {
    let mut table = Table::new();
    table.insert("env".to_owned(), var.into());
    Value::Table(table)
}

/// A secret read from the file at `path`: `{ file = "PATH" }`.
pub fn secret_file(path: &Path) -> Value {
    let mut table = Table::new();
    table.insert("file".to_owned(), path.display().to_string().into());
    Value::Table(table)
}

/// Quick `[jobs]` settings: one-second tracking, short backoff and leases.
pub fn fast_jobs() -> Table {
    [
        ("poll_interval_secs", 1),
        ("backoff_base_secs", 1),
        ("backoff_max_secs", 2),
        ("busy_retry_secs", 1),
        ("lease_secs", 5),
        ("dispatch_concurrency", 8),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), Value::Integer(value)))
    .collect()
}
