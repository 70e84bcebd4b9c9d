//! The lease that makes one gateway of a fleet the one that checks TXT
//! records and orders certificates: a row in the store with a holder and
//! an expiry, taken with one conditional statement and renewed on every
//! tick. A gateway that dies lets it expire; another takes over then.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::StoreOp;
use crate::store::{random_text, Store, StoreError};

/// The lease's name in `acme_leases`.
const NAME: &str = "acme";

/// This gateway's claim on the lease.
pub struct Lease {
    store: Arc<Store>,
    holder: String,
    length: Duration,
}

impl Lease {
    /// A claim under a name of this process's own (host, pid and a random
    /// part: two processes never share one), lasting `length` unless
    /// renewed.
    pub fn new(store: Arc<Store>, length: Duration) -> Lease {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "gateway".into());
        Lease {
            store,
            holder: format!("{host}/{}/{}", std::process::id(), random_text(6)),
            length,
        }
    }

    /// Who this gateway is in the lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes the lease, or keeps it for another `length`: whether this
    /// gateway holds it now.
    pub async fn hold(&self) -> Result<bool, StoreError> {
        let holder = self.holder.clone();
        let length = self.length.as_secs().max(1) as i64;
        self.store
            .query(StoreOp::DomainsWrite, move |b| async move {
                let now = rules::unix_now();
                b.take_lease(NAME, &holder, now, now + length).await
            })
            .await
    }

    /// Gives the lease up (a graceful stop), so another gateway need not
    /// wait for it to expire.
    pub async fn release(&self) {
        let holder = self.holder.clone();
        let released = self
            .store
            .query(StoreOp::DomainsWrite, move |b| async move {
                b.release_lease(NAME, &holder).await
            })
            .await;
        if let Err(e) = released {
            tracing::debug!(error = %e, "acme: cannot release the lease; it expires by itself");
        }
    }
}
