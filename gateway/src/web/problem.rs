//! Errors as `application/problem+json` (RFC 9457), with the fields at
//! fault in `errors`, so a client shows each message next to its field.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

/// One field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field as the request named it (`to`, `countries.DE`,
    /// `links[3].code`); absent when the error is not about one field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, in words meant for whoever wrote the request.
    pub message: String,
}

/// An RFC 9457 problem: `type`, `title`, `status`, `detail`, and the
/// fields at fault.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URN naming the kind of problem (`urn:gateway:problem:<slug>`),
    /// stable for clients to switch on; docs/api.md lists them.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: Box<str>,
    /// The kind of problem, in words.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// This occurrence, in words.
    pub detail: String,
    /// Each field at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Headers to send with it (`Retry-After`, `WWW-Authenticate`, ...).
    #[serde(skip)]
    #[schema(ignore)]
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem of `status`, its kind named by `slug` (the last part of
    /// its `type`), described by `detail`.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:gateway:problem:{slug}").into(),
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// With one error about `field`.
    pub fn field(mut self, field: impl Into<String>, message: impl Into<String>) -> Problem {
        self.errors.push(FieldError {
            field: Some(field.into()),
            message: message.into(),
        });
        self
    }

    /// With `errors`.
    pub fn errors(mut self, errors: Vec<FieldError>) -> Problem {
        self.errors.extend(errors);
        self
    }

    /// With a header.
    pub fn header(mut self, name: http::HeaderName, value: HeaderValue) -> Problem {
        self.headers.push((name, value));
        self
    }

    /// The status as a `StatusCode`.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = serde_json::to_vec(&self).unwrap_or_default();
        body.push(b'\n');
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        resp
    }
}
