//! Choosing a redirect's destination — expiry, device, country, split,
//! default — and finishing it: query merge, click id, and the final safety
//! check of the `Location`.

use bytes::Bytes;
use http::HeaderValue;
use std::net::IpAddr;

use crate::decision::{Decision, Redirect, Target};
use crate::device::{Device, DeviceClass};
use crate::matcher::Hit;
use crate::query::{self, QueryMode};
use crate::request::Request;
use crate::rule_ref::LinkRow;
use crate::ruleset::{HitCaptures, LinkSet, RedirectRule, RuleSet};
use crate::stored::{Dest, DomainRule, StoreLink};
use crate::template::{self, Template};

impl RuleSet {
    pub(crate) fn redirect<'a>(
        &'a self,
        rule: &'a RedirectRule,
        hit: &Hit<'_, '_>,
        req: &Request<'_>,
        slot: usize,
        device_out: &mut Option<DeviceClass>,
    ) -> Decision<'a> {
        // Classifying costs a scan of the User-Agent; only rules with
        // device destinations pay for it.
        let class = rule
            .has_devices
            .then(|| self.classifier.classify(req.user_agent));
        *device_out = class;
        let mut variant = None;
        let (template, target) = if rule.expires_at.is_some_and(|t| req.now >= t) {
            match &rule.expired_to {
                Some(t) => (t, Target::Expired),
                None => {
                    return Decision::Gone {
                        rule: &rule.id,
                        slot,
                    }
                }
            }
        } else if let Some(t) = class
            .filter(|c| !c.bot)
            .and_then(|c| device_template(rule, c.device))
        {
            (t, Target::Device)
        } else if let Some(t) = by_country(&rule.countries, req.country) {
            (t, Target::Country)
        } else if !rule.split.is_empty() {
            let v = pick_variant(rule, req.client_ip, req.user_agent);
            variant = Some(v);
            (&rule.split[v].0, Target::Split)
        } else if let Some(t) = &rule.to {
            (t, Target::Default)
        } else {
            return Decision::BadRequest {
                reason: "rule has no destination",
            };
        };
        let rendered;
        let (base, static_value) = match template.static_value() {
            Some(v) => (template.raw(), Some(v)),
            None => match template.render(&HitCaptures(hit)) {
                Some(s) => {
                    rendered = s;
                    (rendered.as_str(), None)
                }
                None => {
                    return Decision::BadRequest {
                        reason: "missing capture",
                    }
                }
            },
        };
        let Some(location) = self.finish(
            base,
            template.origin_len(),
            static_value.cloned(),
            req,
            rule.query,
        ) else {
            return Decision::BadRequest {
                reason: "destination would not be a safe URL",
            };
        };
        Decision::Redirect(Redirect {
            status: rule.status,
            location,
            cache_control: &rule.cache_control,
            rule: &rule.id,
            slot,
            code_at: None,
            device: class,
            variant,
            target,
            stored: None,
        })
    }

    pub(crate) fn link<'a>(
        &'a self,
        set: &'a LinkSet,
        link: LinkRow,
        req: &Request<'_>,
        slot: usize,
        device_out: &mut Option<DeviceClass>,
    ) -> Decision<'a> {
        let extra = set.extras.get(link.extra as usize);
        let has_devices =
            extra.is_some_and(|e| e.ios.is_some() || e.android.is_some() || e.desktop.is_some());
        let class = has_devices.then(|| self.classifier.classify(req.user_agent));
        *device_out = class;
        if extra
            .and_then(|e| e.expires_at)
            .is_some_and(|t| req.now >= t)
        {
            return Decision::Gone {
                rule: &set.id,
                slot,
            };
        }
        let device_span = class.filter(|c| !c.bot).and_then(|c| {
            let e = extra?;
            match c.device {
                Device::Ios => e.ios,
                Device::Android => e.android,
                Device::Desktop => e.desktop,
            }
        });
        let (span, target) = match device_span {
            Some(s) => (s, Target::Device),
            None => (link.to, Target::Default),
        };
        let base = set.text(span);
        let Some(location) = self.finish(
            base,
            span.origin_len as usize,
            set.header(span),
            req,
            set.query,
        ) else {
            return Decision::BadRequest {
                reason: "destination would not be a safe URL",
            };
        };
        Decision::Redirect(Redirect {
            status: link.status,
            location,
            cache_control: &set.cache_control,
            rule: &set.id,
            slot,
            code_at: Some(set.prefix.len()),
            device: class,
            variant: None,
            target,
            stored: None,
        })
    }

    /// A stored link's answer: like a bulk link's, with per-country
    /// destinations and `expired_to` as a redirect rule has them.
    pub(crate) fn stored<'a>(
        &'a self,
        domain: &'a DomainRule,
        link: &'a StoreLink,
        req: &Request<'_>,
        slot: usize,
        device_out: &mut Option<DeviceClass>,
    ) -> Decision<'a> {
        let class = link
            .has_devices()
            .then(|| self.classifier.classify(req.user_agent));
        *device_out = class;
        let (dest, target) = if link.expires_at.is_some_and(|t| req.now >= t) {
            match &link.expired_to {
                Some(d) => (d, Target::Expired),
                None => {
                    return Decision::Gone {
                        rule: &domain.id,
                        slot,
                    }
                }
            }
        } else if let Some(d) = class.filter(|c| !c.bot).and_then(|c| match c.device {
            Device::Ios => link.ios.as_ref(),
            Device::Android => link.android.as_ref(),
            Device::Desktop => link.desktop.as_ref(),
        }) {
            (d, Target::Device)
        } else if let Some(d) = by_country(&link.countries, req.country) {
            (d, Target::Country)
        } else {
            (&link.to, Target::Default)
        };
        let Some(location) = self.finish_dest(dest, req, link.query) else {
            return UNSAFE;
        };
        Decision::Redirect(Redirect {
            status: link.status,
            location,
            cache_control: &link.cache_control,
            rule: &domain.id,
            slot,
            code_at: Some(1),
            device: class,
            variant: None,
            target,
            stored: Some((link.id, link.version)),
        })
    }

    /// A `[[domain]]`'s `not_found_to`, for a code nothing answers.
    pub(crate) fn not_found_to<'a>(
        &'a self,
        domain: &'a DomainRule,
        to: &Dest,
        req: &Request<'_>,
        slot: usize,
    ) -> Decision<'a> {
        match self.finish_dest(to, req, QueryMode::Merge) {
            Some(location) => Decision::Redirect(Redirect {
                status: 302,
                location,
                cache_control: &self.default_cache_control,
                rule: &domain.id,
                slot,
                code_at: None,
                device: None,
                variant: None,
                target: Target::Default,
                stored: None,
            }),
            None => UNSAFE,
        }
    }

    /// [`RuleSet::finish`] for a checked fixed destination.
    fn finish_dest(&self, d: &Dest, req: &Request<'_>, mode: QueryMode) -> Option<HeaderValue> {
        self.finish(&d.url, d.origin_len, Some(d.header.clone()), req, mode)
    }

    /// Merges the query, appends the click id and checks the result. Uses the
    /// pre-built header value when nothing had to change.
    fn finish(
        &self,
        base: &str,
        origin_len: usize,
        static_value: Option<HeaderValue>,
        req: &Request<'_>,
        mode: QueryMode,
    ) -> Option<HeaderValue> {
        let click = self
            .settings
            .click_id_param
            .as_deref()
            .map(|name| query::Click {
                name,
                id: req.click_id.get(),
            });
        match query::merge(base, req.query, mode, click) {
            None => match static_value {
                Some(v) => Some(v),
                None => checked(base.to_string(), origin_len),
            },
            Some(merged) => checked(merged, origin_len),
        }
    }
}

/// The answer when a destination would not render to a safe URL.
const UNSAFE: Decision<'static> = Decision::BadRequest {
    reason: "destination would not be a safe URL",
};

/// Re-checks a rendered location and turns it into a header value.
fn checked(location: String, origin_len: usize) -> Option<HeaderValue> {
    if !template::check_location(&location, origin_len) {
        return None;
    }
    HeaderValue::from_maybe_shared(Bytes::from(location)).ok()
}

fn device_template(rule: &RedirectRule, device: Device) -> Option<&Template> {
    match device {
        Device::Ios => rule.ios.as_ref(),
        Device::Android => rule.android.as_ref(),
        Device::Desktop => rule.desktop.as_ref(),
    }
}

/// The destination of `country` (an ISO code in any case) in `list`.
fn by_country<'a, T>(list: &'a [([u8; 2], T)], country: Option<&str>) -> Option<&'a T> {
    let c = country?.as_bytes();
    if c.len() != 2 || list.is_empty() {
        return None;
    }
    let code = [c[0].to_ascii_uppercase(), c[1].to_ascii_uppercase()];
    list.iter().find(|(k, _)| *k == code).map(|(_, t)| t)
}

/// The split variant of a visitor: a hash of (client IP, User-Agent, rule id)
/// placed on the cumulative weights. Deterministic, so a visitor keeps their
/// variant; uniform, so weights hold over many visitors.
pub(crate) fn pick_variant(rule: &RedirectRule, ip: Option<IpAddr>, ua: &str) -> usize {
    use xxhash_rust::xxh3::Xxh3;
    let mut h = Xxh3::new();
    match ip {
        Some(IpAddr::V4(a)) => h.update(&a.octets()),
        Some(IpAddr::V6(a)) => h.update(&a.octets()),
        None => {}
    }
    h.update(&[0]);
    h.update(ua.as_bytes());
    h.update(&[0]);
    h.update(rule.id.as_bytes());
    let point = h.digest() % rule.split_total.max(1);
    let mut acc: u64 = 0;
    for (i, (_, w)) in rule.split.iter().enumerate() {
        acc += u64::from(*w);
        if point < acc {
            return i;
        }
    }
    rule.split.len() - 1
}
