//! One certificate ordered from the ACME CA (RFC 8555) with `instant-acme`:
//! the fleet's account (kept in the store, made on first use), a new
//! order for one domain, its HTTP-01 challenge answered by the fleet
//! (`challenge`), the CSR and key made here, the chain fetched.

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

use super::challenge::Challenges;
use crate::config::AcmeSection;
use crate::metrics::StoreOp;
use crate::store::{Store, StoreError};

/// Why an order did not bring a certificate.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The CA refused or failed (its problem document, or the transport).
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    /// The store could not keep or give what the order needs.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The CA's answers were not what RFC 8555 says.
    #[error("{0}")]
    Protocol(String),
    /// The order ran longer than `acme.order_timeout`.
    #[error("the order took longer than acme.order_timeout")]
    Timeout,
}

/// What an order brought.
pub struct Issued {
    /// The chain, leaf first, PEM.
    pub cert_pem: String,
    /// The key made for it, PKCS#8 PEM.
    pub key_pem: String,
}

/// Orders certificates with the fleet's account.
pub struct Orderer {
    config: AcmeSection,
    store: Arc<Store>,
    challenges: Arc<Challenges>,
    /// Made (or read from the store) on the first order.
    account: Mutex<Option<Account>>,
}

impl Orderer {
    /// Ordering from `config.directory`.
    pub fn new(config: AcmeSection, store: Arc<Store>, challenges: Arc<Challenges>) -> Orderer {
        Orderer {
            config,
            store,
            challenges,
            account: Mutex::new(None),
        }
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, OrderError> {
        Ok(match &self.config.ca_bundle {
            Some(path) => Account::builder_with_root(path)?,
            None => Account::builder()?,
        })
    }

    /// The fleet's account at the directory: the one kept in the store,
    /// or a new one, kept there for every gateway after this one (only the
    /// lease holder gets here, so two are not made at once).
    async fn account(&self) -> Result<Account, OrderError> {
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let directory = self.config.directory.clone();
        let kept = self
            .store
            .query(StoreOp::Domains, move |b| async move {
                b.acme_account(&directory).await
            })
            .await?;
        let account = match kept {
            Some(json) => {
                let credentials: AccountCredentials = serde_json::from_str(&json)
                    .map_err(|e| OrderError::Protocol(format!("the stored ACME account: {e}")))?;
                self.builder()?.from_credentials(credentials).await?
            }
            None => {
                let contact = self.config.contact.as_ref().map(|c| format!("mailto:{c}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, credentials) = self
                    .builder()?
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.config.directory.clone(),
                        None,
                    )
                    .await?;
                let json = serde_json::to_string(&credentials)
                    .map_err(|e| OrderError::Protocol(format!("the new ACME account: {e}")))?;
                let directory = self.config.directory.clone();
                self.store
                    .query(StoreOp::DomainsWrite, move |b| async move {
                        b.put_acme_account(&directory, &json, rules::unix_now())
                            .await
                    })
                    .await?;
                tracing::info!(directory = %self.config.directory, id = account.id(), "acme: account created");
                account
            }
        };
        *slot = Some(account.clone());
        Ok(account)
    }

    /// A certificate for `host`, within `acme.order_timeout`.
    pub async fn order(&self, host: &str) -> Result<Issued, OrderError> {
        let ran = tokio::time::timeout(self.config.order_timeout, self.run(host)).await;
        // Whatever became of it, its challenges are no longer needed.
        let h = host.to_string();
        let before = rules::unix_now() - self.config.order_timeout.as_secs() as i64;
        let _ = self
            .store
            .query(StoreOp::DomainsWrite, move |b| async move {
                b.remove_challenges(&h, before).await
            })
            .await;
        let issued = ran.map_err(|_| OrderError::Timeout)?;
        if issued.is_err() {
            // A CA that forgot the account (a test CA restarted, an
            // account deactivated) is found again next time.
            *self.account.lock().await = None;
        }
        issued
    }

    async fn run(&self, host: &str) -> Result<Issued, OrderError> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(host.to_string())];
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                // Proven recently with this account: nothing to answer.
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(OrderError::Protocol(format!(
                        "authorization of {host} is {other:?}"
                    )))
                }
            }
            let mut challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
                OrderError::Protocol(format!("the CA offers no http-01 challenge for {host}"))
            })?;
            let key_authorization = challenge.key_authorization();
            // In the store before the CA is told to look: any gateway of
            // the fleet may be the one it reaches.
            self.challenges
                .put(&challenge.token, key_authorization.as_str(), host)
                .await?;
            challenge.set_ready().await?;
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(self.config.order_timeout);
        let status = order.poll_ready(&retry).await?;
        if status != OrderStatus::Ready {
            return Err(OrderError::Protocol(
                self.why_invalid(&mut order, host, status).await,
            ));
        }
        let key_pem = order.finalize().await?;
        let cert_pem = order.poll_certificate(&retry).await?;
        Ok(Issued { cert_pem, key_pem })
    }

    /// What the CA said went wrong with an order that did not become
    /// ready: its challenges' errors, or the order's own.
    async fn why_invalid(
        &self,
        order: &mut instant_acme::Order,
        host: &str,
        status: OrderStatus,
    ) -> String {
        let mut reasons = Vec::new();
        if let Some(e) = &order.state().error {
            reasons.push(e.to_string());
        }
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authz)) = authorizations.next().await {
            if let Ok(state) = authz.refresh().await {
                for c in &state.challenges {
                    if let Some(e) = &c.error {
                        reasons.push(e.to_string());
                    }
                }
            }
        }
        if reasons.is_empty() {
            format!("the order for {host} ended {status:?}")
        } else {
            format!(
                "the order for {host} ended {status:?}: {}",
                reasons.join("; ")
            )
        }
    }
}
