//! Process signals. Pingora handles SIGTERM, SIGINT and SIGQUIT itself but
//! would die on SIGHUP; this watcher takes its place, maps SIGINT to a
//! graceful stop too, and turns SIGHUP into a rules reload.

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

use super::reload::Reloader;
use super::snapshot::Trigger;

/// Waits for the signal that ends the server, reloading on each SIGHUP.
pub struct Signals {
    /// Reloads the rules.
    pub reloader: Arc<Reloader>,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let kinds = [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::quit(),
            SignalKind::hangup(),
        ];
        let mut streams = Vec::new();
        for kind in kinds {
            match signal(kind) {
                Ok(s) => streams.push(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for signals; stopping");
                    return ShutdownSignal::FastShutdown;
                }
            }
        }
        let [term, int, quit, hup] = &mut streams[..] else {
            return ShutdownSignal::FastShutdown;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: draining, then stopping");
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: draining, then stopping");
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = quit.recv() => {
                    tracing::info!("SIGQUIT: handing listeners to the new process");
                    return ShutdownSignal::GracefulUpgrade;
                }
                _ = hup.recv() => {
                    let reloader = self.reloader.clone();
                    tokio::spawn(async move { reloader.reload(Trigger::Sighup, false).await });
                }
            }
        }
    }
}
