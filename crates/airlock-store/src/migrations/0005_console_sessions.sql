-- The web console's sessions and the logins in flight, shared by every
-- replica. Neither table holds a usable secret: a session is found by the
-- SHA-256 of the random id its cookie carries, a login by the SHA-256 of
-- its `state`.

-- A signed-in browser.
CREATE TABLE console_sessions (
    id_hash     TEXT PRIMARY KEY,           -- hex SHA-256 of the cookie's 256-bit id
    issuer      TEXT NOT NULL,              -- the issuer that vouched for the principal
    subject     TEXT NOT NULL,
    principal   TEXT NOT NULL,              -- the verified principal as JSON (claims included)
    csrf_token  TEXT NOT NULL,              -- sent back to its owner only, in X-CSRF-Token
    created_at  BIGINT NOT NULL,            -- unix ms
    expires_at  BIGINT NOT NULL             -- unix ms: min(token exp, created_at + session_ttl)
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- A login between the redirect to the identity provider and its callback
-- (one use, ten minutes).
CREATE TABLE console_logins (
    state_hash    TEXT PRIMARY KEY,         -- hex SHA-256 of `state`
    issuer        TEXT NOT NULL,            -- which configured issuer the browser was sent to
    code_verifier TEXT NOT NULL,            -- PKCE (RFC 7636)
    nonce         TEXT NOT NULL,            -- expected in the ID token
    redirect_uri  TEXT NOT NULL,            -- sent again with the code
    return_to     TEXT NOT NULL,            -- the console view to land on
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX console_logins_expiry ON console_logins (expires_at);
