//! Where an event goes: the subject from the template and the event's
//! host and device, and the message made of its line.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;

use crate::config::SubjectPart;

/// Where an event is published: its subject from the template.
pub(super) struct Route {
    subject: Vec<SubjectPart>,
    /// The subject when it has no placeholders: made once, shared by
    /// every publish.
    fixed: Option<async_nats::Subject>,
}

/// The fields of an event line the sink routes by.
#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(borrow)]
    click_id: Cow<'a, str>,
    #[serde(borrow, default)]
    host: Cow<'a, str>,
    #[serde(borrow, default)]
    device: Cow<'a, str>,
}

/// The routing fields of an event line. A line this gateway wrote has them
/// as plain strings at the top level, found by a search for their keys:
/// parsing every line with serde_json cost over a microsecond an event.
/// Anything else (an escaped value, a line from elsewhere) is parsed.
fn keys_of(line: &str) -> Option<Keys<'_>> {
    // In a JSON string a `"` is escaped, so `,"key":"` only occurs where
    // the key is; a value ends at the next `"` unless it holds an escape.
    fn plain<'a>(line: &'a str, key: &memchr::memmem::Finder<'_>) -> Option<Cow<'a, str>> {
        let start = key.find(line.as_bytes())? + key.needle().len();
        let rest = line.get(start..)?;
        let value = rest.get(..memchr::memchr(b'"', rest.as_bytes())?)?;
        (!value.contains('\\')).then_some(Cow::Borrowed(value))
    }
    static FINDERS: std::sync::OnceLock<[memchr::memmem::Finder<'static>; 3]> =
        std::sync::OnceLock::new();
    let [click_id, host, device] = FINDERS.get_or_init(|| {
        [",\"click_id\":\"", ",\"host\":\"", ",\"device\":\""].map(memchr::memmem::Finder::new)
    });
    let quick = || {
        Some(Keys {
            click_id: plain(line, click_id)?,
            host: plain(line, host)?,
            device: plain(line, device)?,
        })
    };
    quick().or_else(|| serde_json::from_str(line).ok())
}

/// The subjects a stream needs for `parts`: each placeholder a `*`.
pub(super) fn wildcard(parts: &[SubjectPart]) -> String {
    parts
        .iter()
        .map(|p| match p {
            SubjectPart::Literal(l) => l.as_str(),
            SubjectPart::Host | SubjectPart::Device => "*",
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Appends `value` as one subject token: ASCII letters (lower-cased),
/// digits, `-` and `_` are kept, anything else (dots, wildcards, white
/// space, `:` of a port, non-ASCII) becomes `_`; an empty value is `_`.
fn push_token(out: &mut String, value: &str) {
    let start = out.len();
    out.extend(value.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c.to_ascii_lowercase()
        } else {
            '_'
        }
    }));
    if out.len() == start {
        out.push('_');
    }
}

/// One event ready to publish: routed and copied on the writer thread.
pub(super) struct Outgoing {
    pub(super) subject: async_nats::Subject,
    pub(super) headers: async_nats::HeaderMap,
    pub(super) payload: Bytes,
}

impl Route {
    /// The route of a subject template.
    pub(super) fn new(subject: Vec<SubjectPart>) -> Route {
        Route {
            fixed: subject
                .iter()
                .all(|p| matches!(p, SubjectPart::Literal(_)))
                .then(|| async_nats::Subject::from(wildcard(&subject))),
            subject,
        }
    }

    /// The subject of an event.
    fn subject_of(&self, keys: Option<&Keys<'_>>) -> async_nats::Subject {
        if let Some(fixed) = &self.fixed {
            return fixed.clone();
        }
        let mut s = String::with_capacity(64);
        for (n, part) in self.subject.iter().enumerate() {
            if n > 0 {
                s.push('.');
            }
            match part {
                SubjectPart::Literal(l) => s.push_str(l),
                SubjectPart::Host => push_token(&mut s, keys.map_or("", |k| &k.host)),
                SubjectPart::Device => push_token(&mut s, keys.map_or("", |k| &k.device)),
            }
        }
        s.into()
    }

    /// An event line as a message: its subject, the click id as
    /// `Nats-Msg-Id` (a line without one is still published, without
    /// de-duplication) and the line without its newline.
    pub(super) fn outgoing(&self, line: &str) -> Outgoing {
        let keys = keys_of(line);
        let mut headers = async_nats::HeaderMap::new();
        if let Some(k) = &keys {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, &*k.click_id);
        }
        Outgoing {
            subject: self.subject_of(keys.as_ref()),
            headers,
            payload: Bytes::copy_from_slice(line.trim_end().as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::subject_parts;

    #[test]
    fn routing_fields_are_found_in_lines_as_written_and_parsed_otherwise() {
        let line = r#"{"schema":1,"ts":"2026-12-03T02:17:05.123456Z","click_id":"0193a1b2c3d4e5f60718293a4b5c6d7e","rule":"r","code":null,"host":"go.example.com","path":"/x","device":"ios","country":null}"#;
        let k = keys_of(line).unwrap();
        assert_eq!(
            (&*k.click_id, &*k.host, &*k.device),
            ("0193a1b2c3d4e5f60718293a4b5c6d7e", "go.example.com", "ios")
        );
        // An escaped host, and a path that mentions the keys: the parser's
        // answer.
        let line = r#"{"click_id":"c1","path":"/a\",\"host\":\"evil","host":"go.\u0065xample.com","device":"android"}"#;
        let k = keys_of(line).unwrap();
        assert_eq!(
            (&*k.click_id, &*k.host, &*k.device),
            ("c1", "go.example.com", "android")
        );
        assert!(keys_of("not json").is_none());
    }

    #[test]
    fn hosts_become_one_token() {
        let mut s = String::new();
        push_token(&mut s, "Go.Example.com:8443");
        assert_eq!(s, "go_example_com_8443");
        s.clear();
        push_token(&mut s, "");
        assert_eq!(s, "_");
        s.clear();
        push_token(&mut s, "a*b>c d\u{e9}");
        assert_eq!(s, "a_b_c_d_");
    }

    #[test]
    fn stream_subjects_from_the_template() {
        let parts = subject_parts("clicks.<host>.<device>").unwrap();
        assert_eq!(wildcard(&parts), "clicks.*.*");
        assert_eq!(wildcard(&subject_parts("events").unwrap()), "events");
    }
}
