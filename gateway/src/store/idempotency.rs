//! Answers kept for `Idempotency-Key`: a create retried with the same key
//! gets the first answer instead of making a second link.

use super::backend::{on_pool, Backend};
use super::error::StoreError;

/// How long an answer is kept (the IETF draft suggests at least a day).
pub const KEEP_SECONDS: i64 = 24 * 3600;

/// What a claim on a key found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is new: this request runs and then [`Backend::answered`].
    Fresh,
    /// A request with this key ran: its status and body, and whether it
    /// was the same request.
    Answered {
        /// The first answer's status.
        status: u16,
        /// The first answer's body.
        body: String,
        /// Whether this request's body hashes as the first one's did.
        same_request: bool,
    },
    /// A request with this key is still running.
    Running,
}

impl Backend {
    /// Claims `key` of `owner` for a request whose body hashes to `hash`.
    pub async fn claim_idempotency(
        &self,
        owner: &str,
        key: &str,
        hash: &str,
        now: i64,
    ) -> Result<Claim, StoreError> {
        on_pool!(self, pool => {
            // A claim older than the keep window is someone else's past.
            sqlx::query("DELETE FROM idempotency WHERE owner = $1 AND idem_key = $2 AND created_at < $3")
                .bind(owner)
                .bind(key)
                .bind(now - KEEP_SECONDS)
                .execute(pool)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO idempotency (owner, idem_key, request_hash, status, body, created_at) \
                 VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT DO NOTHING",
            )
            .bind(owner)
            .bind(key)
            .bind(hash)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(Claim::Fresh);
            }
            let row: Option<(String, i64, String)> = sqlx::query_as(
                "SELECT request_hash, status, body FROM idempotency WHERE owner = $1 AND idem_key = $2",
            )
            .bind(owner)
            .bind(key)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                // Released between the two statements: run it again.
                None => Claim::Running,
                Some((_, 0, _)) => Claim::Running,
                Some((first, status, body)) => Claim::Answered {
                    status: u16::try_from(status).unwrap_or(500),
                    body,
                    same_request: first == hash,
                },
            })
        })
    }

    /// Keeps the answer to `owner`'s request with `key`.
    pub async fn answered(
        &self,
        owner: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE idempotency SET status = $3, body = $4 WHERE owner = $1 AND idem_key = $2")
                .bind(owner)
                .bind(key)
                .bind(i64::from(status))
                .bind(body)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Gives up the claim on `key` (the request failed in a way a retry
    /// may fix).
    pub async fn release_idempotency(&self, owner: &str, key: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM idempotency WHERE owner = $1 AND idem_key = $2 AND status = 0")
                .bind(owner)
                .bind(key)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Forgets answers older than the keep window.
    pub async fn prune_idempotency(&self, now: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
                .bind(now - KEEP_SECONDS)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
