//! What went wrong with a proxied request: Pingora's errors sorted into the
//! status the client gets and the reason counted in
//! `gateway_upstream_errors_total`.

use pingora::{Error, ErrorSource, ErrorType};

use crate::metrics::UpstreamFailure;

/// Every backend of the pool is down.
pub const NO_HEALTHY: ErrorType = ErrorType::Custom("no healthy backend");
/// Every backend still eligible already failed to connect for this request.
pub const ALL_FAILED: ErrorType = ErrorType::Custom("no backend left to retry");

/// Maps a proxy error to the status the client gets and the failure kind.
pub fn classify(e: &Error) -> (u16, Option<UpstreamFailure>) {
    match e.etype() {
        t if *t == NO_HEALTHY => (503, Some(UpstreamFailure::NoHealthy)),
        t if *t == ALL_FAILED => (502, Some(UpstreamFailure::Connect)),
        ErrorType::HTTPStatus(code) => (*code, None),
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            (504, Some(UpstreamFailure::Timeout))
        }
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::TLSHandshakeFailure
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError
        | ErrorType::ConnectProxyFailure
        | ErrorType::SocketError
            // Pingora files a client's bytes after its request's end under
            // ConnectError too: that is no upstream failure.
            if e.esource() != &ErrorSource::Downstream =>
        {
            (502, Some(UpstreamFailure::Connect))
        }
        _ => match e.esource() {
            ErrorSource::Upstream => (502, Some(UpstreamFailure::Reset)),
            ErrorSource::Downstream => match e.etype() {
                // A body that stopped for `body_timeout`: nginx's 408.
                ErrorType::ReadTimedout => (408, None),
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                    (0, None)
                }
                _ => (400, None),
            },
            _ => (500, None),
        },
    }
}
