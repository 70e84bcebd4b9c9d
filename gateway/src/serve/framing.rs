//! One reading of a proxied request's framing, for the upstream too.
//!
//! Pingora accepts `Content-Length: 5, 5` (and the same value on two
//! lines), as RFC 9110 §8.6 allows, but forwards the header as it came. An
//! upstream that reads such a list differently — as 0, or as an error —
//! would then take the body for a second request on the shared keep-alive
//! connection, and answer another client's request with the attacker's
//! response. The RFC's condition for accepting the list is replacing it
//! with the single value, which is what happens here before the request
//! leaves; several `Transfer-Encoding` lines become one list, their
//! equivalent.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

/// Rewrites the framing headers of `req` (the request going upstream) to
/// one line each. A `Content-Length` list that is not one repeated number
/// is refused with `400`; Pingora refuses it first, so this only guards
/// the invariant.
pub fn single_framing_headers(req: &mut RequestHeader) -> Result<()> {
    // The usual request: at most one Content-Length, no list, no
    // Transfer-Encoding; nothing to look at further.
    let mut lines = req.headers.get_all(CONTENT_LENGTH).iter();
    let plain_length = match (lines.next(), lines.next()) {
        (None, _) => true,
        (Some(v), None) => !v.as_bytes().contains(&b','),
        _ => false,
    };
    if plain_length && !req.headers.contains_key(TRANSFER_ENCODING) {
        return Ok(());
    }
    let lengths: Vec<&HeaderValue> = req.headers.get_all(CONTENT_LENGTH).iter().collect();
    if lengths.len() > 1
        || lengths
            .first()
            .is_some_and(|v| v.as_bytes().contains(&b','))
    {
        let mut value: Option<u64> = None;
        for token in lengths
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        {
            let n = std::str::from_utf8(token)
                .ok()
                .map(|t| t.trim_matches([' ', '\t']))
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse::<u64>().ok());
            match (n, value) {
                (Some(n), None) => value = Some(n),
                (Some(n), Some(seen)) if n == seen => {}
                _ => {
                    return Error::e_explain(
                        ErrorType::HTTPStatus(400),
                        "Content-Length values differ",
                    )
                }
            }
        }
        if let Some(n) = value {
            req.insert_header(CONTENT_LENGTH, n)?;
        }
    }
    let encodings: Vec<&HeaderValue> = req.headers.get_all(TRANSFER_ENCODING).iter().collect();
    // RFC 9112 §7: chunked is applied once; an upstream that decodes it
    // twice would see another body than the gateway did.
    let chunked = encodings
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        .count();
    if chunked > 1 {
        return Error::e_explain(ErrorType::HTTPStatus(400), "chunked applied more than once");
    }
    if encodings.len() > 1 {
        let joined = encodings
            .iter()
            .map(|v| v.as_bytes())
            .collect::<Vec<_>>()
            .join(&b", "[..]);
        let joined = HeaderValue::from_bytes(&joined)
            .map_err(|e| Error::because(ErrorType::HTTPStatus(400), "Transfer-Encoding", e))?;
        req.insert_header(TRANSFER_ENCODING, joined)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/x", None).unwrap();
        for (n, v) in headers {
            req.append_header(n.to_string(), *v).unwrap();
        }
        req
    }

    fn values(req: &RequestHeader, name: http::HeaderName) -> Vec<String> {
        req.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_repeated_length_leaves_as_one_value() {
        for given in [
            &[("Content-Length", "5, 5")][..],
            &[("Content-Length", "5"), ("Content-Length", "5")],
            &[("Content-Length", "5 ,5"), ("Content-Length", " 5")],
        ] {
            let mut req = request(given);
            single_framing_headers(&mut req).unwrap();
            assert_eq!(values(&req, CONTENT_LENGTH), ["5"], "{given:?}");
        }
        let mut req = request(&[("Content-Length", "7")]);
        single_framing_headers(&mut req).unwrap();
        assert_eq!(values(&req, CONTENT_LENGTH), ["7"]);
    }

    #[test]
    fn differing_lengths_are_refused() {
        for given in [
            &[("Content-Length", "5, 6")][..],
            &[("Content-Length", "5"), ("Content-Length", "6")],
            &[("Content-Length", "5, ")],
            &[("Content-Length", "5, +5")],
        ] {
            let mut req = request(given);
            let e = single_framing_headers(&mut req).unwrap_err();
            assert_eq!(e.etype(), &ErrorType::HTTPStatus(400), "{given:?}");
        }
    }

    #[test]
    fn chunked_twice_is_refused() {
        for given in [
            &[("Transfer-Encoding", "chunked, chunked")][..],
            &[
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "Chunked"),
            ],
        ] {
            let mut req = request(given);
            let e = single_framing_headers(&mut req).unwrap_err();
            assert_eq!(e.etype(), &ErrorType::HTTPStatus(400), "{given:?}");
        }
    }

    #[test]
    fn transfer_encoding_lines_become_one_list() {
        let mut req = request(&[
            ("Transfer-Encoding", "gzip"),
            ("Transfer-Encoding", "chunked"),
        ]);
        single_framing_headers(&mut req).unwrap();
        assert_eq!(values(&req, TRANSFER_ENCODING), ["gzip, chunked"]);
    }
}
