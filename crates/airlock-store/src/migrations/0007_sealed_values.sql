-- Secrets Airlock makes itself and every replica shares (the front's
-- signing key), sealed with a key derived from a configured secret: the
-- first replica to start stores one, the others read it.
CREATE TABLE sealed_values (
    name       TEXT PRIMARY KEY,
    sealed     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
