//! `AIRLOCK_A__B__C=value` environment overrides, applied to the file's
//! table before it is parsed.

use super::{ConfigError, ENV_PREFIX};

/// Applies `AIRLOCK_A__B__C=value` variables to `table`; returns the names of
/// the variables applied, for error messages.
pub(super) fn apply_env_overrides(
    table: &mut toml::Table,
    env: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let mut applied = Vec::new();
    let mut vars: Vec<_> = env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && name.contains("__"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var: name.clone(),
                message: "empty path segment".to_owned(),
            });
        }
        let value = parse_env_value(raw);
        set_path(table, &path, value).map_err(|message| ConfigError::Env {
            var: name.clone(),
            message,
        })?;
        applied.push(name.clone());
    }
    Ok(applied)
}

/// A TOML value when the text is one (`8080`, `true`, `["a", "b"]`), else a string.
fn parse_env_value(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match probe.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("empty path")?;
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return Ok(());
    }
    let child = table
        .entry(first.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    set_in_value(child, first, rest, value)
}

fn set_in_value(
    node: &mut toml::Value,
    name: &str,
    rest: &[String],
    value: toml::Value,
) -> Result<(), String> {
    match node {
        toml::Value::Table(t) => set_path(t, rest, value),
        toml::Value::Array(items) => {
            let (index, deeper) = rest.split_first().ok_or("empty path")?;
            let i: usize = index
                .parse()
                .map_err(|_| format!("`{name}` is a list: expected an index, found `{index}`"))?;
            if i > items.len() {
                return Err(format!(
                    "`{name}` has {} entries: index {i} would leave a gap",
                    items.len()
                ));
            }
            if i == items.len() {
                items.push(toml::Value::Table(toml::Table::new()));
            }
            if deeper.is_empty() {
                items[i] = value;
                Ok(())
            } else {
                set_in_value(&mut items[i], index, deeper, value)
            }
        }
        _ => Err(format!("`{name}` is not a table")),
    }
}
