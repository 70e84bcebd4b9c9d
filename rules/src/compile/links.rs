//! Compiling bulk short links (`[[links]]`): millions of rows from a CSV
//! file, kept compact and placed in the matcher as exact paths.

use bytes::Bytes;
use std::sync::Arc;

use super::Compiler;
use crate::encode;
use crate::error::RuleError;
use crate::files::FileKind;
use crate::format::LinksDef;
use crate::link_fields;
use crate::rule_ref::{LinkRow, RuleRef, Span};
use crate::ruleset::{LinkExtra, LinkSet, TrailingSlash};
use crate::timestamp;

/// Errors reported per CSV file before the rest are only counted, so a
/// wrong file does not print a million lines.
const MAX_CSV_ERRORS: usize = 50;

/// The columns a header may name, for messages.
const KNOWN_COLUMNS: &str = "code, to, status, ios, android, desktop, expires_at";

/// Column positions in the CSV header.
#[derive(Default)]
struct Columns {
    code: Option<usize>,
    to: Option<usize>,
    status: Option<usize>,
    ios: Option<usize>,
    android: Option<usize>,
    desktop: Option<usize>,
    expires_at: Option<usize>,
}

struct CsvErrors<'a> {
    file: &'a str,
    rule: &'a str,
    list: Vec<RuleError>,
    more: usize,
}

impl CsvErrors<'_> {
    fn push(&mut self, line: u64, message: impl Into<String>) {
        if self.list.len() < MAX_CSV_ERRORS {
            self.list.push(RuleError {
                file: self.file.to_string(),
                line: line as usize,
                column: 1,
                rule: self.rule.to_string(),
                message: message.into(),
            });
        } else {
            self.more += 1;
        }
    }
}

impl Compiler {
    /// Loads one link set into the compiler.
    pub(crate) fn links(&mut self, offset: usize, d: LinksDef) {
        if !self.claim_id(&d.id) {
            return;
        }
        let id = d.id.get_ref().clone();
        // A bad host or prefix is reported, and the CSV is still checked so
        // every problem of the set shows at once; the links are just not placed.
        let host = self.host(d.host.as_ref(), &id, offset);
        let prefix = match &d.prefix {
            None => Some("/".to_string()),
            Some(p) if !p.get_ref().ends_with('/') => {
                self.err(
                    p.span().start,
                    &id,
                    "links prefix must start and end with /",
                );
                None
            }
            // Checked like a rule path (leading /, no spaces, `?` or `#`).
            Some(p) => self.rule_path(p, &id).map(|_| p.get_ref().clone()),
        };
        let place = host.zip(prefix.clone());
        let prefix = prefix.unwrap_or_else(|| "/".to_string());
        let status = self.status(d.status.as_ref(), &id, &[301, 302, 303, 307, 308], 302);
        let query = self.query_mode(d.query.as_ref(), &id);
        let cache_control = self.cache_control(d.cache_control.as_ref(), &id);
        // The size limit (`LINKS_FILE_LIMIT`) keeps the 32-bit arena offsets valid.
        let Some((path, data)) = self.read_referenced(
            d.file.span().start,
            &id,
            "links file",
            d.file.get_ref(),
            FileKind::Links,
        ) else {
            return;
        };
        let file = path.display().to_string();
        let set_index = self.link_sets.len() as u32;
        let mut errors = CsvErrors {
            file: &file,
            rule: &id,
            list: Vec::new(),
            more: 0,
        };
        let mut set = LinkSet {
            id: id.as_str().into(),
            prefix: prefix.as_str().into(),
            arena: Arc::from(""),
            arena_bytes: Bytes::new(),

            extras: Vec::new(),
            query,
            cache_control,
            file: file.clone(),
            lines: Vec::new(),
        };
        let mut arena = String::with_capacity(data.len());
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(data.as_slice());
        let cols = match columns(&mut reader) {
            Ok(cols) => cols,
            Err(msg) => {
                errors.push(1, msg);
                self.errors.extend(errors.list);
                return;
            }
        };
        // Rough row count, so the tables grow once instead of doubling.
        let estimate = memchr::memchr_iter(b'\n', &data).count();

        set.lines.reserve(estimate);
        if let Some((host, _)) = &place {
            self.hosts.table_mut(host).reserve_exact(estimate);
        }
        let schemes = self.schemes.clone();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    errors.push(line, format!("unreadable CSV row: {e}"));
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        break;
                    }
                    continue;
                }
            }
            let line = record.position().map_or(0, |p| p.line());
            let field = |i: Option<usize>| i.and_then(|i| record.get(i)).filter(|s| !s.is_empty());
            let Some(code) = field(cols.code) else {
                errors.push(line, "empty code");
                continue;
            };
            if let Err(m) = link_fields::code(code) {
                errors.push(line, format!("code {m}"));
                continue;
            }
            let Some(to) = field(cols.to) else {
                errors.push(line, format!("code `{code}` has no destination"));
                continue;
            };
            let mut dest = |url: &str, what: &str, errors: &mut CsvErrors<'_>| -> Option<Span> {
                match link_fields::destination(url, &schemes) {
                    Ok(origin_len) => {
                        let start = arena.len() as u32;
                        arena.push_str(url);
                        Some(Span {
                            start,
                            len: url.len() as u32,
                            origin_len: origin_len as u32,
                        })
                    }
                    Err(msg) => {
                        errors.push(line, format!("code `{code}`: {what} `{url}` {msg}"));
                        None
                    }
                }
            };
            let Some(to) = dest(to, "destination", &mut errors) else {
                continue;
            };
            let row_status = match field(cols.status) {
                None => status,
                Some(s) => match s.parse::<u16>().map(link_fields::status) {
                    Ok(Ok(v)) => v,
                    _ => {
                        errors.push(
                            line,
                            format!(
                                "code `{code}`: status `{s}` must be 301, 302, 303, 307 or 308"
                            ),
                        );
                        continue;
                    }
                },
            };
            let mut extra = LinkExtra {
                ios: field(cols.ios).and_then(|u| dest(u, "ios destination", &mut errors)),
                android: field(cols.android)
                    .and_then(|u| dest(u, "android destination", &mut errors)),
                desktop: field(cols.desktop)
                    .and_then(|u| dest(u, "desktop destination", &mut errors)),
                expires_at: None,
            };
            if let Some(e) = field(cols.expires_at) {
                match timestamp::parse(e) {
                    Ok(t) => extra.expires_at = Some(t),
                    Err(msg) => errors.push(line, format!("code `{code}`: expires_at {msg}")),
                }
            }
            let extra_index = if extra.ios.is_some()
                || extra.android.is_some()
                || extra.desktop.is_some()
                || extra.expires_at.is_some()
            {
                set.extras.push(extra);
                (set.extras.len() - 1) as u32
            } else {
                u32::MAX
            };
            let mut key = String::with_capacity(prefix.len() + code.len());
            key.push_str(&prefix);
            key.push_str(code);
            let key = match encode::decode_unreserved(&key) {
                Ok(k) => k.into_owned(),
                Err(()) => {
                    errors.push(line, format!("code `{code}` has a bad percent-escape"));
                    continue;
                }
            };
            let key = if self.settings.trailing_slash == TrailingSlash::Ignore
                && key.len() > 1
                && key.ends_with('/')
            {
                key[..key.len() - 1].to_string()
            } else {
                key
            };
            let row = set.lines.len() as u32;
            let rule_ref = RuleRef::Link {
                set: set_index,
                row,
                link: LinkRow {
                    to,
                    status: row_status,
                    extra: extra_index,
                },
            };
            let inserted = match &place {
                Some((host, _)) => self.hosts.table_mut(host).insert_exact(&key, rule_ref),
                None => Ok(()),
            };
            if let Err(other) = inserted {
                let who = match other {
                    RuleRef::Link { set: s, row: r, .. } if s == set_index => {
                        format!(
                            "line {} of this file",
                            set.lines.get(r as usize).copied().unwrap_or(0)
                        )
                    }
                    o => self.describe(o),
                };
                errors.push(
                    line,
                    format!("code `{code}` (path {key}) is already claimed by {who}"),
                );
                continue;
            }
            set.lines.push(line as u32);
        }
        if errors.more > 0 {
            let more = errors.more;
            let mut last = errors.list[errors.list.len() - 1].clone();
            last.message = format!("… and {more} more errors in this file");
            errors.list.push(last);
        }
        self.errors.extend(errors.list);
        if let Some((host, _)) = &place {
            self.hosts.table_mut(host).shrink();
        }
        let arena: Arc<str> = Arc::from(arena);
        set.arena_bytes = Bytes::from_owner(ArcStr(arena.clone()));
        set.arena = arena;

        set.lines.shrink_to_fit();
        self.link_sets.push(set);
    }
}

/// Reads the header. Its messages name columns by position and never
/// quote the header: when a file that is not a CSV is named (a key, a
/// password file), its first line would otherwise end up in the error.
fn columns(reader: &mut csv::Reader<&[u8]>) -> Result<Columns, String> {
    let headers = reader.headers().map_err(|e| match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => {
            format!(
                "column {} of the header is not valid UTF-8",
                err.field() + 1
            )
        }
        _ => "unreadable CSV header".to_string(),
    })?;
    let mut cols = Columns::default();
    for (i, h) in headers.iter().enumerate() {
        let column = match h {
            "code" => &mut cols.code,
            "to" => &mut cols.to,
            "status" => &mut cols.status,
            "ios" => &mut cols.ios,
            "android" => &mut cols.android,
            "desktop" => &mut cols.desktop,
            "expires_at" => &mut cols.expires_at,
            _ => {
                return Err(format!(
                    "column {} of the header is not a known column; expected {KNOWN_COLUMNS}",
                    i + 1
                ))
            }
        };
        if let Some(first) = column.replace(i) {
            return Err(format!(
                "column {} of the header repeats column {}",
                i + 1,
                first + 1
            ));
        }
    }
    if cols.code.is_none() || cols.to.is_none() {
        return Err("the header must name at least the columns `code` and `to`".into());
    }
    Ok(cols)
}

/// Lets `Bytes` share the text arena's allocation.
struct ArcStr(Arc<str>);

impl AsRef<[u8]> for ArcStr {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}
