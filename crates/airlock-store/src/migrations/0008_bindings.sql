-- Names in grants, bound to Airbyte ids once (ARCHITECTURE.md, "Names in
-- grants are bound to ids"): a connection's slug, assigned when Airlock
-- first sees it and never given to another connection; a workspace name,
-- bound to the one workspace that had it at first resolution.
CREATE TABLE connection_slugs (
    connection_id TEXT PRIMARY KEY,
    slug          TEXT NOT NULL UNIQUE,
    assigned_at   BIGINT NOT NULL
);

CREATE TABLE workspace_bindings (
    name         TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    bound_at     BIGINT NOT NULL
);
