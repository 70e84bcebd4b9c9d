//! API keys of the Links API: what a key may do, how its secret is made
//! and checked, and the queries that keep them. The secret is shown once,
//! when the key is made; the store keeps only its SHA-256 (a secret is 190
//! random bits, so a fast hash is enough: there is nothing to guess).

use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::backend::{on_pool, Backend};
use super::error::StoreError;

/// Letters that cannot be misread for one another (no 0/o, 1/l/i): used
/// for key ids, secrets and generated link codes.
pub const UNAMBIGUOUS: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// `n` random characters of [`UNAMBIGUOUS`].
pub fn random_text(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| UNAMBIGUOUS[rng.random_range(0..UNAMBIGUOUS.len())] as char)
        .collect()
}

/// A key as an operator sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// Public id, e.g. `k7gq2mz9xw4h`; the `owner` of the links it makes.
    pub id: String,
    /// Who it is for.
    pub name: String,
    /// Hosts it may create links on (`*.example.com` covers subdomains).
    pub hosts: Vec<String>,
    /// Whether it may create, change and delete (else read only).
    pub can_write: bool,
    /// Requests per second it may make, sustained.
    pub rate_per_second: u32,
    /// Requests it may make at once above the sustained rate.
    pub burst: u32,
    /// Links it may create per calendar month (UTC); none: no limit.
    pub monthly_quota: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; a revoked key is refused everywhere.
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    /// Whether the key may create links on `host` (normalized).
    pub fn covers(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| match h.strip_prefix("*.") {
            Some(parent) => host
                .strip_suffix(parent)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => h == host,
        })
    }
}

/// A key to make.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Who it is for.
    pub name: String,
    /// Hosts it may create links on.
    pub hosts: Vec<String>,
    /// Whether it may write.
    pub can_write: bool,
    /// Sustained requests per second.
    pub rate_per_second: u32,
    /// Requests at once above the rate.
    pub burst: u32,
    /// Links per calendar month.
    pub monthly_quota: Option<i64>,
}

/// A key's default sustained rate and burst.
pub const DEFAULT_RATE: u32 = 50;
/// See [`DEFAULT_RATE`].
pub const DEFAULT_BURST: u32 = 100;

impl NewKey {
    /// A key from what an operator typed: `rate` as `50/s` (or `50`),
    /// `hosts` as names or `*.parent` wildcards. Errors name the field.
    pub fn parse(
        name: &str,
        hosts: &[String],
        rate: Option<&str>,
        burst: Option<u32>,
        read_only: bool,
        monthly_quota: Option<i64>,
    ) -> Result<NewKey, (&'static str, String)> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err((
                "name",
                "must be 1 to 100 characters without control characters".into(),
            ));
        }
        let mut clean = Vec::new();
        for h in hosts.iter().flat_map(|h| h.split(',')) {
            let h = h.trim().to_ascii_lowercase();
            if h.is_empty() {
                continue;
            }
            let bare = h.strip_prefix("*.").unwrap_or(&h);
            let ok = !bare.is_empty()
                && bare.len() <= 253
                && bare.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err((
                    "hosts",
                    format!("`{h}` is not a host name or a `*.parent` wildcard"),
                ));
            }
            clean.push(h);
        }
        if clean.is_empty() {
            return Err((
                "hosts",
                "name at least one host the key may create links on".into(),
            ));
        }
        let rate_per_second = match rate {
            None => DEFAULT_RATE,
            Some(text) => {
                let n = text.trim().strip_suffix("/s").unwrap_or(text.trim());
                n.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or(("rate", format!("`{text}` is not a rate like `50/s`")))?
            }
        };
        let burst = burst.unwrap_or(if rate.is_some() {
            rate_per_second.saturating_mul(2)
        } else {
            DEFAULT_BURST
        });
        if burst == 0 {
            return Err(("burst", "must be at least 1".into()));
        }
        if monthly_quota.is_some_and(|q| q < 0) {
            return Err(("monthly_quota", "must be 0 or more".into()));
        }
        Ok(NewKey {
            name: name.to_string(),
            hosts: clean,
            can_write: !read_only,
            rate_per_second,
            burst,
            monthly_quota,
        })
    }
}

/// The SHA-256 of a secret, hex: how the store finds a key.
pub fn secret_hash(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    name: String,
    hosts: String,
    can_write: i64,
    rate_per_second: i64,
    burst: i64,
    monthly_quota: Option<i64>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl KeyRow {
    fn into_key(self) -> Result<ApiKey, StoreError> {
        let hosts = serde_json::from_str(&self.hosts)
            .map_err(|_| StoreError::BadRow(format!("api key {}: hosts", self.id)))?;
        Ok(ApiKey {
            id: self.id,
            name: self.name,
            hosts,
            can_write: self.can_write != 0,
            rate_per_second: u32::try_from(self.rate_per_second).unwrap_or(u32::MAX),
            burst: u32::try_from(self.burst).unwrap_or(u32::MAX),
            monthly_quota: self.monthly_quota,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

/// The columns of a key, in `KeyRow`'s order.
macro_rules! key_columns {
    () => {
        "id, name, hosts, can_write, rate_per_second, burst, monthly_quota, created_at, revoked_at"
    };
}

impl Backend {
    /// Makes a key; returns it and its secret (`gwk_<id>_<32 characters>`),
    /// which nothing keeps.
    pub async fn create_key(&self, key: &NewKey, now: i64) -> Result<(ApiKey, String), StoreError> {
        let id = format!("k{}", random_text(11));
        let secret = format!("gwk_{id}_{}", random_text(32));
        let hosts = serde_json::to_string(&key.hosts)
            .map_err(|e| StoreError::Query(format!("hosts: {e}")))?;
        const SQL: &str = concat!(
            "INSERT INTO api_keys (",
            key_columns!(),
            ", secret_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9) RETURNING ",
            key_columns!()
        );
        let row: KeyRow = on_pool!(self, pool => {
            sqlx::query_as(SQL)
                .bind(&id)
                .bind(&key.name)
                .bind(&hosts)
                .bind(i64::from(key.can_write))
                .bind(i64::from(key.rate_per_second))
                .bind(i64::from(key.burst))
                .bind(key.monthly_quota)
                .bind(now)
                .bind(secret_hash(&secret))
                .fetch_one(pool)
                .await?
        });
        Ok((row.into_key()?, secret))
    }

    /// The key whose secret hashes to `hash` ([`secret_hash`]), revoked
    /// or not.
    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE secret_hash = $1"
        );
        let row: Option<KeyRow> = on_pool!(self, pool => {
            sqlx::query_as(SQL).bind(hash).fetch_optional(pool).await?
        });
        row.map(KeyRow::into_key).transpose()
    }

    /// Every key, oldest first.
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys ORDER BY created_at, id"
        );
        let rows: Vec<KeyRow> = on_pool!(self, pool => {
            sqlx::query_as(SQL).fetch_all(pool).await?
        });
        rows.into_iter().map(KeyRow::into_key).collect()
    }

    /// Revokes the key `id` (by id, or by name when no id matches); the
    /// key revoked, or none when there is no such key.
    pub async fn revoke_key(&self, id: &str, now: i64) -> Result<Option<ApiKey>, StoreError> {
        const SQL: &str = concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) \
             WHERE id = $1 OR (name = $1 AND NOT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)) \
             RETURNING ",
            key_columns!()
        );
        let rows: Vec<KeyRow> = on_pool!(self, pool => {
            sqlx::query_as(SQL).bind(id).bind(now).fetch_all(pool).await?
        });
        match rows.len() {
            0 => Ok(None),
            1 => rows.into_iter().next().map(KeyRow::into_key).transpose(),
            n => Err(StoreError::Conflict(format!(
                "{n} keys are named `{id}`; revoke them by id"
            ))),
        }
    }

    /// Links `owner` created in the month starting at `month_start` (Unix
    /// seconds), deleted ones included.
    pub async fn created_in_month(&self, owner: &str, month_start: i64) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COALESCE(MAX(created), 0) FROM api_key_usage \
                 WHERE owner = $1 AND month_start = $2",
            )
            .bind(owner)
            .bind(month_start)
            .fetch_one(pool)
            .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hosts: &[&str]) -> ApiKey {
        ApiKey {
            id: "k1".into(),
            name: "n".into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            can_write: true,
            rate_per_second: 1,
            burst: 1,
            monthly_quota: None,
            created_at: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn hosts_cover_exact_names_and_wildcard_subdomains() {
        let k = key(&["go.example.com", "*.brand.com"]);
        assert!(k.covers("go.example.com"));
        assert!(!k.covers("example.com"));
        assert!(k.covers("a.brand.com"));
        assert!(k.covers("x.a.brand.com"));
        assert!(!k.covers("brand.com"));
        assert!(!k.covers("evilbrand.com"));
    }

    #[test]
    fn secrets_hash_to_hex_sha256() {
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(random_text(32).len(), 32);
        assert!(random_text(64).bytes().all(|b| UNAMBIGUOUS.contains(&b)));
    }
}
