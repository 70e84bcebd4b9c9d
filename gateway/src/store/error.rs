//! What can go wrong with the store, sorted by what the caller does about
//! it: a request answers `503` for [`StoreError::Unavailable`], the API a
//! `409` for [`StoreError::Conflict`].

use crate::metrics::StoreFailure;

/// A store operation that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connect, pool or I/O failure, or a
    /// timeout): answers that need it wait for it to come back.
    #[error("store unreachable: {0}")]
    Unavailable(String),
    /// A unique key is taken (host and code, or owner and external id).
    #[error("already exists: {0}")]
    Conflict(String),
    /// A row the gateway cannot read back (a hand-edited column, say).
    #[error("bad row: {0}")]
    BadRow(String),
    /// The database lacks what the migrations create.
    #[error("store schema: {0}")]
    Schema(&'static str),
    /// `[store]` itself is wrong.
    #[error("{0}")]
    Config(String),
    /// Any other database error.
    #[error("store query failed: {0}")]
    Query(String),
}

impl StoreError {
    /// How `gateway_store_errors_total` counts it.
    pub fn kind(&self) -> StoreFailure {
        match self {
            StoreError::Unavailable(_) => StoreFailure::Unavailable,
            StoreError::Conflict(_) => StoreFailure::Conflict,
            StoreError::BadRow(_) => StoreFailure::BadRow,
            StoreError::Schema(_) => StoreFailure::Schema,
            StoreError::Config(_) => StoreFailure::Config,
            StoreError::Query(_) => StoreFailure::Query,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(d.message().to_string())
            }
            sqlx::Error::Database(d) if is_shutdown(d.code().as_deref()) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::BadRow(e.to_string())
            }
            _ => StoreError::Query(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
            other => StoreError::Query(format!("migration: {other}")),
        }
    }
}

/// PostgreSQL's codes for a server going away (class 57P: operator
/// intervention, e.g. `admin_shutdown`) and for connection failures
/// (class 08).
fn is_shutdown(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("57P") || c.starts_with("08"))
}
