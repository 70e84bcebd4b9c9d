//! `loadtest upstream`: a fast HTTP/1.1 upstream for the `proxy` scenario.
//! Every request gets `200 ok`, `/healthz` included; keep-alive and
//! pipelining work; request bodies with `Content-Length` are skipped.

use anyhow::{Context, Result};
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The body of every answer.
pub const BODY: &[u8] = b"ok\n";
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
const CLOSE_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A request head found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of head and body.
    pub len: usize,
    /// The client asked to close.
    pub close: bool,
}

/// Parses one request at the start of `buf`: `Ok(None)` while incomplete.
pub fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, &'static str> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return if buf.len() > 64 * 1024 {
            Err("request head larger than 64 KiB")
        } else {
            Ok(None)
        };
    };
    let mut body = 0usize;
    let mut close = false;
    for line in buf[..end].split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = std::str::from_utf8(value)
            .map_err(|_| "header value is not UTF-8")?
            .trim();
        if name.eq_ignore_ascii_case(b"content-length") {
            body = value.parse().map_err(|_| "bad content-length")?;
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err("chunked request bodies are not supported");
        }
    }
    let len = end + 4 + body;
    Ok((buf.len() >= len).then_some(RequestHead { len, close }))
}

async fn handle(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut out = Vec::with_capacity(8 * 1024);
    loop {
        let mut close = false;
        loop {
            match parse_request(&buf) {
                Ok(Some(head)) => {
                    buf.advance(head.len);
                    if head.close {
                        out.extend_from_slice(CLOSE_RESPONSE);
                        close = true;
                        break;
                    }
                    out.extend_from_slice(RESPONSE);
                }
                Ok(None) => break,
                Err(_) => {
                    out.extend_from_slice(BAD_REQUEST);
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            return;
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Serves on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) -> Result<()> {
    loop {
        let (stream, _) = listener.accept().await.context("accept")?;
        tokio::spawn(handle(stream));
    }
}

/// `loadtest upstream`: binds `listen` and serves with `threads` runtime
/// threads.
pub fn run(listen: SocketAddr, threads: usize) -> Result<()> {
    let rt = crate::runtime(threads)?;
    rt.block_on(async {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!("loadtest upstream listening on {}", listener.local_addr()?);
        serve(listener).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_the_body() {
        for r in [RESPONSE, CLOSE_RESPONSE] {
            assert!(r.ends_with(BODY));
            let head = std::str::from_utf8(&r[..r.len() - BODY.len()]).unwrap();
            assert!(head.contains(&format!("Content-Length: {}\r\n", BODY.len())));
        }
    }

    #[test]
    fn requests() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET").unwrap(),
            Some(RequestHead {
                len: 27,
                close: false
            })
        );
        assert_eq!(
            parse_request(b"PUT / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab").unwrap(),
            Some(RequestHead {
                len: 39,
                close: false
            })
        );
        assert_eq!(
            parse_request(b"PUT / HTTP/1.1\r\nContent-Length: 2\r\n\r\na").unwrap(),
            None
        );
        assert!(
            parse_request(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap()
                .close
        );
    }
}
