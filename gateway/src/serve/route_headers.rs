//! A route's `request_headers` and `response_headers`, applied to the
//! messages Pingora sends. The rules have refused every header the gateway
//! writes itself, so the order against the forwarding headers does not
//! matter; what is here is only the order within one table.

use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;
use rules::HeaderChanges;

/// Applies `changes` to the request about to go upstream.
pub fn request(req: &mut RequestHeader, changes: &HeaderChanges) -> Result<()> {
    for name in changes.remove() {
        req.remove_header(name);
    }
    for (name, value) in changes.set() {
        req.insert_header(name.clone(), value.clone())?;
    }
    Ok(())
}

/// Applies `changes` to a response about to go to the client.
pub fn response(resp: &mut ResponseHeader, changes: &HeaderChanges) -> Result<()> {
    for name in changes.remove() {
        resp.remove_header(name);
    }
    for (name, value) in changes.set() {
        resp.insert_header(name.clone(), value.clone())?;
    }
    Ok(())
}
