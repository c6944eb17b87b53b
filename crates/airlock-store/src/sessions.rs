//! The web console's sessions and logins in flight, as rows.
//!
//! Rows are found by hashes (of the cookie's id, of the login's `state`),
//! so that a copy of the database opens no browser session. A session's
//! creation and deletion are written together with their audit record.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};
use airlock_domain::audit;

/// A signed-in browser, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Hex SHA-256 of the cookie's id.
    pub id_hash: String,
    pub issuer: String,
    pub subject: String,
    /// The verified principal, as JSON.
    pub principal: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub expires_at: i64,
}

/// The CSRF token is a credential of sorts: keep it out of `Debug`.
impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A login between the redirect to the identity provider and its callback.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginRow {
    /// Hex SHA-256 of `state`.
    pub state_hash: String,
    pub issuer: String,
    pub code_verifier: String,
    pub nonce: String,
    pub redirect_uri: String,
    pub return_to: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The verifier and nonce stay out of `Debug`.
impl std::fmt::Debug for LoginRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRow")
            .field("issuer", &self.issuer)
            .field("redirect_uri", &self.redirect_uri)
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn decode_session(row: &AnyRow) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        id_hash: row.try_get("id_hash")?,
        issuer: row.try_get("issuer")?,
        subject: row.try_get("subject")?,
        principal: row.try_get("principal")?,
        csrf_token: row.try_get("csrf_token")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl Store {
    /// Stores a new session with the audit record of the login, in one
    /// transaction.
    pub async fn insert_session(
        &self,
        session: &SessionRow,
        login: &audit::Entry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, issuer, subject, principal, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.id_hash)
        .bind(&session.issuer)
        .bind(&session.subject)
        .bind(&session.principal)
        .bind(&session.csrf_token)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?;
        super::audit::append(&mut tx, login, session.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session whose id hashes to `id_hash`, if it has not expired.
    pub async fn get_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, issuer, subject, principal, csrf_token, created_at, expires_at \
             FROM console_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode_session).transpose()
    }

    /// Ends a session; with `logout`, writes its audit record in the same
    /// transaction (only when there was a session to end). True when a
    /// session was deleted.
    pub async fn delete_session(
        &self,
        id_hash: &str,
        now: i64,
        logout: Option<&audit::Entry>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if deleted && let Some(entry) = logout {
            super::audit::append(&mut tx, entry, now).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Stores a login in flight.
    pub async fn insert_login(&self, login: &LoginRow) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        sqlx::query(
            "INSERT INTO console_logins (state_hash, issuer, code_verifier, nonce, redirect_uri, return_to, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&login.state_hash)
        .bind(&login.issuer)
        .bind(&login.code_verifier)
        .bind(&login.nonce)
        .bind(&login.redirect_uri)
        .bind(&login.return_to)
        .bind(login.created_at)
        .bind(login.expires_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Takes a login in flight: it is deleted whatever happens next, so a
    /// `state` (and its code verifier) serves once. `None` when unknown or
    /// expired.
    pub async fn take_login(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<LoginRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT state_hash, issuer, code_verifier, nonce, redirect_uri, return_to, created_at, expires_at \
             FROM console_logins WHERE state_hash = $1",
        )
        .bind(state_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let deleted = sqlx::query("DELETE FROM console_logins WHERE state_hash = $1")
            .bind(state_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        let login = LoginRow {
            state_hash: row.try_get("state_hash")?,
            issuer: row.try_get("issuer")?,
            code_verifier: row.try_get("code_verifier")?,
            nonce: row.try_get("nonce")?,
            redirect_uri: row.try_get("redirect_uri")?,
            return_to: row.try_get("return_to")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        };
        // Another replica took it first: it is that replica's.
        Ok((deleted == 1 && login.expires_at > now).then_some(login))
    }

    /// Deletes expired sessions and logins; how many rows went.
    pub async fn purge_console(&self, now: i64) -> Result<u64, StoreError> {
        let mut conn = self.writer().await?;
        let sessions = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        let logins = sqlx::query("DELETE FROM console_logins WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        Ok(sessions + logins)
    }
}
