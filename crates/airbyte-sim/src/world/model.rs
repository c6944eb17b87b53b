//! The world's model: workspaces, sources and destinations (actors), tags,
//! connections with their schedule, stream catalog and job behaviour; plus what
//! fixtures and bulk additions share: the value checks and the masked connector
//! configurations actors default to.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// A connection's lifecycle state as the public API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConnectionStatus {
    #[default]
    Active,
    Inactive,
    Deprecated,
}

impl ConnectionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::Inactive => "inactive",
            ConnectionStatus::Deprecated => "deprecated",
        }
    }
}

/// When Airbyte itself would run a connection.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Schedule {
    #[default]
    Manual,
    Cron {
        cron: String,
        #[serde(default = "utc")]
        timezone: String,
    },
    Basic {
        every: u32,
        unit: String,
    },
}

fn utc() -> String {
    "UTC".to_owned()
}

impl Schedule {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Schedule::Manual => "manual",
            Schedule::Cron { .. } => "cron",
            Schedule::Basic { .. } => "basic",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) data_residency: String,
    /// Deleted through the API: kept as a tombstone, listed only with
    /// `includeDeleted`, still readable by id.
    pub(crate) deleted: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Actor {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) workspace_id: Uuid,
    pub(crate) actor_type: String,
    pub(crate) definition_id: Uuid,
    pub(crate) configuration: Value,
    pub(crate) created_at: i64,
    /// Deleted through the API (a tombstone, like a workspace's).
    pub(crate) deleted: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) color: String,
    pub(crate) workspace_id: Uuid,
}

#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    pub(crate) sync_mode: String,
    pub(crate) destination_sync_mode: String,
    pub(crate) cursor_field: Vec<String>,
    pub(crate) primary_key: Vec<Vec<String>>,
    pub(crate) selected: bool,
    pub(crate) fields: BTreeMap<String, String>,
}

impl Stream {
    /// The public API's single sync mode name for this stream's pair of modes.
    pub(crate) fn public_sync_mode(&self) -> &'static str {
        match (self.sync_mode.as_str(), self.destination_sync_mode.as_str()) {
            ("full_refresh", "append") => "full_refresh_append",
            ("full_refresh", "append_dedup") => "full_refresh_overwrite_deduped",
            ("incremental", "append") => "incremental_append",
            ("incremental", "append_dedup") => "incremental_deduped_history",
            _ => "full_refresh_overwrite",
        }
    }

    pub(crate) fn json_schema(&self) -> Value {
        let mut properties = serde_json::Map::new();
        for (field, ty) in &self.fields {
            let schema = match ty.as_str() {
                "timestamp" => {
                    json!({"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_with_timezone"})
                }
                "date" => json!({"type": ["null", "string"], "format": "date"}),
                other => json!({"type": ["null", other]}),
            };
            properties.insert(field.clone(), schema);
        }
        json!({
            "type": "object",
            "$schema": "http://json-schema.org/draft-07/schema#",
            "properties": properties,
        })
    }

    pub(crate) fn supported_sync_modes(&self) -> Vec<&'static str> {
        if self.sync_mode == "incremental" || !self.cursor_field.is_empty() {
            vec!["full_refresh", "incremental"]
        } else {
            vec!["full_refresh"]
        }
    }
}

/// How a connection's jobs behave.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) failure_rate: f64,
    pub(crate) attempt_failure_rate: f64,
    pub(crate) duration_secs: (u64, u64),
    pub(crate) rows: (u64, u64),
}

#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) workspace_id: Uuid,
    pub(crate) source_id: Uuid,
    pub(crate) destination_id: Uuid,
    pub(crate) status: ConnectionStatus,
    pub(crate) schedule: Schedule,
    pub(crate) namespace_definition: String,
    pub(crate) namespace_format: Option<String>,
    pub(crate) prefix: String,
    pub(crate) tag_ids: Vec<Uuid>,
    pub(crate) streams: Vec<Stream>,
    pub(crate) outcome: Outcome,
    pub(crate) created_at: i64,
}

pub(super) fn check_outcome(
    name: &str,
    failure_rate: f64,
    attempt_failure_rate: f64,
    duration: [u64; 2],
) -> Result<(), String> {
    for (key, v) in [
        ("failure_rate", failure_rate),
        ("attempt_failure_rate", attempt_failure_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(format!("{name:?}: {key} must be between 0 and 1, got {v}"));
        }
    }
    if duration[0] == 0 || duration[0] > duration[1] {
        return Err(format!(
            "{name:?}: duration_secs must be [min, max] with 1 <= min <= max"
        ));
    }
    Ok(())
}

pub(super) fn check_schedule(name: &str, schedule: &Schedule) -> Result<(), String> {
    if let Schedule::Basic { every, unit } = schedule {
        if *every == 0 {
            return Err(format!("{name:?}: a basic schedule needs every >= 1"));
        }
        if !matches!(
            unit.as_str(),
            "minutes" | "hours" | "days" | "weeks" | "months"
        ) {
            return Err(format!(
                "{name:?}: schedule unit must be minutes, hours, days, weeks or months"
            ));
        }
    }
    Ok(())
}

/// A masked configuration such as Airbyte shows for a connector of this type.
pub(super) fn default_configuration(actor_type: &str) -> Value {
    match actor_type {
        "postgres" | "mssql" => json!({
            "host": format!("{actor_type}.internal.example.com"),
            "port": 5432,
            "database": "app",
            // Sources list the schemas they read; destinations name the one
            // they write.
            "schemas": ["public"],
            "schema": "public",
            "username": "airbyte",
            "password": "**********",
        }),
        "mysql" => json!({
            "host": "mysql.internal.example.com",
            "port": 3306,
            "database": "app",
            "username": "airbyte",
            "password": "**********",
            "replication_method": {"method": "STANDARD"},
        }),
        "snowflake" => json!({
            "host": "acme.snowflakecomputing.com",
            "role": "AIRBYTE_ROLE",
            "warehouse": "AIRBYTE_WAREHOUSE",
            "database": "RAW",
            "schema": "PUBLIC",
            "username": "AIRBYTE_USER",
        }),
        "redshift" => json!({
            "host": "analytics.abc123.us-east-1.redshift.amazonaws.com",
            "port": 5439,
            "database": "dev",
            "schema": "public",
            "username": "airbyte",
            "password": "**********",
        }),
        "dev-null" => json!({"test_destination": {"test_destination_type": "SILENT"}}),
        "bigquery" => json!({
            "project_id": "acme-data",
            "dataset_location": "US",
            "dataset_id": "raw",
            "credentials_json": "**********",
        }),
        _ => json!({}),
    }
}
