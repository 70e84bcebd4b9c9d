//! Idle keep-alive connections to a pool's backends, for the requests the
//! fast path forwards itself. nginx's `keepalive` cache: a plain list per
//! pool behind one short lock, no task, timer or system call per
//! connection. An idle connection is not watched: one that sat longer than
//! [`IDLE_FOR`] is dropped when next looked at, and a request that finds
//! its reused connection closed by the backend meanwhile is sent again on
//! a new one (`serve::forward`), as nginx does.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Longest a connection waits here to be reused (as Pingora's pool).
pub const IDLE_FOR: Duration = Duration::from_secs(60);
/// Most idle connections kept per backend (nginx's `keepalive 64`).
const PER_BACKEND: usize = 64;

/// A pool's idle connections.
#[derive(Default)]
pub struct IdleConns(Mutex<Vec<(SocketAddr, TcpStream, Instant)>>);

impl IdleConns {
    /// An idle connection to `addr` that is still open, newest first.
    pub fn take(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(i) = idle.iter().rposition(|(a, _, _)| *a == addr) {
            let (_, conn, since) = idle.swap_remove(i);
            if since.elapsed() < IDLE_FOR {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` to `addr` for reuse, unless `PER_BACKEND` already wait.
    pub fn put(&self, addr: SocketAddr, conn: TcpStream) {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.iter().filter(|(a, _, _)| *a == addr).count() < PER_BACKEND {
            idle.push((addr, conn, Instant::now()));
        }
    }
}
