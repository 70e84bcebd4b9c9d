//! The checks of a link's fields, shared by bulk CSV rows
//! (`compile/links.rs`) and stored links (`stored.rs`): one code path, so
//! a link is refused or taken the same way whichever way it arrives.

use crate::template::{check_url, split_origin};

/// Longest request path a rule may match, and so the longest code.
pub(crate) const MAX_PATH_LEN: usize = 8 * 1024;

/// Statuses a link may redirect with.
pub(crate) const LINK_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// Checks a code as written (before normalization).
pub(crate) fn code(code: &str) -> Result<(), String> {
    if code.is_empty() {
        return Err("is empty".into());
    }
    if code
        .bytes()
        .any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#')
        || code.starts_with('/')
    {
        return Err(format!(
            "`{code}` must not contain spaces, control characters, `?`, `#` or start with /"
        ));
    }
    if code.len() > MAX_PATH_LEN {
        return Err(format!(
            "is {} bytes long; the limit is {MAX_PATH_LEN}",
            code.len()
        ));
    }
    Ok(())
}

/// Checks a redirect status.
pub(crate) fn status(status: u16) -> Result<u16, String> {
    if LINK_STATUSES.contains(&status) {
        Ok(status)
    } else {
        Err(format!("`{status}` must be 301, 302, 303, 307 or 308"))
    }
}

/// Checks a fixed destination (scheme allowed, fixed host, nothing that
/// must be escaped); returns the length of its origin.
pub(crate) fn destination(url: &str, schemes: &[String]) -> Result<usize, String> {
    let (origin_len, scheme) = split_origin(url)?;
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return Err(format!("has scheme `{scheme}`, which is not allowed"));
    }
    check_url(url, origin_len)?;
    Ok(origin_len)
}

/// Checks an ISO 3166 country code; returns it in upper case.
pub(crate) fn country(code: &str) -> Result<[u8; 2], String> {
    match code.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Ok([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => Err(format!("`{code}` is not a two-letter country code")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_once_for_every_kind_of_link() {
        assert!(code("summer-sale").is_ok());
        assert!(code("a/b").is_ok());
        for bad in ["", "/x", "a b", "a?b", "a#b", "a\u{7f}"] {
            assert!(code(bad).is_err(), "{bad:?}");
        }
        assert_eq!(status(308), Ok(308));
        assert!(status(200).is_err());
        let web = ["http".to_string(), "https".to_string()];
        assert_eq!(destination("https://shop.example/x", &web), Ok(20));
        assert!(destination("javascript://x", &web).is_err());
        assert!(destination("https://shop.example/a b", &web).is_err());
        assert_eq!(country("de"), Ok(*b"DE"));
        assert!(country("DEU").is_err());
    }
}
