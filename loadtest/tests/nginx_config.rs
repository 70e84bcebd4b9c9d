//! The nginx configuration generator.

use loadtest::genlinks::{code, destination};
use loadtest::nginx::{
    find_binary, hash_sizes, prepare_proxy, render, render_proxy, write_map, NginxConfig,
    NginxProxyConfig,
};
use std::path::PathBuf;

fn config(links: u64) -> NginxConfig {
    NginxConfig {
        listen: "127.0.0.1:18081".parse().unwrap(),
        prefix: PathBuf::from("/tmp/lt-nginx"),
        map_file: PathBuf::from("/tmp/lt-nginx/links.map"),
        links,
        workers: 1,
        tls: None,
    }
}

#[test]
fn one_worker_no_access_log_map_and_return() {
    let text = render(&config(1_000_000));
    for needle in [
        "worker_processes 1;",
        "daemon off;",
        "pid /tmp/lt-nginx/nginx.pid;",
        "access_log off;",
        "keepalive_requests 1000000;",
        "keepalive_timeout 75s;",
        "map_hash_max_size 1001000;",
        "map_hash_bucket_size 256;",
        "map $uri $dest {",
        "include /tmp/lt-nginx/links.map;",
        "listen 127.0.0.1:18081",
        "add_header Cache-Control \"private, max-age=90\" always;",
        "return 302 $dest;",
        "return 404;",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // Braces balance.
    assert_eq!(text.matches('{').count(), text.matches('}').count());
}

#[test]
fn map_entries_match_the_generated_links() {
    let mut out = Vec::new();
    write_map(3, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            *l,
            format!("/{} \"{}\";", code(i as u64), destination(i as u64))
        );
    }
}

#[test]
fn hash_sizes_follow_the_key_count() {
    assert_eq!(hash_sizes(10), (32_768, 256));
    assert_eq!(hash_sizes(1_000_000), (1_001_000, 256));
    assert_eq!(hash_sizes(10_000_000), (10_001_000, 256));
}

fn proxy_config(prefix: PathBuf) -> NginxProxyConfig {
    NginxProxyConfig {
        listen: "127.0.0.1:18082".parse().unwrap(),
        prefix,
        upstream: "127.0.0.1:19001".parse().unwrap(),
        workers: 1,
        keepalive: 64,
    }
}

#[test]
fn proxy_pass_keeps_upstream_connections_alive() {
    let text = render_proxy(&proxy_config(PathBuf::from("/tmp/lt-nginx")));
    for needle in [
        "worker_processes 1;",
        "access_log off;",
        "keepalive_requests 1000000;",
        "upstream bench {",
        "server 127.0.0.1:19001;",
        "keepalive 64;",
        "server_name api.example.com;",
        "location /api/ {",
        "proxy_pass http://bench;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "listen 127.0.0.1:18082",
        "return 404;",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert_eq!(text.matches('{').count(), text.matches('}').count());
}

/// nginx itself accepts the generated `proxy_pass` configuration (where
/// nginx is installed).
#[test]
fn nginx_accepts_the_proxy_config() {
    let Ok(nginx) = find_binary(None) else {
        eprintln!("nginx is not installed: nginx -t of the proxy config skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let c = proxy_config(dir.path().join("nginx"));
    let conf = prepare_proxy(&c).unwrap();
    let out = std::process::Command::new(nginx)
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&c.prefix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
