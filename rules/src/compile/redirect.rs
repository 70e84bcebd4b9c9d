//! Compiling `[[redirect]]` rules: destinations, device and country
//! targets, splits, expiry.

use http::HeaderValue;

use super::{Compiler, DEFAULT_CACHE_CONTROL};
use crate::format::RedirectDef;
use crate::query::QueryMode;
use crate::rule_ref::RuleRef;
use crate::ruleset::RedirectRule;

const REDIRECT_STATUSES: [i64; 5] = [301, 302, 303, 307, 308];

impl Compiler {
    pub(crate) fn redirect(&mut self, offset: usize, d: RedirectDef) {
        if !self.claim_id(&d.id) {
            return;
        }
        let id = d.id.get_ref().clone();
        let rule_ref = RuleRef::Redirect(self.redirects.len() as u32);
        self.redirect_origins.push(self.origin(&d.id));
        let Some(names) = self.place(d.at(), &id, offset, rule_ref) else {
            self.redirects.push(placeholder_redirect(&id));
            return;
        };
        let caps: Vec<&str> = names.iter().map(String::as_str).collect();
        let status = self.status(d.status.as_ref(), &id, &REDIRECT_STATUSES, 302);
        let query = self.query_mode(d.query.as_ref(), &id);
        let to = d.to.as_ref().and_then(|t| self.template(t, &id, &caps));
        let mut split = Vec::new();
        let mut split_total: u64 = 0;
        match (&d.to, &d.split) {
            (Some(_), Some(s)) => {
                self.err(s.span().start, &id, "give either `to` or `split`, not both")
            }
            (None, None) => self.err(offset, &id, "needs a destination: `to` or `split`"),
            (None, Some(s)) if s.get_ref().is_empty() => {
                self.err(s.span().start, &id, "split has no variants")
            }
            _ => {}
        }
        if let Some(s) = &d.split {
            for v in s.get_ref() {
                let w = *v.weight.get_ref();
                if w <= 0 || w > u32::MAX as i64 / 1024 {
                    self.err(
                        v.weight.span().start,
                        &id,
                        format!("weight {w} must be a positive whole number"),
                    );
                }
                split_total += w.max(0) as u64;
                if let Some(t) = self.template(&v.to, &id, &caps) {
                    split.push((t, w.max(0) as u32));
                }
            }
            if split_total == 0 && !s.get_ref().is_empty() {
                self.err(s.span().start, &id, "split weights sum to zero");
            }
        }
        let has_devices = d.ios.is_some() || d.android.is_some() || d.desktop.is_some();
        let ios = d.ios.as_ref().and_then(|t| self.template(t, &id, &caps));
        let android = d
            .android
            .as_ref()
            .and_then(|t| self.template(t, &id, &caps));
        let desktop = d
            .desktop
            .as_ref()
            .and_then(|t| self.template(t, &id, &caps));
        let mut countries = Vec::new();
        let mut entries: Vec<_> = d.countries.iter().collect();
        entries.sort_by_key(|(cc, _)| cc.span().start);
        for (cc, t) in entries {
            let code = cc.get_ref();
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
                self.err(
                    cc.span().start,
                    &id,
                    format!("`{code}` is not a two-letter country code"),
                );
                continue;
            }
            let b = code.to_ascii_uppercase().into_bytes();
            let key = [b[0], b[1]];
            if countries.iter().any(|(k, _)| *k == key) {
                self.err(
                    cc.span().start,
                    &id,
                    format!("country `{code}` is given twice (codes are case-insensitive)"),
                );
                continue;
            }
            if let Some(t) = self.template(t, &id, &caps) {
                countries.push((key, t));
            }
        }
        let expires_at = d.expires_at.as_ref().and_then(|e| self.time(e, &id));
        if let (Some(e), None) = (&d.expired_to, &d.expires_at) {
            self.err(e.span().start, &id, "expired_to needs expires_at");
        }
        let expired_to = d
            .expired_to
            .as_ref()
            .and_then(|t| self.template(t, &id, &caps));
        let cache_control = self.cache_control(d.cache_control.as_ref(), &id);
        self.redirects.push(RedirectRule {
            id: id.into(),
            status,
            query,
            to,
            split,
            split_total,
            ios,
            android,
            desktop,
            countries,
            expires_at,
            expired_to,
            cache_control,
            has_devices,
        });
    }
}

/// Keeps indexes aligned when a rule could not be placed: it is never
/// reachable, and the errors already recorded stop the load.
fn placeholder_redirect(id: &str) -> RedirectRule {
    RedirectRule {
        id: id.into(),
        status: 302,
        query: QueryMode::Merge,
        to: None,
        split: Vec::new(),
        split_total: 0,
        ios: None,
        android: None,
        desktop: None,
        countries: Vec::new(),
        expires_at: None,
        expired_to: None,
        cache_control: HeaderValue::from_static(DEFAULT_CACHE_CONTROL),
        has_devices: false,
    }
}
