//! `gateway keys create|list|revoke`: API keys of the Links API, made
//! and revoked in the store directly (the running gateways see a
//! revocation within the store's poll interval).

use anyhow::{Context, Result};
use std::process::ExitCode;

use super::store::{open, runtime, section};
use crate::config::Config;
use crate::store::{ApiKey, NewKey};

/// What `keys create` was given.
pub struct CreateArgs<'a> {
    /// Who the key is for.
    pub name: &'a str,
    /// Hosts it may create links on.
    pub hosts: &'a [String],
    /// `50/s`.
    pub rate: Option<&'a str>,
    /// Requests at once above the rate.
    pub burst: Option<u32>,
    /// Read only.
    pub read_only: bool,
    /// Links per month.
    pub monthly_quota: Option<i64>,
}

/// `gateway keys create`: prints the secret once.
pub fn create(config: &Config, args: &CreateArgs<'_>) -> Result<ExitCode> {
    let s = section(config)?;
    let key = match NewKey::parse(
        args.name,
        args.hosts,
        args.rate,
        args.burst,
        args.read_only,
        args.monthly_quota,
    ) {
        Ok(k) => k,
        Err((field, message)) => {
            eprintln!("gateway: --{}: {message}", field.replace('_', "-"));
            return Ok(ExitCode::from(2));
        }
    };
    let (made, secret) = runtime()?.block_on(async {
        let b = open(s).await?;
        b.migrate().await?;
        b.create_key(&key, rules::unix_now())
            .await
            .context("cannot create the key")
    })?;
    eprintln!(
        "key {} created for {} (hosts {}; {}; {}/s, bursts of {}{}).\nThe secret is shown once; keep it now:",
        made.id,
        made.name,
        made.hosts.join(", "),
        if made.can_write { "read and write" } else { "read only" },
        made.rate_per_second,
        made.burst,
        made.monthly_quota
            .map(|q| format!("; {q} links a month"))
            .unwrap_or_default()
    );
    println!("{secret}");
    Ok(ExitCode::SUCCESS)
}

fn line(k: &ApiKey) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}/s burst {}\t{}\t{}",
        k.id,
        k.name,
        k.hosts.join(","),
        if k.can_write { "write" } else { "read" },
        k.rate_per_second,
        k.burst,
        k.monthly_quota.map_or("-".into(), |q| q.to_string()),
        if k.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        }
    )
}

/// `gateway keys list [--json]`: every key, never a secret.
pub fn list(config: &Config, json: bool) -> Result<ExitCode> {
    let s = section(config)?;
    let keys = runtime()?.block_on(async {
        let b = open(s).await?;
        b.list_keys().await.context("cannot list the keys")
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
    } else {
        println!("id\tname\thosts\trights\trate\tmonthly quota\tstate");
        for k in &keys {
            println!("{}", line(k));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `gateway keys revoke ID`.
pub fn revoke(config: &Config, id: &str) -> Result<ExitCode> {
    let s = section(config)?;
    let revoked = runtime()?.block_on(async {
        let b = open(s).await?;
        b.revoke_key(id, rules::unix_now())
            .await
            .context("cannot revoke the key")
    })?;
    match revoked {
        Some(k) => {
            println!(
                "key {} ({}) revoked; every gateway refuses it within store.poll_interval",
                k.id, k.name
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("gateway: no key `{id}`");
            Ok(ExitCode::from(1))
        }
    }
}
