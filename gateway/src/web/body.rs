//! Request bodies and queries read into values, or into a problem that
//! names the field and the position at fault.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::web::{FieldError, Problem};

/// The body as `T`: `413` over the size limit, `400` for JSON that does
/// not parse (with line and column) or does not fit (with the field).
pub fn json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    parse(&body.map_err(unreadable)?)
}

/// A body that could not be read: `413` over the size limit, else `400`.
pub fn unreadable(e: BytesRejection) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "the body is larger than the API accepts (api.max_body_bytes, 1 MiB by default)",
        )
    } else {
        Problem::new(StatusCode::BAD_REQUEST, "unreadable-body", e.body_text())
    }
}

/// `bytes` as `T`, or a `400` naming the field or the position.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let p = Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-json-field",
                    format!("the body does not fit the schema: {inner}"),
                );
                if path == "." {
                    p.errors(vec![FieldError {
                        field: None,
                        message: inner.to_string(),
                    }])
                } else {
                    p.field(path, inner.to_string())
                }
            }
            _ => syntax(&inner),
        }
    })?;
    // Bytes after the value are a syntax error too.
    de.end().map_err(|e| syntax(&e))?;
    Ok(value)
}

fn syntax(e: &serde_json::Error) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-json",
        format!("the body is not valid JSON: {e}"),
    )
    .errors(vec![FieldError {
        field: None,
        message: format!("syntax error at line {} column {}", e.line(), e.column()),
    }])
}

/// The query string as pairs, each name at most once and every name one
/// of `known`.
pub fn query(raw: Option<&str>, known: &[&str]) -> Result<Vec<(String, String)>, Problem> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !known.contains(&k.as_ref()) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "unknown-parameter",
                format!("unknown query parameter `{k}`; known: {}", known.join(", ")),
            )
            .field(k.to_string(), "unknown parameter"));
        }
        if out.iter().any(|(n, _)| *n == k) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "repeated-parameter",
                format!("query parameter `{k}` is given twice"),
            )
            .field(k.to_string(), "given twice"));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}
