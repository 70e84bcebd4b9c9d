//! A link's version as its `ETag`, and `If-Match` on a change: a partner
//! that read version 3 changes the link only if it is still at 3
//! (optimistic concurrency, RFC 9110 §13.1.1).

use http::{HeaderMap, HeaderValue, StatusCode};

use crate::web::Problem;

/// `version` as an `ETag`: `"3"`.
pub fn etag(version: i64) -> HeaderValue {
    // Digits and quotes only.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version `If-Match` asks for: `"3"`, `W/"3"` or `3`; `*` is any.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(v) = headers.get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse::<i64>().map(Some).map_err(|_| {
        Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "version-mismatch",
            format!("If-Match `{text}` is not a version of this link (send the ETag)"),
        )
    })
}

/// `412`: the link is at version `now`, not the `expected` one; its
/// `ETag` says which it is.
pub fn stale(expected: i64, now: i64) -> Problem {
    Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "version-mismatch",
        format!("the link is at version {now}, not {expected}; read it again and retry"),
    )
    .header(http::header::ETAG, etag(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(value: &str) -> Result<Option<i64>, Problem> {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::IF_MATCH,
            HeaderValue::from_str(value).unwrap(),
        );
        if_match(&h)
    }

    #[test]
    fn if_match_takes_the_etag_its_weak_form_a_bare_number_or_any() {
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert_eq!(asked("\"3\"").unwrap(), Some(3));
        assert_eq!(asked("W/\"3\"").unwrap(), Some(3));
        assert_eq!(asked(" 3 ").unwrap(), Some(3));
        assert_eq!(asked("*").unwrap(), None);
        assert!(asked("\"abc\"").is_err());
        assert_eq!(etag(7), HeaderValue::from_static("\"7\""));
    }
}
