//! Compiling `[[domain]]`s: link domains whose codes may live in the
//! gateway's store, and where their unknown codes go.

use super::Compiler;
use crate::format::DomainDef;
use crate::host::HostSpec;
use crate::stored::{Dest, DomainRule};

impl Compiler {
    pub(crate) fn domain(&mut self, offset: usize, d: DomainDef) {
        if !self.claim_id(&d.id) {
            return;
        }
        let id = d.id.get_ref().clone();
        let host = match self.host(Some(&d.host), &id, offset) {
            Some(HostSpec::Exact(h)) => h,
            Some(_) => {
                self.err(
                    d.host.span().start,
                    &id,
                    "a domain's host must be one exact host (no wildcard, no *)",
                );
                return;
            }
            None => return,
        };
        let not_found_to =
            d.not_found_to
                .as_ref()
                .and_then(|to| match Dest::new(to.get_ref(), &self.schemes) {
                    Ok(dest) => Some(dest),
                    Err(m) => {
                        self.err(to.span().start, &id, format!("not_found_to {m}"));
                        None
                    }
                });
        let index = self.domains.len() as u32;
        if self
            .domain_hosts
            .insert(host.as_str().into(), index)
            .is_some()
        {
            self.err(
                d.host.span().start,
                &id,
                format!("host {} already has a [[domain]]", host.as_str()),
            );
            return;
        }
        self.domains.push(DomainRule {
            id: id.into(),
            store: d.store,
            not_found_to,
        });
    }
}
