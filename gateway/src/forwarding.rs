//! Standard forwarding headers on proxied requests: `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Request-Id`.

use pingora::http::RequestHeader;
use pingora::Result;
use std::net::IpAddr;

/// The request id header, generated when the client sent none.
pub const REQUEST_ID: &str = "x-request-id";

/// Sets the forwarding headers on the upstream request. Returns the request
/// id, so the response can carry it back to the client.
pub fn apply(
    req: &mut RequestHeader,
    client_ip: Option<IpAddr>,
    tls: bool,
    original_host: Option<&str>,
) -> Result<String> {
    if let Some(ip) = client_ip {
        // Append, like nginx's $proxy_add_x_forwarded_for: the upstream sees
        // the whole chain and the last entry is the address we saw.
        let value = match req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip.to_string(),
        };
        req.insert_header("X-Forwarded-For", value)?;
    }
    req.insert_header("X-Forwarded-Proto", if tls { "https" } else { "http" })?;
    if let Some(host) = original_host {
        req.insert_header("X-Forwarded-Host", host)?;
    }
    let id = match req.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(id) if valid_request_id(id) => id.to_string(),
        _ => {
            let id = uuid::Uuid::now_v7().to_string();
            req.insert_header("X-Request-Id", &id)?;
            id
        }
    };
    Ok(id)
}

/// A client-supplied id is kept only when it is short and plain, so it
/// cannot smuggle anything into logs or upstream headers.
fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_generates() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("X-Forwarded-For", "10.0.0.1").unwrap();
        let id = apply(
            &mut req,
            Some("192.0.2.7".parse().unwrap()),
            true,
            Some("api.example.com"),
        )
        .unwrap();
        assert_eq!(req.headers["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(req.headers["x-forwarded-proto"], "https");
        assert_eq!(req.headers["x-forwarded-host"], "api.example.com");
        assert_eq!(req.headers[REQUEST_ID], id.as_str());
        assert_eq!(id.len(), 36);
    }

    #[test]
    fn keeps_a_plain_client_request_id() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("X-Request-Id", "abc-123").unwrap();
        assert_eq!(apply(&mut req, None, false, None).unwrap(), "abc-123");
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("X-Request-Id", "a b<script>").unwrap();
        assert_ne!(apply(&mut req, None, false, None).unwrap(), "a b<script>");
    }
}
