//! Percent-encoding for the position a value lands in.
//!
//! Values that come from a request (captures, the incoming query) are
//! already percent-encoded by the client. They are copied as they are where
//! their bytes are legal in the target position, valid `%XX` escapes are kept,
//! and every other byte (CR, LF, space, quotes, `#` in a query, a stray `%`)
//! is escaped. That preserves what the client meant byte for byte while
//! making it impossible for a value to end the position early.

/// Which bytes may be copied unescaped.
pub(crate) struct Keep([bool; 256]);

const fn keep(extra: &[u8]) -> Keep {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_' || c == b'~';
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    Keep(t)
}

/// A path capture (`{*rest}` keeps its slashes).
pub(crate) const PATH: Keep = keep(b"!$&'()*+,;=:@/");
/// A capture placed inside a query value: `&`, `=`, `+` and `#` would change
/// the meaning of the query, so they are escaped.
pub(crate) const QUERY_VALUE: Keep = keep(b"!$'()*,;:@/?");
/// The incoming query carried over whole: its `&` and `=` are structure.
pub(crate) const QUERY: Keep = keep(b"!$&'()*+,;=:@/?");
/// A capture inside the fragment.
pub(crate) const FRAGMENT: Keep = keep(b"!$&'()*+,;=:@/?");
/// Every byte a rendered location may hold after its `scheme://host`.
pub(crate) const LOCATION: Keep = keep(b"!$&'()*+,;=:@/?#%");

fn is_hex(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_hexdigit())
}

/// Appends `input` to `out`, escaping what `keep` does not allow.
pub(crate) fn push(out: &mut String, input: &str, keep: &Keep) {
    let bytes = input.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let ok = keep.0[b as usize]
            || (b == b'%' && is_hex(bytes.get(i + 1)) && is_hex(bytes.get(i + 2)));
        if !ok {
            // `start == i` inside a multi-byte character whose earlier
            // bytes were just escaped: nothing to copy, and slicing there
            // would not be on a character boundary.
            if start < i {
                out.push_str(&input[start..i]);
            }
            push_escape(out, b);
            start = i + 1;
        }
    }
    // Escaped bytes are always whole: a multi-byte character has all its
    // bytes escaped, so the slices above fall on character boundaries.
    out.push_str(&input[start..]);
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 15) as usize] as char);
}

/// True when every byte of `s` is allowed by `keep`.
pub(crate) fn all_kept(s: &str, keep: &Keep) -> bool {
    s.bytes().all(|b| keep.0[b as usize])
}

/// Decodes `%XX` escapes of unreserved characters (RFC 3986 §6.2.2.2: they
/// are equivalent to the plain character) and leaves every other escape as
/// written. Errors on a `%` that is not followed by two hex digits.
pub(crate) fn decode_unreserved(input: &str) -> Result<std::borrow::Cow<'_, str>, ()> {
    let bytes = input.as_bytes();
    if memchr::memchr(b'%', bytes).is_none() {
        return Ok(input.into());
    }
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if !(is_hex(bytes.get(i + 1)) && is_hex(bytes.get(i + 2))) {
                return Err(());
            }
            let v = (hex(bytes[i + 1]) << 4) | hex(bytes[i + 2]);
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(v as char);
            } else {
                out.push_str(&input[i..i + 3]);
            }
            i += 3;
        } else {
            let ch_len = utf8_len(b);
            out.push_str(&input[i..i + ch_len]);
            i += ch_len;
        }
    }
    Ok(out.into())
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str, k: &Keep) -> String {
        let mut o = String::new();
        push(&mut o, s, k);
        o
    }

    #[test]
    fn escapes_only_what_the_position_forbids() {
        assert_eq!(enc("a/b c", &PATH), "a/b%20c");
        assert_eq!(enc("x\r\nLocation: evil", &PATH), "x%0D%0ALocation:%20evil");
        assert_eq!(enc("%41%zz%", &PATH), "%41%25zz%25");
        assert_eq!(enc("a&b=c+d#e", &QUERY_VALUE), "a%26b%3Dc%2Bd%23e");
        assert_eq!(enc("a=1&b&c=%20+x", &QUERY), "a=1&b&c=%20+x");
        assert_eq!(enc("q=\"<é>\"#", &QUERY), "q=%22%3C%C3%A9%3E%22%23");
        assert_eq!(enc("é", &PATH), "%C3%A9");
        assert_eq!(enc("aéb€", &PATH), "a%C3%A9b%E2%82%AC");
    }

    #[test]
    fn decodes_unreserved_only() {
        assert_eq!(decode_unreserved("/p/%41%2F%7e").unwrap(), "/p/A%2F~");
        assert_eq!(decode_unreserved("/plain").unwrap(), "/plain");
        assert_eq!(decode_unreserved("/é%2d").unwrap(), "/é-");
        assert!(decode_unreserved("/bad%4").is_err());
        assert!(decode_unreserved("/bad%zz").is_err());
    }
}
