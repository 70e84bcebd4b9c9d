//! Placing a rule in the matcher: its host level and path kind, the
//! conflicts with rules already placed (named with their file and line),
//! and the capture names its destinations may use.

use toml::Spanned;

use super::Compiler;
use crate::encode;
use crate::format::MatchDef;
use crate::matcher::PatternError;
use crate::rule_ref::RuleRef;

impl Compiler {
    /// Places a rule in the matcher; returns the capture names its
    /// destinations may use.
    pub(crate) fn place(
        &mut self,
        at: MatchDef<'_>,
        rule: &str,
        offset: usize,
        rule_ref: RuleRef,
    ) -> Option<Vec<String>> {
        // A bad host is reported, but the path and the destinations are
        // still checked so every problem of the rule shows at once.
        let host = self.host(at.host, rule, offset);
        let given: Vec<(&str, &Spanned<String>)> = [
            ("path", at.path),
            ("pattern", at.pattern),
            ("prefix", at.prefix),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let (kind, value) = match given.as_slice() {
            [one] => *one,
            [] => {
                self.err(offset, rule, "needs one of `path`, `pattern` or `prefix`");
                return None;
            }
            [_, second, ..] => {
                self.err(
                    second.1.span().start,
                    rule,
                    "give only one of `path`, `pattern` or `prefix`",
                );
                return None;
            }
        };
        let start = value.span().start;
        let normalized = self.rule_path(value, rule)?;
        let names = match kind {
            "path" => Vec::new(),
            "pattern" => pattern_captures(&normalized),
            _ => vec!["rest".to_string()],
        };
        let Some(host) = host else {
            return Some(names);
        };
        let table = self.hosts.table_mut(&host);
        let outcome = match kind {
            "path" => table.insert_exact(&normalized, rule_ref).map_err(Some),
            "pattern" => match table.insert_pattern(&normalized, rule_ref) {
                Ok(()) => Ok(()),
                Err(PatternError::Conflict { other: Some(o), .. }) => Err(Some(o)),
                Err(PatternError::Conflict { with, other: None }) => {
                    let msg = format!(
                        "pattern `{}` conflicts with pattern `{with}`",
                        value.get_ref()
                    );
                    self.err(start, rule, msg);
                    Ok(())
                }
                Err(PatternError::Invalid(m)) => {
                    self.err(start, rule, format!("pattern `{}`: {m}", value.get_ref()));
                    Ok(())
                }
            },
            // Prefixes keep their trailing slash: `/v1/` must not match `/v1x`.
            _ => match encode::decode_unreserved(value.get_ref()) {
                Ok(p) => table.insert_prefix(&p, rule_ref).map_err(Some),
                Err(()) => Ok(()),
            },
        };
        if let Err(Some(other)) = outcome {
            let msg = format!(
                "{kind} `{}` on host `{}` is already claimed by {}",
                value.get_ref(),
                host.describe(),
                self.describe(other)
            );
            self.err(start, rule, msg);
        }
        Some(names)
    }

    /// "rule `x` at file:line:col" for the other side of a conflict.
    pub(crate) fn describe(&self, other: RuleRef) -> String {
        let o = match other {
            RuleRef::Redirect(i) => self.redirect_origins.get(i as usize),
            RuleRef::Route(i) => self.route_origins.get(i as usize),
            RuleRef::Respond(i) => self.respond_origins.get(i as usize),
            RuleRef::Link { set, row, .. } => {
                return match self.link_sets.get(set as usize) {
                    Some(s) => format!(
                        "link set `{}` at {}:{}",
                        s.id,
                        s.file,
                        s.lines.get(row as usize).copied().unwrap_or(0)
                    ),
                    None => "a link in this set".into(),
                }
            }
        };
        match o {
            Some(o) => format!("rule `{}` at {}", o.id, o.place),
            None => "another rule".into(),
        }
    }
}

/// Names a matchit pattern captures: `{sku}` and `{*rest}`.
fn pattern_captures(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = p;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        out.push(name.trim_start_matches('*').to_string());
        rest = &rest[open + close + 1..];
    }
    out
}
