//! Publishing a batch to JetStream and matching the acks to it.

use std::borrow::Cow;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures_util::stream::StreamExt;
use serde::Deserialize;

use super::route::Outgoing;
use crate::clicks::event::push_uint;
use crate::clicks::spill::Unsent;

/// What a publish needs, apart from the runtime it runs on.
pub(super) struct Publisher {
    js: jetstream::Context,
    stream: stream::Config,
    /// The stream was found or created (checked again after a
    /// "stream not found").
    stream_ready: bool,
    ack_timeout: Duration,
    max_in_flight: usize,
    client: async_nats::Client,
    /// Acks arrive at `<inbox>.<publish number>`.
    inbox: String,
    /// The subscription to `<inbox>.*`, made at the first publish.
    acks: Option<async_nats::Subscriber>,
    /// The next publish number.
    next: u64,
}

impl Publisher {
    /// A publisher to `stream` (made when missing) through `client`.
    pub(super) fn new(
        client: async_nats::Client,
        js: jetstream::Context,
        stream: stream::Config,
        ack_timeout: Duration,
        max_in_flight: usize,
    ) -> Publisher {
        Publisher {
            js,
            stream,
            stream_ready: false,
            ack_timeout,
            max_in_flight,
            inbox: client.new_inbox(),
            client,
            acks: None,
            next: 0,
        }
    }

    async fn ensure_stream(&mut self) -> Result<(), String> {
        let name = self.stream.name.clone();
        let created = tokio::time::timeout(
            self.ack_timeout,
            self.js.get_or_create_stream(self.stream.clone()),
        )
        .await
        .map_err(|_| format!("stream {name}: no answer in {:?}", self.ack_timeout))?
        .map_err(|e| format!("stream {name}: {e}"))?;
        let info = created.cached_info();
        // An existing stream is used as it is: its retention and subjects
        // are the operator's (the log shows them).
        tracing::info!(
            stream = %name,
            subjects = ?info.config.subjects,
            max_age = ?info.config.max_age,
            duplicate_window = ?info.config.duplicate_window,
            "click stream ready"
        );
        self.stream_ready = true;
        Ok(())
    }

    /// The subscription acks arrive on, made at the first publish and
    /// again after the client closed it.
    async fn acks(&mut self) -> Result<&mut async_nats::Subscriber, String> {
        if self.acks.is_none() {
            let subscribe = self.client.subscribe(format!("{}.*", self.inbox));
            let sub = tokio::time::timeout(self.ack_timeout, subscribe)
                .await
                .map_err(|_| "no answer to subscribing for acks".to_string())?
                .map_err(|e| format!("subscribing for acks: {e}"))?;
            self.acks = Some(sub);
        }
        self.acks
            .as_mut()
            .ok_or_else(|| "no ack subscription".to_string())
    }

    /// Publishes every event, up to `max_in_flight` awaiting their acks at
    /// once (pipelined: one round trip per batch, not per event).
    ///
    /// Acks come back on one subscription, each to the reply subject
    /// `<inbox>.<publish number>`, as Go's `PublishAsync` does. A request
    /// per publish (async-nats' `send_publish`) cost an inbox name, a
    /// channel, a semaphore permit, a timer and an untagged-enum parse per
    /// event.
    pub(super) async fn publish(&mut self, batch: Vec<Outgoing>) -> Result<(), Unsent> {
        let n = batch.len();
        if !self.stream_ready {
            self.ensure_stream().await.map_err(|e| Unsent::all(n, e))?;
        }
        let (ack_timeout, max_in_flight) = (self.ack_timeout, self.max_in_flight);
        // Numbers run on across batches: an ack arriving after its batch
        // gave up on it is recognised as stale, not taken for another.
        let first = self.next;
        self.next += n as u64;
        let mut reply = String::with_capacity(self.inbox.len() + 21);
        reply.push_str(&self.inbox);
        reply.push('.');
        let prefix = reply.len();
        let client = self.client.clone();
        let acks = self.acks().await.map_err(|e| Unsent::all(n, e))?;
        let mut waiting = Waiting::new(first, n, prefix);
        let mut deadline = tokio::time::Instant::now() + ack_timeout;
        for (i, event) in batch.into_iter().enumerate() {
            if waiting.in_flight >= max_in_flight {
                if !waiting.collect(acks, deadline, max_in_flight - 1).await {
                    break;
                }
                deadline = tokio::time::Instant::now() + ack_timeout;
            }
            reply.truncate(prefix);
            push_uint(&mut reply, first + i as u64);
            // Bounded: with the connection gone the client's send buffer
            // fills and a publish would wait for the reconnect.
            let publish = client.publish_with_reply_and_headers(
                event.subject,
                async_nats::Subject::from(reply.as_str()),
                event.headers,
                event.payload,
            );
            match tokio::time::timeout_at(deadline, publish).await {
                Ok(Ok(())) => {
                    waiting.in_flight += 1;
                    waiting.sent += 1;
                }
                Ok(Err(e)) => {
                    waiting.error = e.to_string();
                    break;
                }
                Err(_) => {
                    waiting.error = "publish timed out".into();
                    break;
                }
            }
        }
        waiting.collect(acks, deadline, 0).await;
        if waiting.closed {
            // The client is closing; a new subscription next time.
            self.acks = None;
        }
        if waiting.stream_missing {
            self.stream_ready = false;
        }
        let lines: Vec<usize> = (0..n)
            .filter(|&i| i >= waiting.sent || waiting.pending[i])
            .collect();
        if lines.is_empty() {
            Ok(())
        } else {
            Err(Unsent {
                lines,
                error: waiting.error,
            })
        }
    }
}

/// The acknowledgements a batch waits for.
struct Waiting {
    /// The publish number of the batch's first event.
    first: u64,
    /// The length of `<inbox>.` in an ack's subject.
    prefix: usize,
    /// Per event: not acknowledged (yet).
    pending: Vec<bool>,
    /// Events published so far (the first `sent` of the batch).
    sent: usize,
    /// Events published and neither acknowledged nor refused.
    in_flight: usize,
    /// The last refusal or failure, for the log line.
    error: String,
    /// A publish found no stream listening.
    stream_missing: bool,
    /// The ack subscription ended.
    closed: bool,
}

/// What JetStream answers a publish: `{"stream":…,"seq":…}`, or an error.
#[derive(Deserialize)]
struct PubAck<'a> {
    #[serde(borrow, default)]
    error: Option<ApiError<'a>>,
}

#[derive(Deserialize)]
struct ApiError<'a> {
    #[serde(default)]
    code: u16,
    #[serde(borrow, default)]
    description: Cow<'a, str>,
}

impl Waiting {
    fn new(first: u64, n: usize, prefix: usize) -> Self {
        Waiting {
            first,
            prefix,
            pending: vec![true; n],
            sent: 0,
            in_flight: 0,
            error: String::new(),
            stream_missing: false,
            closed: false,
        }
    }

    /// Takes acks until at most `left` are in flight; false when the
    /// deadline passed or the subscription ended first.
    async fn collect(
        &mut self,
        acks: &mut async_nats::Subscriber,
        deadline: tokio::time::Instant,
        left: usize,
    ) -> bool {
        while self.in_flight > left {
            match tokio::time::timeout_at(deadline, acks.next()).await {
                Ok(Some(ack)) => self.note(&ack),
                Ok(None) => {
                    self.closed = true;
                    self.error = "ack subscription closed".into();
                    return false;
                }
                Err(_) => {
                    if self.error.is_empty() {
                        self.error = "no acknowledgement within clicks.ack_timeout".into();
                    }
                    return false;
                }
            }
        }
        true
    }

    /// Takes one message from the ack subscription.
    fn note(&mut self, ack: &async_nats::Message) {
        let Some(i) = ack
            .subject
            .get(self.prefix..)
            .and_then(|n| n.parse::<u64>().ok())
            .and_then(|n| n.checked_sub(self.first))
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.sent && self.pending[i])
        else {
            return; // stale: its batch is over
        };
        self.in_flight = self.in_flight.saturating_sub(1);
        if ack.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            self.stream_missing = true;
            self.error = "no stream takes the subject".into();
            return;
        }
        // A successful ack starts `{"stream":`; only others are parsed.
        if ack.payload.starts_with(b"{\"stream\"") {
            self.pending[i] = false;
            return;
        }
        match serde_json::from_slice::<PubAck<'_>>(&ack.payload) {
            Ok(PubAck { error: None }) => self.pending[i] = false,
            Ok(PubAck { error: Some(e) }) => {
                self.error = format!("JetStream refused ({}): {}", e.code, e.description)
            }
            Err(e) => self.error = format!("unreadable acknowledgement: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ack(subject: &str, status: Option<u16>, payload: &str) -> async_nats::Message {
        async_nats::Message {
            subject: subject.into(),
            reply: None,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            headers: None,
            status: status.map(|s| async_nats::StatusCode::from_u16(s).unwrap()),
            description: None,
            length: payload.len(),
        }
    }

    #[test]
    fn acks_are_matched_to_their_publish_by_number() {
        let inbox = "_INBOX.abc";
        // Publishes 100..104 of this batch, all sent.
        let mut w = Waiting::new(100, 4, inbox.len() + 1);
        w.sent = 4;
        w.in_flight = 4;
        w.note(&ack(
            "_INBOX.abc.102",
            None,
            r#"{"stream":"CLICKS","seq":7}"#,
        ));
        // Stale (an earlier batch), out of range, foreign: ignored.
        w.note(&ack(
            "_INBOX.abc.99",
            None,
            r#"{"stream":"CLICKS","seq":1}"#,
        ));
        w.note(&ack(
            "_INBOX.abc.104",
            None,
            r#"{"stream":"CLICKS","seq":1}"#,
        ));
        w.note(&ack("_INBOX.abc.x", None, r#"{"stream":"CLICKS","seq":1}"#));
        // A second ack for the same publish does not count twice.
        w.note(&ack(
            "_INBOX.abc.102",
            None,
            r#"{"stream":"CLICKS","seq":7}"#,
        ));
        assert_eq!(
            (w.pending.clone(), w.in_flight),
            (vec![true, true, false, true], 3)
        );
        // A duplicate is stored already: delivered.
        w.note(&ack(
            "_INBOX.abc.100",
            None,
            r#"{"domain":"","stream":"CLICKS","seq":7,"duplicate":true}"#,
        ));
        // A refusal stays pending (published again, then spilled).
        w.note(&ack(
            "_INBOX.abc.101",
            None,
            r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
        ));
        assert_eq!(w.pending, vec![false, true, false, true]);
        assert_eq!(
            w.error,
            "JetStream refused (503): maximum messages exceeded"
        );
        assert!(!w.stream_missing);
        w.note(&ack("_INBOX.abc.103", Some(503), ""));
        assert!(w.stream_missing);
        assert_eq!(
            (w.pending, w.in_flight),
            (vec![false, true, false, true], 0)
        );
    }
}
