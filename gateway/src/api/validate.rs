//! A link as a partner wrote it, checked and turned into what the store
//! keeps: the rules' own checks of a stored link (the same as a CSV row's),
//! then what the key may do, then what the rules file already answers.

use http::StatusCode;
use rules::{RuleSet, StoreLink};

use super::auth::Caller;
use super::model::{rfc3339, LinkInput, LinkPatch, QueryMode};
use crate::store::{random_text, LinkRecord, NewLink};
use crate::web::{FieldError, Problem};

/// Most tags on one link, and the longest tag.
const MAX_TAGS: usize = 32;
const MAX_TAG_LEN: usize = 64;
/// The longest external id.
const MAX_EXTERNAL_ID: usize = 255;

/// The API's name for a field the rules name otherwise.
fn api_field(rules_field: &str) -> String {
    match rules_field {
        "destination" => "to".into(),
        "query_mode" => "query".into(),
        other => other.into(),
    }
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: Some(field.into()),
        message: message.into(),
    }
}

/// A code no rule of the file answers on `host`: `length` characters of
/// the unambiguous alphabet (31^7 ≈ 2.7e10 codes at the default length,
/// so a clash with a stored link is rare and retried by the caller).
pub fn fresh_code(rules: &RuleSet, host: &str, length: usize) -> String {
    loop {
        let code = random_text(length);
        if rules.answered_by(host, &code).is_none() {
            return code;
        }
    }
}

/// `code` as a browser sends it in a path: UTF-8 beyond ASCII and the
/// ASCII bytes of the WHATWG path percent-encode set that the code check
/// does not refuse (`"`, `<`, `>`, `` ` ``, `{`, `}`) become `%XX`. The
/// gateway looks a request's path up as sent, so a code kept as `été`
/// would never answer a request for `/%C3%A9t%C3%A9`. Escapes already
/// there are kept, so a stored code passes through unchanged.
fn path_encoded(code: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(code.len());
    for c in code.chars() {
        if c.is_ascii() && !matches!(c, '"' | '<' | '>' | '`' | '{' | '}') {
            out.push(c);
            continue;
        }
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

/// Checks `input` for `caller` under `rules`. A missing code is generated
/// (`code_length` characters). The link comes back with its host and code
/// as the store keeps them, owned by `caller`'s key (by no key when the
/// operator makes it).
pub fn prepare(
    input: &LinkInput,
    caller: &Caller,
    rules: &RuleSet,
    code_length: usize,
) -> Result<NewLink, Problem> {
    let mut errors = Vec::new();
    let generated;
    let encoded;
    let code = match &input.code {
        Some(c) => {
            encoded = path_encoded(c);
            encoded.as_str()
        }
        None => {
            // Any valid code: the real one is drawn once the host is known.
            generated = random_text(code_length);
            generated.as_str()
        }
    };
    let key_parts = match rules.store_key(&input.host, code) {
        Ok(k) => Some(k),
        Err(e) => {
            errors.extend(e.0.iter().map(|e| field_error(&e.field, &e.message)));
            None
        }
    };
    if let Some((host, _)) = &key_parts {
        if !rules.is_store_domain(host) {
            errors.push(field_error(
                "host",
                format!("`{host}` is not a link domain of this gateway (a [[domain]] with store = true)"),
            ));
        }
    }
    let expires_at = match &input.expires_at {
        None => None,
        Some(t) => match rules::parse_timestamp(t) {
            Ok(t) => Some(t),
            Err(m) => {
                errors.push(field_error("expires_at", m));
                None
            }
        },
    };
    let tags = input.tags.clone().unwrap_or_default();
    if tags.len() > MAX_TAGS {
        errors.push(field_error("tags", format!("at most {MAX_TAGS} tags")));
    }
    for (i, t) in tags.iter().enumerate() {
        if t.is_empty() || t.len() > MAX_TAG_LEN || t.chars().any(char::is_control) {
            errors.push(field_error(
                &format!("tags[{i}]"),
                format!("a tag is 1 to {MAX_TAG_LEN} bytes without control characters"),
            ));
        }
    }
    if let Some(id) = &input.external_id {
        if id.is_empty() || id.len() > MAX_EXTERNAL_ID || id.chars().any(char::is_control) {
            errors.push(field_error(
                "external_id",
                format!("is 1 to {MAX_EXTERNAL_ID} bytes without control characters"),
            ));
        }
    }
    let (host, mut code) = key_parts.unwrap_or_default();
    if input.code.is_none() && !host.is_empty() {
        code = fresh_code(rules, &host, code_length);
    }
    let link = NewLink {
        host,
        code,
        destination: input.to.clone(),
        status: input.status.unwrap_or(302),
        ios: input.ios.clone(),
        android: input.android.clone(),
        desktop: input.desktop.clone(),
        countries: input.countries.clone().unwrap_or_default(),
        expires_at,
        expired_to: input.expired_to.clone(),
        query_mode: input.query.map(|q| q.as_str().to_string()),
        cache_control: input.cache_control.clone(),
        tags,
        owner: caller.owner().map(str::to_string),
        external_id: input.external_id.clone(),
    };
    if let Err(e) = StoreLink::compile(&link.spec(0, 0), rules) {
        // A field already refused above (a bad code) is not refused twice.
        let fresh: Vec<FieldError> =
            e.0.iter()
                .map(|e| field_error(&api_field(&e.field), &e.message))
                .filter(|e| !errors.iter().any(|seen| seen.field == e.field))
                .collect();
        errors.extend(fresh);
    }
    if !errors.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-link",
            "the link is not valid; see errors",
        )
        .errors(errors));
    }
    if !caller.covers(&link.host) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "host-not-allowed",
            format!("this API key may not create links on `{}`", link.host),
        )
        .field(
            "host",
            format!("the key's hosts are {}", caller.key().hosts.join(", ")),
        ));
    }
    if let Some(rule) = rules.answered_by(&link.host, &link.code) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "code-claimed-by-rule",
            format!(
                "`{}/{}` is answered by rule `{rule}` of the rules file",
                link.host, link.code
            ),
        )
        .field("code", format!("answered by rule `{rule}`")));
    }
    Ok(link)
}

/// `record` as the input that would create it again.
pub fn input_of(record: &LinkRecord) -> LinkInput {
    let l = &record.link;
    LinkInput {
        host: l.host.clone(),
        to: l.destination.clone(),
        code: Some(l.code.clone()),
        status: Some(l.status),
        ios: l.ios.clone(),
        android: l.android.clone(),
        desktop: l.desktop.clone(),
        countries: Some(l.countries.clone()),
        expires_at: l.expires_at.map(rfc3339),
        expired_to: l.expired_to.clone(),
        query: match l.query_mode.as_deref() {
            Some("drop") => Some(QueryMode::Drop),
            Some(_) => Some(QueryMode::Merge),
            None => None,
        },
        cache_control: l.cache_control.clone(),
        tags: Some(l.tags.clone()),
        external_id: l.external_id.clone(),
    }
}

/// `input` with `patch` applied.
pub fn patched(mut input: LinkInput, patch: LinkPatch) -> LinkInput {
    if let Some(v) = patch.host {
        input.host = v;
    }
    if let Some(v) = patch.to {
        input.to = v;
    }
    if let Some(v) = patch.code {
        input.code = Some(v);
    }
    if let Some(v) = patch.status {
        input.status = Some(v);
    }
    if let Some(v) = patch.ios {
        input.ios = v;
    }
    if let Some(v) = patch.android {
        input.android = v;
    }
    if let Some(v) = patch.desktop {
        input.desktop = v;
    }
    if let Some(v) = patch.countries {
        input.countries = v;
    }
    if let Some(v) = patch.expires_at {
        input.expires_at = v;
    }
    if let Some(v) = patch.expired_to {
        input.expired_to = v;
    }
    if let Some(v) = patch.query {
        input.query = v;
    }
    if let Some(v) = patch.cache_control {
        input.cache_control = v;
    }
    if let Some(v) = patch.tags {
        input.tags = v;
    }
    if let Some(v) = patch.external_id {
        input.external_id = v;
    }
    input
}
