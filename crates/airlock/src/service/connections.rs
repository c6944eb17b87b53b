//! Connections as a caller sees them.

use crate::web::{AppState, Caller};
use airlock_domain::policy::{Permission, Policy};
use airlock_services::connections::{ConnectionInfo, Snapshot};

use super::ServiceError;

/// Finds a connection by id or slug, refreshing the catalog once if needed.
pub async fn resolve(state: &AppState, reference: &str) -> Result<ConnectionInfo, ServiceError> {
    if reference.is_empty() || reference.len() > 200 {
        return Err(ServiceError::NotFound("connection"));
    }
    match state.catalog().resolve(reference).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(ServiceError::NotFound("connection")),
        Err(error) => {
            tracing::warn!(error = %error, "cannot list Airbyte connections");
            Err(ServiceError::Unavailable("Airbyte"))
        }
    }
}

/// The catalog, fetched first if it never was.
pub async fn catalog(state: &AppState) -> Result<std::sync::Arc<Snapshot>, ServiceError> {
    let snapshot = state.catalog().snapshot();
    if snapshot.fetched_at != 0 {
        return Ok(snapshot);
    }
    state.catalog().refresh_after_miss().await.map_err(|error| {
        tracing::warn!(error = %error, "cannot list Airbyte connections");
        ServiceError::Unavailable("Airbyte")
    })
}

/// One connection the caller may read (`connections:read` on it).
pub async fn get(
    state: &AppState,
    caller: &Caller,
    reference: &str,
) -> Result<ConnectionInfo, ServiceError> {
    let connection = resolve(state, reference).await?;
    caller
        .authorize(state, Permission::ConnectionsRead, &connection.resource())
        .await?;
    Ok(connection)
}

/// The caller's permissions on a connection (all but `audit:read`, which
/// is global).
pub fn permissions_on(
    policy: &Policy,
    caller: &Caller,
    connection: &ConnectionInfo,
) -> Vec<&'static str> {
    let resource = connection.resource();
    Permission::ALL
        .into_iter()
        .filter(|p| *p != Permission::AuditRead)
        .filter(|p| policy.allows(&caller.principal, *p, &resource))
        .map(Permission::as_str)
        .collect()
}
