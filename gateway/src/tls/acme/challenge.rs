//! HTTP-01 answers (RFC 8555 §8.3): the CA fetches
//! `http://<host>/.well-known/acme-challenge/<token>` and expects the key
//! authorization of that token. The gateway that orders keeps it in the
//! store before telling the CA to look, so whichever gateway of the fleet
//! the CA reaches answers it; a small cache keeps the answer in memory for
//! the CA's repeated requests (it asks from several places).

use moka::sync::Cache;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::StoreOp;
use crate::store::{Store, StoreError};

/// The path prefix of HTTP-01 requests.
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// How long a key authorization is kept in memory: longer than the CA's
/// validation takes, shorter than the next order of the same domain.
const KEEP: Duration = Duration::from_secs(300);
/// How long a token the store does not have is remembered as unknown, so
/// a client asking for made-up tokens costs one store query per token
/// and this long, not one per request. Real tokens are random and in the
/// store before the CA is told to look, so none is asked for before.
const UNKNOWN: Duration = Duration::from_secs(10);

/// The token of an HTTP-01 request's path: base64url characters only
/// (RFC 8555 §8.1), else it is not a challenge and the rules answer it.
pub fn token(path: &str) -> Option<&str> {
    let token = path.strip_prefix(PREFIX)?;
    let ok = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(token)
}

/// Key authorizations by token: in memory, else from the store.
pub struct Challenges {
    store: Arc<Store>,
    cache: Cache<String, Arc<str>>,
    unknown: Cache<String, ()>,
}

impl Challenges {
    /// Answers from `store`.
    pub fn new(store: Arc<Store>) -> Challenges {
        Challenges {
            store,
            cache: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(KEEP)
                .build(),
            unknown: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(UNKNOWN)
                .build(),
        }
    }

    /// The key authorization of `token`, if this gateway has it in memory
    /// (the fast path answers with it; otherwise the pipeline asks the
    /// store).
    pub fn cached(&self, token: &str) -> Option<Arc<str>> {
        self.cache.get(token)
    }

    /// The key authorization of `token`, from memory or the store.
    pub async fn lookup(&self, token: &str) -> Result<Option<Arc<str>>, StoreError> {
        if let Some(found) = self.cache.get(token) {
            return Ok(Some(found));
        }
        if self.unknown.contains_key(token) {
            return Ok(None);
        }
        let t = token.to_string();
        let found = self
            .store
            .query(
                StoreOp::Domains,
                move |b| async move { b.challenge(&t).await },
            )
            .await?
            .map(Arc::<str>::from);
        match &found {
            Some(f) => self.cache.insert(token.to_string(), f.clone()),
            None => self.unknown.insert(token.to_string(), ()),
        }
        Ok(found)
    }

    /// Keeps `token`'s answer: in the store for the fleet, and in memory
    /// here.
    pub async fn put(
        &self,
        token: &str,
        key_authorization: &str,
        host: &str,
    ) -> Result<(), StoreError> {
        let (t, k, h) = (
            token.to_string(),
            key_authorization.to_string(),
            host.to_string(),
        );
        self.store
            .query(StoreOp::DomainsWrite, move |b| async move {
                b.put_challenge(&t, &k, &h, rules::unix_now()).await
            })
            .await?;
        self.unknown.invalidate(token);
        self.cache
            .insert(token.to_string(), Arc::from(key_authorization));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_base64url_tokens_under_the_prefix_are_challenges() {
        assert_eq!(
            token("/.well-known/acme-challenge/abc-DEF_123"),
            Some("abc-DEF_123")
        );
        assert_eq!(token("/.well-known/acme-challenge/"), None);
        assert_eq!(token("/.well-known/acme-challenge/a/b"), None);
        assert_eq!(token("/.well-known/acme-challenge/a%2Fb"), None);
        assert_eq!(token("/.well-known/other/abc"), None);
        assert_eq!(token("/abc"), None);
    }
}
