//! The OpenAPI 3.1 contract, generated from the handlers and types
//! (`utoipa`), served at `GET /api/v1/openapi.json`.

use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::domains::{
    Domain, DomainCertificate, DomainInput, DomainList, DomainStatus, Verification,
};
use super::model::{
    BulkInput, BulkOutput, BulkResult, Link, LinkInput, LinkPage, LinkPatch, QueryMode,
};
use crate::analytics::{Counts, GroupBy, GroupRow, Interval, Report, SeriesPoint};
use crate::web::{FieldError, Problem};

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "api_key",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("An API key made with `gateway keys create`"))
                        .build(),
                ),
            );
        }
    }
}

/// The Links API's contract.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gateway Links API",
        version = "1",
        description = "Create, change, list and delete links that the gateway answers at once, fleet-wide. Errors are RFC 9457 problems. See docs/api.md."
    ),
    paths(
        super::links::create,
        super::links::list,
        super::links::read,
        super::links::update,
        super::links::remove,
        super::links::upsert,
        super::bulk::create,
        super::stats::read,
        super::qr::svg,
        super::domains::create,
        super::domains::list,
        super::domains::read,
        super::domains::verify,
        super::domains::remove,
    ),
    components(schemas(
        Link, LinkInput, LinkPatch, LinkPage, QueryMode, BulkInput, BulkOutput, BulkResult, Problem, FieldError,
        Report, Counts, SeriesPoint, GroupRow, Interval, GroupBy,
        Domain, DomainInput, DomainList, DomainStatus, DomainCertificate, Verification
    )),
    modifiers(&BearerKey),
    tags(
        (name = "links", description = "Short links on the gateway's link domains"),
        (name = "domains", description = "Custom link domains, proven by a DNS TXT record, with certificates the fleet orders and renews")
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Response {
    let body = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
