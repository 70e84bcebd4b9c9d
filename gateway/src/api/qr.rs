//! A link's QR code: `GET /api/v1/links/{id}/qr.svg`, its short URL as an
//! SVG image, to print or put on a page.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{header, HeaderValue, StatusCode};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use std::sync::Arc;

use super::auth::Caller;
use super::links::{link_id, owned};
use super::model::Link;
use super::ApiState;
use crate::web::Problem;

/// The QR code of a link's short URL.
#[utoipa::path(
    get,
    path = "/api/v1/links/{id}/qr.svg",
    tag = "links",
    params(("id" = i64, Path, description = "The link's id")),
    responses(
        (status = 200, description = "The QR code of the link's `short_url`", content_type = "image/svg+xml", body = String),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of this key's links", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn svg(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let record = owned(&state, &caller, link_id(&id)?).await?;
    let link = Link::of(record, &state.config.short_url_scheme);
    let image = render(&link.short_url).ok_or_else(|| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too-long-for-qr",
            "the short URL is too long for a QR code",
        )
    })?;
    let mut resp = image.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `url` as an SVG QR code: medium error correction (15 % of the code may
/// be damaged), four modules of quiet zone, 256 px at least.
fn render(url: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(256, 256)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_short_url_renders_as_an_svg_with_dark_modules() {
        let svg = super::render("https://go.example.com/spring").unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..40]);
        assert!(svg.contains("<svg"));
        assert!(svg.contains("#000"), "no dark modules");
    }
}
