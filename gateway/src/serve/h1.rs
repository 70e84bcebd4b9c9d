//! HTTP/1 header lines written as bytes: the fast path's own answers
//! (`respond::Answer::encode_h1`), the requests it forwards and the
//! answers it relays (`forward`). One writer, so every path frames a line
//! and ends a head the same way.

use rules::HeaderChanges;

/// Appends `name: value` and CRLF.
pub fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the headers a route's changes set.
pub fn set_lines(out: &mut Vec<u8>, changes: &HeaderChanges) {
    for (name, value) in changes.set() {
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// Ends an answer's head as Pingora does on every answer it writes:
/// `Date` and `Connection` anew, then the blank line.
pub fn end_answer(out: &mut Vec<u8>, keep_alive: bool) {
    line(
        out,
        b"date",
        pingora::protocols::http::date::get_cached_date().as_bytes(),
    );
    line(
        out,
        b"connection",
        if keep_alive { b"keep-alive" } else { b"close" },
    );
    out.extend_from_slice(b"\r\n");
}
