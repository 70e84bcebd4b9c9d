//! The NATS JetStream click sink on the real binary and a real
//! `nats-server`: one message per click with the click id as its
//! `Nats-Msg-Id`, the stream created as configured, JetStream's
//! de-duplication, and an outage: redirects keep answering, events spill to
//! files and are replayed once NATS is back, each stored once, and SIGTERM
//! during an outage keeps them on disk for the next start.
//!
//! Everything runs on loopback with bounded loops; nothing asserts on how
//! fast anything is.

use crate::clicks::{
    click_id_of, click_ids, clicks_env, read_spilled, start, stop, unique, Client,
};
use crate::harness::{wait_until, Gateway, Nats, Scrape, Stored, ANDROID};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

const STREAM: &str = "CLICKS";

/// Environment for the NATS sink on `nats`, spilling under `dir`.
fn nats_env(dir: &Path, nats: &Nats) -> Vec<(&'static str, String)> {
    clicks_env(
        dir,
        &[
            ("GATEWAY_CLICKS_SINK", "nats"),
            ("GATEWAY_CLICKS_URL", &nats.url()),
            ("GATEWAY_CLICKS_BATCH_SIZE", "100"),
            ("GATEWAY_CLICKS_FLUSH_INTERVAL", "100ms"),
            ("GATEWAY_CLICKS_ACK_TIMEOUT", "1s"),
        ],
    )
}

/// Sends `n` redirects from distinct visitors (distinct User-Agents, so
/// de-duplication keeps none back), each answered 302, and adds their
/// click ids to `sent`.
fn click(gw: &Gateway, n: usize, tag: &str, sent: &mut Vec<String>) {
    let mut client = Client::new(gw.addr);
    for i in 0..n {
        let ua = format!("{ANDROID} nats/{tag}/{i}");
        let r = client.request("GET", &format!("/p/{tag}{i}"), &[("User-Agent", &ua)]);
        assert_eq!(r.status, 302, "redirect {tag}/{i}");
        sent.push(click_id_of(r.location()));
    }
}

/// Waits (bounded) until the stream holds `n` messages.
fn wait_for_messages(nats: &Nats, gw: &Gateway, n: u64) {
    assert!(
        wait_until(Duration::from_secs(60), || nats.count(STREAM) >= n),
        "stream holds {} of {n} messages; log:\n{}",
        nats.count(STREAM),
        gw.log_tail()
    );
}

/// Checks the stream holds each click of `sent` exactly once, as a
/// message whose `Nats-Msg-Id` is its click id, and returns the messages.
fn assert_stored_once(nats: &Nats, sent: &[String]) -> Vec<Stored> {
    let stored = nats.messages(STREAM);
    let ids: Vec<String> = stored
        .iter()
        .map(|m| {
            let id = m.msg_id.clone().expect("every message has a Nats-Msg-Id");
            assert_eq!(
                m.event["click_id"],
                id.as_str(),
                "Nats-Msg-Id is the click id"
            );
            id
        })
        .collect();
    assert_eq!(
        unique(&ids, "stream"),
        sent.iter().cloned().collect::<HashSet<_>>(),
        "the stream holds exactly the clicks sent"
    );
    assert_eq!(stored.len(), sent.len());
    stored
}

/// Waits (bounded) until every click of `sent` is in the stream and the
/// spill files under `dir` are gone, then checks each is stored once.
fn assert_replayed(nats: &Nats, gw: &Gateway, dir: &Path, sent: &[String]) {
    wait_for_messages(nats, gw, sent.len() as u64);
    assert!(
        wait_until(Duration::from_secs(30), || read_spilled(dir).is_empty()),
        "spill files are removed once delivered"
    );
    assert_stored_once(nats, sent);
}

fn delivered(text: &Scrape) -> f64 {
    text.sum("gateway_click_events_delivered_total", &[("sink", "nats")])
}

fn spilled(text: &Scrape) -> f64 {
    text.sum("gateway_click_events_spilled_total", &[])
}

#[test]
fn nats_sink_stores_each_click_once_with_its_id_as_msg_id() {
    const N: usize = 1000;
    let Some(nats) = Nats::start("nats_sink_stores_each_click_once_with_its_id_as_msg_id") else {
        return;
    };
    let clicks = tempfile::tempdir().unwrap();
    let mut gw = start(&nats_env(clicks.path(), &nats));
    let mut sent = Vec::new();
    click(&gw, N, "a", &mut sent);
    wait_for_messages(&nats, &gw, N as u64);

    let stored = assert_stored_once(&nats, &sent);
    for m in &stored {
        assert_eq!(m.subject, "clicks.go_example_com", "subject of the host");
        assert_eq!(m.event["schema"], 1);
        assert_eq!(m.event["host"], "go.example.com");
        assert_eq!(m.event["device"], "android");
    }
    let text = gw.scrape_until(Duration::from_secs(10), "every ack counted", |t| {
        delivered(t) >= N as f64
    });
    assert_eq!(delivered(&text), N as f64);
    assert_eq!(spilled(&text), 0.0);

    // The stream was created as configured.
    let info = nats.stream_info(STREAM).expect("the stream exists");
    assert_eq!(info.config.subjects, vec!["clicks.*".to_string()]);
    assert_eq!(info.config.max_age, Duration::from_secs(7 * 86400));
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );

    // Publishing the same ids again (a retry after a lost ack) stores
    // nothing new.
    for (id, m) in sent.iter().zip(&stored).take(100) {
        assert!(
            nats.publish_duplicate_check(&m.subject, id, &m.event.to_string()),
            "{id} published again is a duplicate"
        );
    }
    assert_eq!(nats.count(STREAM), N as u64);

    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}; log:\n{}", gw.log_text());
    assert!(read_spilled(clicks.path()).is_empty());
}

#[test]
fn nats_outage_spills_replays_each_click_once_and_sigterm_keeps_the_spill() {
    // Clicks while up, down, back up, and down at the SIGTERM.
    let [up, down, back, at_exit] = [200, 300, 50, 100];
    let Some(mut nats) =
        Nats::start("nats_outage_spills_replays_each_click_once_and_sigterm_keeps_the_spill")
    else {
        return;
    };
    let clicks = tempfile::tempdir().unwrap();
    let env = nats_env(clicks.path(), &nats);
    let mut gw = start(&env);
    let mut sent = Vec::new();

    // Up.
    click(&gw, up, "up", &mut sent);
    wait_for_messages(&nats, &gw, up as u64);

    // Down: redirects keep answering and the events spill.
    nats.stop_server();
    click(&gw, down, "down", &mut sent);
    let text = gw.scrape_until(
        Duration::from_secs(60),
        "the outage's events spilled",
        |t| spilled(t) >= down as f64,
    );
    assert_eq!(spilled(&text), down as f64);
    assert_eq!(
        text.sum("gateway_click_events_dropped_total", &[]),
        0.0,
        "nothing dropped"
    );
    assert!(
        gw.log_text().contains("NATS unreachable"),
        "the outage is logged:\n{}",
        gw.log_tail()
    );
    let on_disk = click_ids(&read_spilled(clicks.path()));
    assert_eq!(
        unique(&on_disk, "spill"),
        sent[up..].iter().cloned().collect::<HashSet<_>>(),
        "the spill files hold the outage's events"
    );

    // Back (same port, same storage): the spill files are replayed, with
    // their ids, and new events flow; every click is stored once.
    nats.start_server();
    click(&gw, back, "back", &mut sent);
    assert_replayed(&nats, &gw, clicks.path(), &sent);
    // JetStream has stored a batch before its acks are all counted.
    let text = gw.scrape_until(Duration::from_secs(10), "every ack counted", |t| {
        delivered(t) >= sent.len() as f64
    });
    assert!(
        delivered(&text) >= sent.len() as f64,
        "{}",
        delivered(&text)
    );

    // Down again, then SIGTERM: the events stay spilled on disk.
    nats.stop_server();
    click(&gw, at_exit, "exit", &mut sent);
    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}; log:\n{}", gw.log_text());
    let on_disk = click_ids(&read_spilled(clicks.path()));
    let stored_before = up + down + back;
    assert_eq!(
        unique(&on_disk, "spill at exit"),
        sent[stored_before..]
            .iter()
            .cloned()
            .collect::<HashSet<_>>(),
        "the events of the second outage are on disk"
    );

    // The next start replays them, each stored once.
    nats.start_server();
    let mut gw2 = start(&env);
    assert_replayed(&nats, &gw2, clicks.path(), &sent);
    let status = stop(&mut gw2);
    assert!(status.success(), "exit {status:?}");
}

#[test]
fn a_deleted_stream_is_created_again_and_loses_no_click() {
    let Some(nats) = Nats::start("a_deleted_stream_is_created_again_and_loses_no_click") else {
        return;
    };
    let clicks = tempfile::tempdir().unwrap();
    let mut gw = start(&nats_env(clicks.path(), &nats));
    let mut before = Vec::new();
    click(&gw, 50, "a", &mut before);
    wait_for_messages(&nats, &gw, 50);

    // Publishes now find no stream ("no responders"): the gateway creates
    // it again and publishes what was refused, from the retry or the
    // spill.
    nats.delete_stream(STREAM);
    assert!(nats.stream_info(STREAM).is_none());
    let mut after = Vec::new();
    click(&gw, 50, "b", &mut after);
    assert_replayed(&nats, &gw, clicks.path(), &after);
    let text = gw.scrape_until(Duration::from_secs(10), "every ack counted", |t| {
        delivered(t) >= 100.0
    });
    assert_eq!(delivered(&text), 100.0);
    assert!(
        gw.log_text().matches("click stream ready").count() >= 2,
        "the stream was made again; log:\n{}",
        gw.log_tail()
    );
    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}; log:\n{}", gw.log_text());
}

#[test]
fn the_nats_sink_needs_a_nats_url() {
    let clicks = tempfile::tempdir().unwrap();
    let (status, log) = crate::clicks::run_to_exit(&[
        ("GATEWAY_CLICKS_ENABLED", "true"),
        ("GATEWAY_CLICKS_DIR", &clicks.path().display().to_string()),
        ("GATEWAY_CLICKS_SINK", "nats"),
        ("GATEWAY_CLICKS_URL", "http://127.0.0.1:4222"),
    ]);
    assert!(!status.success());
    assert!(log.contains("nats://"), "{log}");
}
