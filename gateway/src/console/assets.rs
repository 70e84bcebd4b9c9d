//! The console's files: built by Vite into `console/dist/` and embedded in
//! the binary, so the gateway serves its console with nothing installed.
//! `GATEWAY_CONSOLE_DIR` serves them from a directory instead, for
//! working on the console without rebuilding the gateway.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::borrow::Cow;

/// The built console.
#[derive(rust_embed::Embed)]
#[folder = "../console/dist/"]
struct Dist;

use crate::config::CONSOLE_DIR_VAR as DIR_VAR;

/// A file's bytes and the tag `If-None-Match` compares.
struct File {
    bytes: Cow<'static, [u8]>,
    etag: String,
}

/// `name` from the directory of [`DIR_VAR`], or else from the binary.
fn file(name: &str) -> Option<File> {
    if let Some(dir) = std::env::var_os(DIR_VAR) {
        // Names come from a route segment: no way out of the directory.
        if name.split('/').any(|part| part == ".." || part.is_empty()) {
            return None;
        }
        let bytes = std::fs::read(std::path::Path::new(&dir).join(name)).ok()?;
        let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&bytes));
        return Some(File {
            bytes: Cow::Owned(bytes),
            etag,
        });
    }
    let embedded = Dist::get(name)?;
    let hash = embedded.metadata.sha256_hash();
    let etag = format!(
        "\"{}\"",
        hash[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Some(File {
        bytes: embedded.data,
        etag,
    })
}

/// `GET /console/`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /console/{*path}`: a file of the build; the page itself for a
/// path with no extension, so a reload of a deep link still loads.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let name = if path.contains('.') {
        path.as_str()
    } else {
        "index.html"
    };
    serve(name, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(file) = file(name) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == file.etag.as_bytes());
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        file.bytes.into_owned().into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&file.etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated each time: a new gateway brings a new console, under
    // the same file names.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}
