//! What the fleet shares to order certificates (migration 0005): HTTP-01
//! key authorizations by token (any gateway answers the CA), leases (one
//! gateway orders), and the ACME account of each directory.

use super::backend::{on_pool, Backend};
use super::error::StoreError;

impl Backend {
    /// Keeps the key authorization of `token`, for `host`'s order.
    pub async fn put_challenge(
        &self,
        token: &str,
        key_authorization: &str,
        host: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO acme_challenges (token, key_authorization, host, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (token) DO UPDATE SET \
                 key_authorization = excluded.key_authorization, host = excluded.host, \
                 created_at = excluded.created_at",
            )
            .bind(token)
            .bind(key_authorization)
            .bind(host)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The key authorization of `token`, while its order runs.
    pub async fn challenge(&self, token: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT key_authorization FROM acme_challenges WHERE token = $1")
                .bind(token)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Forgets the challenges of `host`'s orders, and any older than
    /// `before` (an order cut short).
    pub async fn remove_challenges(&self, host: &str, before: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM acme_challenges WHERE host = $1 OR created_at < $2")
                .bind(host)
                .bind(before)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Takes or keeps the lease `name` for `holder` until `until`: it is
    /// taken when free, expired at `now`, or already `holder`'s. One
    /// conditional statement, so two gateways never both get it.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let taken = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO acme_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_at = excluded.expires_at \
                 WHERE acme_leases.holder = excluded.holder OR acme_leases.expires_at < $4",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(taken == 1)
    }

    /// Gives the lease `name` up, if `holder` has it (a gateway stopping).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM acme_leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The credentials of the account at `directory`, JSON.
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT credentials FROM acme_accounts WHERE directory = $1")
                .bind(directory)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Keeps the account of `directory`, unless one is kept already.
    pub async fn put_acme_account(
        &self,
        directory: &str,
        credentials: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO acme_accounts (directory, credentials, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (directory) DO NOTHING",
            )
            .bind(directory)
            .bind(credentials)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
