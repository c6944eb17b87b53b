//! Which permission a request of Airbyte's public API needs, and on what.
//!
//! [`classify`] is pure and total: every method and path either maps to one
//! permission and one resource reference, or to `None`, which the front
//! answers 403 without calling Airbyte. Nothing is forwarded blindly.

use axum::http::Method;
use uuid::Uuid;

use airlock_domain::policy::Permission;

/// The lists the front filters to what the caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Connections,
    Jobs,
    Workspaces,
    Sources,
    Destinations,
}

impl Listing {
    /// The path segment of the list (`connections`).
    pub fn segment(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::Jobs => "jobs",
            Self::Workspaces => "workspaces",
            Self::Sources => "sources",
            Self::Destinations => "destinations",
        }
    }
}

/// What a request touches, before it is resolved to a policy resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceRef {
    /// A list, filtered per item.
    List(Listing),
    /// One connection, by id.
    Connection(Uuid),
    /// One job, by Airbyte's id: resolved to its connection.
    Job(i64),
    /// One workspace, by id.
    Workspace(Uuid),
    /// One source, by id: resolved to its workspace.
    Source(Uuid),
    /// One destination, by id: resolved to its workspace.
    Destination(Uuid),
    /// `POST /jobs`: the connection is the body's `connectionId`, and the
    /// body's `jobType` decides between jobs:sync and jobs:reset.
    NewJob,
    /// `POST /connections`: in the workspace of the body's `sourceId`.
    NewConnection,
    /// A creation in the workspace named by the body's `workspaceId`.
    NewInWorkspace,
    /// `GET /streams`: the source named by the query's `sourceId`.
    Streams,
    /// Nothing narrower: only a grant on all workspaces covers it.
    Global,
}

/// The permission and resource of `method path`, where `path` is relative
/// to `/api/public/v1` and carries no query (`/jobs/42`). `None` for any
/// route the front does not serve: unknown, malformed, or administrative
/// (users, permissions, organizations).
///
/// `POST /jobs` maps to jobs:sync; its handler asks [`job_permission`] for
/// the body's `jobType` (a reset needs jobs:reset).
pub fn classify(method: &Method, path: &str) -> Option<(Permission, ResourceRef)> {
    let rest = path.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    let read = *method == Method::GET;
    let write = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method);
    if !read && !write {
        return None;
    }
    let m = method.as_str();
    match segments.as_slice() {
        ["jobs", rest @ ..] => jobs(m, rest),
        ["connections", rest @ ..] => connections(m, rest),
        ["workspaces", rest @ ..] => workspaces(m, rest),
        [kind @ ("sources" | "destinations"), rest @ ..] => sources_or_destinations(m, kind, rest),
        ["streams"] => match m {
            "GET" => Some((Permission::ConnectionsRead, ResourceRef::Streams)),
            _ => None,
        },
        _ => None,
    }
}

/// `/jobs` and `/jobs/{id}` (`rest` is what follows `jobs`).
fn jobs(m: &str, rest: &[&str]) -> Option<(Permission, ResourceRef)> {
    use Permission::{JobsCancel, JobsRead, JobsSync};
    use ResourceRef as R;
    let found = match rest {
        [] => match m {
            "GET" => (JobsRead, R::List(Listing::Jobs)),
            "POST" => (JobsSync, R::NewJob),
            _ => return None,
        },
        [id] => {
            let id = job_id(id)?;
            match m {
                "GET" => (JobsRead, R::Job(id)),
                "DELETE" => (JobsCancel, R::Job(id)),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(found)
}

/// `/connections` and `/connections/{id}` (`rest` is what follows
/// `connections`).
fn connections(m: &str, rest: &[&str]) -> Option<(Permission, ResourceRef)> {
    use Permission::{AirbyteWrite, ConnectionsRead};
    use ResourceRef as R;
    let found = match rest {
        [] => match m {
            "GET" => (ConnectionsRead, R::List(Listing::Connections)),
            "POST" => (AirbyteWrite, R::NewConnection),
            _ => return None,
        },
        [id] => {
            let id = uuid(id)?;
            match m {
                "GET" => (ConnectionsRead, R::Connection(id)),
                "PATCH" | "DELETE" => (AirbyteWrite, R::Connection(id)),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(found)
}

/// `/workspaces`, `/workspaces/{id}` and its `oauthCredentials` (`rest` is
/// what follows `workspaces`).
fn workspaces(m: &str, rest: &[&str]) -> Option<(Permission, ResourceRef)> {
    use Permission::{AirbyteWrite, ConnectionsRead};
    use ResourceRef as R;
    let found = match rest {
        [] => match m {
            "GET" => (ConnectionsRead, R::List(Listing::Workspaces)),
            "POST" => (AirbyteWrite, R::Global),
            _ => return None,
        },
        [id] => {
            let id = uuid(id)?;
            match m {
                "GET" => (ConnectionsRead, R::Workspace(id)),
                "PATCH" | "DELETE" => (AirbyteWrite, R::Workspace(id)),
                _ => return None,
            }
        }
        [id, "oauthCredentials"] => {
            let id = uuid(id)?;
            match m {
                "PUT" => (AirbyteWrite, R::Workspace(id)),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(found)
}

/// `/sources/initiateOAuth`, and `/{kind}` and `/{kind}/{id}` for `kind`
/// `sources` or `destinations` (`rest` is what follows `kind`).
fn sources_or_destinations(
    m: &str,
    kind: &str,
    rest: &[&str],
) -> Option<(Permission, ResourceRef)> {
    use Permission::{AirbyteWrite, ConnectionsRead};
    use ResourceRef as R;
    let found = match rest {
        ["initiateOAuth"] if kind == "sources" => match m {
            "POST" => (AirbyteWrite, R::NewInWorkspace),
            _ => return None,
        },
        [] => match m {
            "GET" => (
                ConnectionsRead,
                R::List(if kind == "sources" {
                    Listing::Sources
                } else {
                    Listing::Destinations
                }),
            ),
            "POST" => (AirbyteWrite, R::NewInWorkspace),
            _ => return None,
        },
        [id] => {
            let id = uuid(id)?;
            let resource = if kind == "sources" {
                R::Source(id)
            } else {
                R::Destination(id)
            };
            match m {
                "GET" => (ConnectionsRead, resource),
                "PATCH" | "PUT" | "DELETE" => (AirbyteWrite, resource),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(found)
}

/// The permission a `POST /jobs` body's `jobType` needs; `None` for a type
/// Airlock does not know (refused without asking Airbyte).
pub fn job_permission(job_type: &str) -> Option<Permission> {
    match job_type {
        "sync" => Some(Permission::JobsSync),
        // `clear` is the newer name of `reset`; `refresh` re-reads (and may
        // truncate) everything: Airbyte refuses it today, and it is treated
        // as the destructive kind should it ever be accepted.
        "reset" | "clear" | "refresh" => Some(Permission::JobsReset),
        _ => None,
    }
}

/// A canonical UUID (what Airbyte's ids are); anything else, including
/// percent-encoded text, is not.
fn uuid(segment: &str) -> Option<Uuid> {
    if segment.len() != 36 {
        return None;
    }
    Uuid::parse_str(segment).ok()
}

/// A positive 64-bit job id in plain decimal.
fn job_id(segment: &str) -> Option<i64> {
    if segment.is_empty() || segment.len() > 19 || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    const ID: &str = "0d9e2f4a-6c1b-4f0e-9a3d-2b7c8e5f1a40";

    fn id() -> Uuid {
        Uuid::parse_str(ID).expect("uuid")
    }

    fn c(method: Method, path: &str) -> Option<(Permission, ResourceRef)> {
        classify(&method, path)
    }

    #[test]
    fn reads_need_read_permissions_on_what_they_touch() {
        use ResourceRef as R;
        let cases = [
            ("/jobs", JobsRead, R::List(Listing::Jobs)),
            ("/jobs/42", JobsRead, R::Job(42)),
            (
                "/connections",
                ConnectionsRead,
                R::List(Listing::Connections),
            ),
            (
                &format!("/connections/{ID}"),
                ConnectionsRead,
                R::Connection(id()),
            ),
            ("/workspaces", ConnectionsRead, R::List(Listing::Workspaces)),
            (
                &format!("/workspaces/{ID}"),
                ConnectionsRead,
                R::Workspace(id()),
            ),
            ("/sources", ConnectionsRead, R::List(Listing::Sources)),
            (&format!("/sources/{ID}"), ConnectionsRead, R::Source(id())),
            (
                "/destinations",
                ConnectionsRead,
                R::List(Listing::Destinations),
            ),
            (
                &format!("/destinations/{ID}"),
                ConnectionsRead,
                R::Destination(id()),
            ),
            ("/streams", ConnectionsRead, R::Streams),
        ];
        for (path, permission, resource) in cases {
            assert_eq!(c(Method::GET, path), Some((permission, resource)), "{path}");
        }
    }

    #[test]
    fn jobs_map_to_their_own_permissions() {
        assert_eq!(
            c(Method::POST, "/jobs"),
            Some((JobsSync, ResourceRef::NewJob))
        );
        assert_eq!(
            c(Method::DELETE, "/jobs/9007199254740993"),
            Some((JobsCancel, ResourceRef::Job(9_007_199_254_740_993)))
        );
        assert_eq!(job_permission("sync"), Some(JobsSync));
        for destructive in ["reset", "clear", "refresh"] {
            assert_eq!(
                job_permission(destructive),
                Some(JobsReset),
                "{destructive}"
            );
        }
        assert_eq!(job_permission("SYNC"), None);
        assert_eq!(job_permission(""), None);
        assert_eq!(c(Method::PUT, "/jobs"), None);
        assert_eq!(c(Method::PATCH, "/jobs/1"), None);
        assert_eq!(c(Method::POST, "/jobs/1"), None);
    }

    #[test]
    fn configuration_changes_need_airbyte_write() {
        use ResourceRef as R;
        let cases = [
            (Method::POST, "/connections".to_owned(), R::NewConnection),
            (
                Method::PATCH,
                format!("/connections/{ID}"),
                R::Connection(id()),
            ),
            (
                Method::DELETE,
                format!("/connections/{ID}"),
                R::Connection(id()),
            ),
            (Method::POST, "/workspaces".to_owned(), R::Global),
            (
                Method::PATCH,
                format!("/workspaces/{ID}"),
                R::Workspace(id()),
            ),
            (
                Method::DELETE,
                format!("/workspaces/{ID}"),
                R::Workspace(id()),
            ),
            (
                Method::PUT,
                format!("/workspaces/{ID}/oauthCredentials"),
                R::Workspace(id()),
            ),
            (Method::POST, "/sources".to_owned(), R::NewInWorkspace),
            (
                Method::POST,
                "/sources/initiateOAuth".to_owned(),
                R::NewInWorkspace,
            ),
            (Method::PATCH, format!("/sources/{ID}"), R::Source(id())),
            (Method::PUT, format!("/sources/{ID}"), R::Source(id())),
            (Method::DELETE, format!("/sources/{ID}"), R::Source(id())),
            (Method::POST, "/destinations".to_owned(), R::NewInWorkspace),
            (
                Method::PATCH,
                format!("/destinations/{ID}"),
                R::Destination(id()),
            ),
            (
                Method::PUT,
                format!("/destinations/{ID}"),
                R::Destination(id()),
            ),
            (
                Method::DELETE,
                format!("/destinations/{ID}"),
                R::Destination(id()),
            ),
        ];
        for (method, path, resource) in cases {
            assert_eq!(
                c(method.clone(), &path),
                Some((AirbyteWrite, resource)),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn unknown_malformed_and_administrative_routes_are_refused() {
        let refused = [
            (Method::GET, "".to_owned()),
            (Method::GET, "/".to_owned()),
            (Method::GET, "jobs".to_owned()),
            (Method::GET, "/jobs/".to_owned()),
            (Method::GET, "//jobs".to_owned()),
            (Method::GET, "/Jobs".to_owned()),
            (Method::GET, "/jobs/0".to_owned()),
            (Method::GET, "/jobs/-1".to_owned()),
            (Method::GET, "/jobs/+1".to_owned()),
            (Method::GET, "/jobs/1e3".to_owned()),
            (Method::GET, "/jobs/99999999999999999999".to_owned()),
            (Method::GET, "/jobs/42/attempts".to_owned()),
            (Method::GET, "/jobs/%34%32".to_owned()),
            (Method::GET, "/connections/not-a-uuid".to_owned()),
            (Method::GET, format!("/connections/{}", ID.replace('-', ""))),
            (Method::GET, format!("/connections/{{{ID}}}")),
            (Method::GET, format!("/connections/{ID}/")),
            (Method::GET, format!("/connections/{ID}/../../users")),
            (Method::GET, "/connections/..".to_owned()),
            (Method::PUT, format!("/connections/{ID}")),
            (Method::POST, format!("/connections/{ID}")),
            (Method::PUT, "/workspaces".to_owned()),
            (Method::GET, format!("/workspaces/{ID}/oauthCredentials")),
            (Method::GET, "/sources/initiateOAuth".to_owned()),
            (Method::POST, "/destinations/initiateOAuth".to_owned()),
            (Method::POST, "/streams".to_owned()),
            (Method::GET, "/users".to_owned()),
            (Method::GET, "/permissions".to_owned()),
            (Method::POST, "/permissions".to_owned()),
            (Method::GET, format!("/permissions/{ID}")),
            (Method::GET, "/organizations".to_owned()),
            (Method::GET, "/tags".to_owned()),
            (Method::GET, "/health".to_owned()),
            (Method::POST, "/applications/token".to_owned()),
            (Method::HEAD, "/jobs".to_owned()),
            (Method::OPTIONS, "/jobs".to_owned()),
            (Method::TRACE, "/jobs".to_owned()),
            (Method::CONNECT, "/jobs".to_owned()),
        ];
        for (method, path) in refused {
            assert_eq!(c(method.clone(), &path), None, "{method} {path}");
        }
        let custom = Method::from_bytes(b"PURGE").expect("method");
        assert_eq!(c(custom, "/jobs"), None);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let odd = [
            "/\u{0}",
            "/jobs/\u{10FFFF}",
            "/é",
            &"/a".repeat(10_000),
            "/jobs/٤٢",
        ];
        for path in odd {
            for method in [Method::GET, Method::POST, Method::DELETE] {
                assert_eq!(c(method, path), None, "{path:?}");
            }
        }
    }
}
