//! Custom link domains and their certificates, as the store keeps them
//! (`domains`, migration 0005): who added a domain, the TXT token that
//! proves it is theirs, whether it was seen, and the certificate the
//! fleet serves for it. Every query here runs on both databases.

use super::backend::{on_pool, Backend};
use super::error::StoreError;

/// A custom domain as stored, without its certificate's PEM.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Domain {
    /// The host name, lower case.
    pub host: String,
    /// The API key id that added it; `None`: the operator.
    pub owner: Option<String>,
    /// The value of the TXT record that proves control.
    pub token: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When the TXT record was first seen; `None`: not yet.
    pub verified_at: Option<i64>,
    /// The last TXT check.
    pub checked_at: Option<i64>,
    /// Why the last TXT check failed.
    pub check_error: Option<String>,
    /// The served certificate's serial number, hex.
    pub serial: Option<String>,
    /// The served certificate's `notAfter`, Unix seconds.
    pub not_after: Option<i64>,
    /// When the served certificate was stored.
    pub issued_at: Option<i64>,
    /// Orders failed in a row (0 after a success).
    pub failures: i64,
    /// No order starts before this (Unix seconds): the backoff.
    pub next_order_at: i64,
    /// Why the last order failed.
    pub order_error: Option<String>,
}

/// A certificate as a gateway loads it.
#[derive(Debug, Clone)]
pub struct StoredCertificate {
    /// The chain, leaf first, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
    /// The leaf's serial, hex.
    pub serial: String,
}

/// A certificate an order brought, to keep.
#[derive(Debug, Clone)]
pub struct NewCertificate<'a> {
    /// The chain, leaf first, PEM.
    pub cert_pem: &'a str,
    /// The private key, PEM.
    pub key_pem: &'a str,
    /// The leaf's serial, hex.
    pub serial: &'a str,
    /// The leaf's `notAfter`, Unix seconds.
    pub not_after: i64,
}

/// The columns of a [`Domain`], in its order.
macro_rules! domain_columns {
    () => {
        "host, owner, token, created_at, verified_at, checked_at, check_error, serial, \
         not_after, issued_at, failures, next_order_at, order_error"
    };
}

impl Backend {
    /// Adds `host` for `owner` with `token`; `Conflict` when it is taken
    /// (by anyone: a domain has one owner).
    pub async fn add_domain(
        &self,
        host: &str,
        owner: Option<&str>,
        token: &str,
        now: i64,
    ) -> Result<Domain, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO domains (host, owner, token, created_at) VALUES ($1, $2, $3, $4) RETURNING ",
            domain_columns!()
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(SQL)
                .bind(host)
                .bind(owner)
                .bind(token)
                .bind(now)
                .fetch_one(pool)
                .await?
        }))
    }

    /// The domain `host`, if `owner` (`None`: anyone's) has it.
    pub async fn domain(
        &self,
        host: &str,
        owner: Option<&str>,
    ) -> Result<Option<Domain>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            domain_columns!(),
            " FROM domains WHERE host = $1 AND ($2 IS NULL OR owner = $2)"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(SQL).bind(host).bind(owner).fetch_optional(pool).await?
        }))
    }

    /// The domains of `owner` (`None`: every domain), by host.
    pub async fn domains(&self, owner: Option<&str>) -> Result<Vec<Domain>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            domain_columns!(),
            " FROM domains WHERE ($1 IS NULL OR owner = $1) ORDER BY host"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(SQL).bind(owner).fetch_all(pool).await?
        }))
    }

    /// Removes `host` if `owner` (`None`: anyone) has it, with its
    /// certificate; whether there was one.
    pub async fn remove_domain(&self, host: &str, owner: Option<&str>) -> Result<bool, StoreError> {
        let removed = on_pool!(self, pool => {
            sqlx::query("DELETE FROM domains WHERE host = $1 AND ($2 IS NULL OR owner = $2)")
                .bind(host)
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(removed > 0)
    }

    /// Records a TXT check of `host` at `now`: seen (`None`), which
    /// verifies it for good, or why not. The domain as it now is.
    pub async fn domain_checked(
        &self,
        host: &str,
        now: i64,
        error: Option<&str>,
    ) -> Result<Option<Domain>, StoreError> {
        const SQL: &str = concat!(
            "UPDATE domains SET checked_at = $2, check_error = $3, \
             verified_at = CASE WHEN $3 IS NULL THEN COALESCE(verified_at, $2) ELSE verified_at END \
             WHERE host = $1 RETURNING ",
            domain_columns!()
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(SQL).bind(host).bind(now).bind(error).fetch_optional(pool).await?
        }))
    }

    /// Domains not verified yet whose last check is older than `before`.
    pub async fn unverified_domains(&self, before: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT host FROM domains WHERE verified_at IS NULL \
                 AND (checked_at IS NULL OR checked_at < $1) ORDER BY host",
            )
            .bind(before)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Verified domains that need a certificate at `now`: none yet, or one
    /// that expires before `renew_by`; past their backoff.
    pub async fn domains_to_order(
        &self,
        now: i64,
        renew_by: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT host FROM domains WHERE verified_at IS NOT NULL AND next_order_at <= $1 \
                 AND (cert_pem IS NULL OR not_after IS NULL OR not_after < $2) ORDER BY host",
            )
            .bind(now)
            .bind(renew_by)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Keeps `cert` as `host`'s certificate, clearing its failures; false
    /// when the domain was removed meanwhile.
    pub async fn save_certificate(
        &self,
        host: &str,
        cert: &NewCertificate<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let saved = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE domains SET cert_pem = $2, key_pem = $3, serial = $4, not_after = $5, \
                 issued_at = $6, failures = 0, next_order_at = 0, order_error = NULL WHERE host = $1",
            )
            .bind(host)
            .bind(cert.cert_pem)
            .bind(cert.key_pem)
            .bind(cert.serial)
            .bind(cert.not_after)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(saved > 0)
    }

    /// Records a failed order of `host`: no other before `next_at`.
    pub async fn order_failed(
        &self,
        host: &str,
        error: &str,
        next_at: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE domains SET failures = failures + 1, next_order_at = $3, order_error = $2 \
                 WHERE host = $1",
            )
            .bind(host)
            .bind(error)
            .bind(next_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Every domain with a certificate, and its serial: what a gateway
    /// compares with what it serves.
    pub async fn certificate_serials(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT host, serial FROM domains WHERE cert_pem IS NOT NULL AND key_pem IS NOT NULL \
                 AND serial IS NOT NULL ORDER BY host",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// `host`'s certificate and key.
    pub async fn certificate(&self, host: &str) -> Result<Option<StoredCertificate>, StoreError> {
        let row: Option<(String, String, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT cert_pem, key_pem, serial FROM domains WHERE host = $1 \
                 AND cert_pem IS NOT NULL AND key_pem IS NOT NULL AND serial IS NOT NULL",
            )
            .bind(host)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(cert_pem, key_pem, serial)| StoredCertificate {
            cert_pem,
            key_pem,
            serial,
        }))
    }
}
