//! A private NATS server with JetStream for a test: the installed
//! `nats-server`, storing in a temporary directory, on a free loopback
//! port. It can be stopped and started again on the same port and storage
//! (an outage), and the tests read what a stream holds with async-nats.
//!
//! Without `nats-server` the tests that need one are skipped with a loud
//! message, unless `TEST_REQUIRE` names `nats` (CI sets it), which turns a
//! missing server into a failure.

use super::{free_port, or_skip, wait_until};
use futures_util::StreamExt;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `nats-server -js`, killed on drop.
pub struct Nats {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    server: Option<Child>,
    rt: tokio::runtime::Runtime,
}

/// One message of a stream.
#[derive(Debug)]
pub struct Stored {
    /// Its subject.
    pub subject: String,
    /// Its `Nats-Msg-Id` header.
    pub msg_id: Option<String>,
    /// Its payload, as JSON.
    pub event: serde_json::Value,
}

/// `nats-server` on the `PATH`, else Debian's `/usr/sbin/nats-server`.
fn bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("nats-server"));
    on_path
        .chain([PathBuf::from("/usr/sbin/nats-server")])
        .find(|p| p.is_file())
}

impl Nats {
    /// Starts a server, or says loudly why the calling test is skipped.
    pub fn start(test: &str) -> Option<Nats> {
        let bin = or_skip(
            bin(),
            "nats",
            test,
            "no nats-server (apt-get install nats-server)",
        )?;
        let mut nats = Nats {
            dir: tempfile::tempdir().unwrap(),
            bin,
            port: free_port(),
            server: None,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        nats.start_server();
        Some(nats)
    }

    /// Starts (or starts again, on the same port and storage) the server
    /// and waits until it accepts connections.
    pub fn start_server(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .unwrap();
        let mut command = Command::new(&self.bin);
        command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path().join("store"))
            .stdout(Stdio::null())
            .stderr(log);
        self.server = Some(command.spawn().unwrap());
        let ready = wait_until(Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.log().contains("Server is ready")
        });
        assert!(ready, "nats-server did not start: {}", self.log());
    }

    /// Kills the server at once, as a crash or a network cut looks to
    /// clients. What it acknowledged is in its storage directory.
    pub fn stop_server(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The next start must not find the old "ready" line.
        let log = self.dir.path().join("nats.log");
        let old = self.dir.path().join("nats.log.old");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let mut all = std::fs::read_to_string(&old).unwrap_or_default();
        all.push_str(&text);
        std::fs::write(&old, all).unwrap();
        let _ = std::fs::remove_file(&log);
    }

    /// The URL the gateway and the tests connect with.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's log (of the current start).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// Runs `f` with a JetStream context on this server.
    fn with_js<T>(&self, f: impl AsyncFnOnce(async_nats::jetstream::Context) -> T) -> T {
        self.rt.block_on(async {
            let client = async_nats::connect(self.url()).await.unwrap();
            f(async_nats::jetstream::new(client)).await
        })
    }

    /// The stream's configuration and message count; `None` while it does
    /// not exist.
    pub fn stream_info(&self, stream: &str) -> Option<async_nats::jetstream::stream::Info> {
        self.with_js(async |js| {
            let mut s = js.get_stream(stream).await.ok()?;
            s.info().await.ok().cloned()
        })
    }

    /// Messages in `stream` (0 while it does not exist).
    pub fn count(&self, stream: &str) -> u64 {
        self.stream_info(stream).map_or(0, |i| i.state.messages)
    }

    /// Every message of `stream`, oldest first, read with an ephemeral
    /// pull consumer (bounded: 200 fetches at most).
    pub fn messages(&self, stream: &str) -> Vec<Stored> {
        use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
        self.with_js(async |js| {
            let mut s = js.get_stream(stream).await.unwrap();
            let total = s.info().await.unwrap().state.messages as usize;
            let consumer = s
                .create_consumer(pull::Config {
                    ack_policy: AckPolicy::None,
                    deliver_policy: DeliverPolicy::All,
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut out = Vec::new();
            for _ in 0..200 {
                if out.len() >= total {
                    break;
                }
                let mut batch = consumer
                    .fetch()
                    .max_messages(1000)
                    .expires(Duration::from_millis(500))
                    .messages()
                    .await
                    .unwrap();
                while let Some(m) = batch.next().await {
                    let m = m.unwrap();
                    out.push(Stored {
                        subject: m.subject.to_string(),
                        msg_id: m
                            .headers
                            .as_ref()
                            .and_then(|h| h.get("Nats-Msg-Id"))
                            .map(|v| v.as_str().to_string()),
                        event: serde_json::from_slice(&m.payload).unwrap_or_else(|e| {
                            panic!("payload is not JSON ({e}): {:?}", m.payload)
                        }),
                    });
                }
            }
            out
        })
    }

    /// Deletes `stream` with its messages, as an operator might.
    pub fn delete_stream(&self, stream: &str) {
        self.with_js(async |js| js.delete_stream(stream).await.unwrap());
    }

    /// Publishes `payload` to `subject` with `msg_id` as `Nats-Msg-Id` and
    /// says whether JetStream reported it a duplicate.
    pub fn publish_duplicate_check(&self, subject: &str, msg_id: &str, payload: &str) -> bool {
        use async_nats::jetstream::message::PublishMessage;
        self.with_js(async |js| {
            let msg = PublishMessage::build()
                .payload(payload.as_bytes().to_vec().into())
                .message_id(msg_id);
            let ack = js.send_publish(subject.to_string(), msg).await.unwrap();
            ack.await.unwrap().duplicate
        })
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop_server();
    }
}
