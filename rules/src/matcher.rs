//! The compiled matcher: host levels, then exact paths, patterns and
//! prefixes within a host.

use foldhash::fast::RandomState;
use std::collections::HashMap;

use crate::exact::ExactPaths;
use crate::host::HostSpec;
use crate::rule_ref::RuleRef;

/// How the path matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchKind {
    Exact,
    Pattern,
    Prefix,
}

/// Which host level matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostLevel<'t> {
    Exact,
    /// The wildcard suffix, with its leading dot.
    Wildcard(&'t str),
    Any,
}

/// A successful lookup.
pub(crate) struct Hit<'t, 'p> {
    pub rule: RuleRef,
    pub kind: MatchKind,
    pub level: HostLevel<'t>,
    /// The pattern or prefix as written in the rule (empty for exact).
    pub matched: &'t str,
    /// Pattern captures (none for exact paths and prefixes: matchit's
    /// empty `Params` cannot be made outside matchit).
    pub params: Option<matchit::Params<'t, 'p>>,
    /// The rest of the path after a prefix.
    pub rest: &'p str,
}

/// Paths of one host level.
#[derive(Default)]
pub(crate) struct PathTable {
    exact: ExactPaths,
    patterns: matchit::Router<(RuleRef, Box<str>)>,
    has_patterns: bool,
    /// Longest first, so the first hit is the longest prefix.
    prefixes: Vec<(Box<str>, RuleRef)>,
}

impl PathTable {
    /// Adds an exact path; on conflict returns the rule already there.
    pub(crate) fn insert_exact(&mut self, path: &str, rule: RuleRef) -> Result<(), RuleRef> {
        self.exact.insert(path, rule)
    }

    /// Adds a pattern; on conflict returns the pattern it conflicts with (or
    /// the router's complaint) as a message.
    pub(crate) fn insert_pattern(
        &mut self,
        pattern: &str,
        rule: RuleRef,
    ) -> Result<(), PatternError> {
        self.has_patterns = true;
        self.patterns
            .insert(pattern, (rule, pattern.into()))
            .map_err(|e| match e {
                matchit::InsertError::Conflict { with } => {
                    let other = self.patterns.at(&with).ok().map(|m| m.value.0);
                    PatternError::Conflict { with, other }
                }
                other => PatternError::Invalid(other.to_string()),
            })
    }

    /// Adds a prefix; on conflict returns the rule already there.
    pub(crate) fn insert_prefix(&mut self, prefix: &str, rule: RuleRef) -> Result<(), RuleRef> {
        if let Some((_, t)) = self.prefixes.iter().find(|(p, _)| &**p == prefix) {
            return Err(*t);
        }
        let at = self
            .prefixes
            .partition_point(|(p, _)| p.len() >= prefix.len());
        self.prefixes.insert(at, (prefix.into(), rule));
        Ok(())
    }

    /// Reserve room for `n` more exact paths (bulk links).
    pub(crate) fn reserve_exact(&mut self, n: usize) {
        self.exact.reserve(n);
    }

    /// Whether no rule was added.
    fn is_empty(&self) -> bool {
        self.exact.is_empty() && !self.has_patterns && self.prefixes.is_empty()
    }

    /// Trims spare room once every path is in.
    pub(crate) fn shrink(&mut self) {
        self.exact.shrink();
    }

    /// Exact beats pattern beats the longest prefix. `path` is the path used
    /// for exact and pattern matching (trailing slash already handled),
    /// `full` the one prefixes see.
    fn lookup<'t, 'p>(
        &'t self,
        path: &'p str,
        full: &'p str,
    ) -> Option<(
        RuleRef,
        MatchKind,
        &'t str,
        Option<matchit::Params<'t, 'p>>,
        &'p str,
    )> {
        if let Some(t) = self.exact.get(path) {
            return Some((t, MatchKind::Exact, "", None, ""));
        }
        if self.has_patterns {
            if let Ok(m) = self.patterns.at(path) {
                return Some((
                    m.value.0,
                    MatchKind::Pattern,
                    &m.value.1,
                    Some(m.params),
                    "",
                ));
            }
        }
        for (prefix, t) in &self.prefixes {
            if let Some(rest) = full.strip_prefix(&**prefix) {
                return Some((*t, MatchKind::Prefix, prefix, None, rest));
            }
        }
        None
    }
}

/// Why a pattern could not be added.
pub(crate) enum PatternError {
    /// Another pattern claims the same paths.
    Conflict {
        with: String,
        other: Option<RuleRef>,
    },
    /// The pattern itself is malformed.
    Invalid(String),
}

/// All host levels.
#[derive(Default)]
pub(crate) struct HostTable {
    exact: HashMap<Box<str>, PathTable, RandomState>,
    wildcard: HashMap<Box<str>, PathTable, RandomState>,
    any: PathTable,
}

impl HostTable {
    /// The path table for a host spec, created on first use.
    pub(crate) fn table_mut(&mut self, host: &HostSpec) -> &mut PathTable {
        match host {
            HostSpec::Exact(h) => self.exact.entry(h.as_str().into()).or_default(),
            HostSpec::Wildcard(s) => self.wildcard.entry(s.as_str().into()).or_default(),
            HostSpec::Any => &mut self.any,
        }
    }

    /// Finds the rule for a normalized host and path. The exact host level
    /// is tried first, then wildcards from the longest suffix to the
    /// shortest, then any-host rules; the first level with a match wins.
    pub(crate) fn lookup<'t, 'p>(
        &'t self,
        host: &str,
        path: &'p str,
        full: &'p str,
    ) -> Option<Hit<'t, 'p>> {
        let hit = |table: &'t PathTable, level: HostLevel<'t>| {
            table
                .lookup(path, full)
                .map(|(rule, kind, matched, params, rest)| Hit {
                    rule,
                    kind,
                    level,
                    matched,
                    params,
                    rest,
                })
        };
        if let Some(t) = self.exact.get(host) {
            if let Some(h) = hit(t, HostLevel::Exact) {
                return Some(h);
            }
        }
        if !self.wildcard.is_empty() {
            // Each dot starts a candidate suffix; the first one is the longest.
            for (i, _) in host.match_indices('.') {
                if let Some((suffix, t)) = self.wildcard.get_key_value(&host[i..]) {
                    if i > 0 {
                        if let Some(h) = hit(t, HostLevel::Wildcard(suffix)) {
                            return Some(h);
                        }
                    }
                }
            }
        }
        hit(&self.any, HostLevel::Any)
    }

    /// The most specific host level holding any rule for a normalized
    /// host, matching or not: `explain` tells a host with no rules from a
    /// path no rule of the host matches.
    pub(crate) fn level_for(&self, host: &str) -> Option<HostLevel<'_>> {
        if self.exact.contains_key(host) {
            return Some(HostLevel::Exact);
        }
        for (i, _) in host.match_indices('.').filter(|(i, _)| *i > 0) {
            if let Some((suffix, _)) = self.wildcard.get_key_value(&host[i..]) {
                return Some(HostLevel::Wildcard(suffix));
            }
        }
        (!self.any.is_empty()).then_some(HostLevel::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> HostTable {
        let mut t = HostTable::default();
        let ex = HostSpec::Exact("go.example.com".into());
        t.table_mut(&ex)
            .insert_exact("/a", RuleRef::Redirect(0))
            .unwrap();
        t.table_mut(&ex)
            .insert_pattern("/p/{sku}", RuleRef::Redirect(1))
            .ok()
            .unwrap();
        t.table_mut(&ex)
            .insert_pattern("/p/new", RuleRef::Redirect(2))
            .ok()
            .unwrap();
        t.table_mut(&ex)
            .insert_prefix("/docs/", RuleRef::Redirect(3))
            .unwrap();
        t.table_mut(&ex)
            .insert_prefix("/docs/v2/", RuleRef::Redirect(4))
            .unwrap();
        let wc = HostSpec::Wildcard(".example.com".into());
        t.table_mut(&wc)
            .insert_exact("/w", RuleRef::Redirect(5))
            .unwrap();
        let wc2 = HostSpec::Wildcard(".go.example.com".into());
        t.table_mut(&wc2)
            .insert_exact("/w", RuleRef::Redirect(6))
            .unwrap();
        t.table_mut(&HostSpec::Any)
            .insert_exact("/a", RuleRef::Redirect(7))
            .unwrap();
        t.table_mut(&HostSpec::Any)
            .insert_exact("/any", RuleRef::Redirect(8))
            .unwrap();
        t
    }

    fn find(t: &HostTable, host: &str, path: &str) -> Option<RuleRef> {
        t.lookup(host, path, path).map(|h| h.rule)
    }

    #[test]
    fn precedence_within_a_host() {
        let t = table();
        assert_eq!(find(&t, "go.example.com", "/a"), Some(RuleRef::Redirect(0)));
        assert_eq!(
            find(&t, "go.example.com", "/p/new"),
            Some(RuleRef::Redirect(2))
        );
        assert_eq!(
            find(&t, "go.example.com", "/p/123"),
            Some(RuleRef::Redirect(1))
        );
        assert_eq!(
            find(&t, "go.example.com", "/docs/v2/x"),
            Some(RuleRef::Redirect(4))
        );
        assert_eq!(
            find(&t, "go.example.com", "/docs/v1/x"),
            Some(RuleRef::Redirect(3))
        );
    }

    #[test]
    fn host_levels_fall_through_in_order() {
        let t = table();
        assert_eq!(find(&t, "x.example.com", "/w"), Some(RuleRef::Redirect(5)));
        assert_eq!(
            find(&t, "a.b.example.com", "/w"),
            Some(RuleRef::Redirect(5))
        );
        assert_eq!(
            find(&t, "x.go.example.com", "/w"),
            Some(RuleRef::Redirect(6))
        );
        assert_eq!(find(&t, "example.com", "/w"), None);
        // The exact host has no /any, so the any-host level answers.
        assert_eq!(
            find(&t, "go.example.com", "/any"),
            Some(RuleRef::Redirect(8))
        );
        assert_eq!(find(&t, "other.net", "/a"), Some(RuleRef::Redirect(7)));
    }

    #[test]
    fn conflicts_name_the_other_target() {
        let mut t = table();
        let ex = HostSpec::Exact("go.example.com".into());
        assert_eq!(
            t.table_mut(&ex).insert_exact("/a", RuleRef::Redirect(9)),
            Err(RuleRef::Redirect(0))
        );
        assert_eq!(
            t.table_mut(&ex)
                .insert_prefix("/docs/", RuleRef::Redirect(9)),
            Err(RuleRef::Redirect(3))
        );
        match t
            .table_mut(&ex)
            .insert_pattern("/p/{other}", RuleRef::Redirect(9))
        {
            Err(PatternError::Conflict { other, .. }) => {
                assert_eq!(other, Some(RuleRef::Redirect(1)))
            }
            _ => panic!("expected a conflict"),
        }
    }
}
