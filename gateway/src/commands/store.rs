//! `gateway store`: the link store for operators — migrate it, see how it
//! is, import links from a CSV and export them.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, StoreSection};
use crate::store::{Backend, NewLink, Resolved, StoreView};
use rules::{LinkSpec, RuleSet, StoreLink};

/// Errors printed per file before the rest are only counted.
const MAX_ERRORS: usize = 50;
/// Links written per statement.
const IMPORT_CHUNK: usize = 500;
/// Rows read between two progress updates.
const PROGRESS_EVERY: u64 = 10_000;

/// The CSV columns import reads and export writes (`code` and `to` are
/// required; the others may be absent or empty).
const COLUMNS: [&str; 15] = [
    "host",
    "code",
    "to",
    "status",
    "ios",
    "android",
    "desktop",
    "expires_at",
    "expired_to",
    "query_mode",
    "cache_control",
    "countries",
    "tags",
    "owner",
    "external_id",
];

pub(super) fn section(config: &Config) -> Result<&StoreSection> {
    config
        .store
        .as_ref()
        .context("the configuration has no [store] (set store.url or GATEWAY_STORE_URL)")
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")
}

pub(super) async fn open(s: &StoreSection) -> Result<Backend> {
    Backend::open(&s.url, s.max_connections, s.timeout)
        .await
        .with_context(|| format!("cannot open the store {}", s.display_url()))
}

/// `gateway store migrate`.
pub fn migrate(config: &Config) -> Result<ExitCode> {
    let s = section(config)?;
    runtime()?.block_on(async {
        let b = open(s).await?;
        b.migrate().await.context("migration failed")?;
        let (applied, known) = b.migrations().await?;
        println!(
            "{}: {applied} of {known} migrations applied",
            s.display_url()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// `gateway store status`.
pub fn status(config: &Config) -> Result<ExitCode> {
    let s = section(config)?;
    runtime()?.block_on(async {
        let b = open(s).await?;
        let (applied, known) = b.migrations().await?;
        println!("store:      {} ({})", s.display_url(), b.kind());
        println!("migrations: {applied} of {known} applied");
        if applied < known {
            println!("            run `gateway store migrate` (the gateway also migrates when it starts)");
            return Ok(ExitCode::from(1));
        }
        println!("links:      {}", b.count().await?);
        println!("changes:    {} (the change log's head)", b.head().await?);
        Ok(ExitCode::SUCCESS)
    })
}

/// `gateway store import FILE.csv [--host H]`: checks every row as the
/// rules check a bulk link (and refuses codes the rules already answer),
/// then writes the file in one transaction, replacing links with the same
/// host and code.
pub fn import(config: &Config, file: &Path, host: Option<&str>, dry_run: bool) -> Result<ExitCode> {
    let s = section(config)?;
    let rules = RuleSet::load_with(&config.rules.path, &config.load_options()).map_err(|e| {
        anyhow::anyhow!(
            "the rules ({}) do not load, so links cannot be checked against them: {}",
            config.rules.path.display(),
            e.first().map(|e| e.to_string()).unwrap_or_default()
        )
    })?;
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let header = reader.headers().context("unreadable CSV header")?.clone();
    let mut at = BTreeMap::new();
    for (i, h) in header.iter().enumerate() {
        if !COLUMNS.contains(&h) {
            bail!(
                "{}: column {} of the header is not a known column; expected {}",
                file.display(),
                i + 1,
                COLUMNS.join(", ")
            );
        }
        at.insert(h.to_string(), i);
    }
    if !at.contains_key("code") || !at.contains_key("to") {
        bail!(
            "{}: the header must name at least `code` and `to`",
            file.display()
        );
    }
    if !at.contains_key("host") && host.is_none() {
        bail!("{}: no `host` column: give --host", file.display());
    }
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:10} [{bar:40}] {bytes}/{total_bytes} {per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("checking");
    // The first pass only checks: the links are read again, a chunk at a
    // time, while they are written. Only the keys are kept, to find codes
    // given twice.
    let mut count = 0u64;
    let mut hosts = std::collections::BTreeSet::new();
    let mut errors = 0usize;
    let mut seen = std::collections::HashSet::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors += 1;
                if errors <= MAX_ERRORS {
                    say(&bar, format!("{}: {e}", file.display()));
                }
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if line % PROGRESS_EVERY == 0 {
            bar.set_position(record.position().map_or(0, |p| p.byte()));
        }
        let field = |name: &str| {
            at.get(name)
                .and_then(|&i| record.get(i))
                .filter(|v| !v.is_empty())
        };
        match row(&rules, host, &field) {
            Ok(link) => {
                if !seen.insert((link.host.clone(), link.code.clone())) {
                    errors += 1;
                    if errors <= MAX_ERRORS {
                        say(
                            &bar,
                            format!(
                                "{}:{line}: code `{}` appears twice in the file",
                                file.display(),
                                link.code
                            ),
                        );
                    }
                    continue;
                }
                count += 1;
                if !hosts.contains(&link.host) {
                    hosts.insert(link.host.clone());
                }
            }
            Err(message) => {
                errors += 1;
                if errors <= MAX_ERRORS {
                    say(&bar, format!("{}:{line}: {message}", file.display()));
                }
            }
        }
    }
    bar.set_position(size);
    if errors > 0 {
        bar.finish_and_clear();
        if errors > MAX_ERRORS {
            eprintln!("… and {} more errors", errors - MAX_ERRORS);
        }
        eprintln!("{}: {errors} error(s); nothing imported", file.display());
        return Ok(ExitCode::from(1));
    }
    if dry_run {
        bar.finish_and_clear();
        println!(
            "{}: {} links ok (dry run, nothing written)",
            file.display(),
            count
        );
        return Ok(ExitCode::SUCCESS);
    }
    bar.set_message("writing");
    bar.set_length(count);
    drop(seen);
    let hosts: Vec<String> = hosts.into_iter().collect();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let mut records = reader.records();
    let mut next =
        move || -> Result<Vec<NewLink>, String> {
            let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
            for record in records.by_ref() {
                let record = record.map_err(|e| format!("{}: {e}", file.display()))?;
                let field = |name: &str| {
                    at.get(name)
                        .and_then(|&i| record.get(i))
                        .filter(|v| !v.is_empty())
                };
                // Checked in the first pass: an error now means the file
                // changed meanwhile.
                chunk.push(row(&rules, host, &field).map_err(|m| {
                    format!("{} changed while it was imported: {m}", file.display())
                })?);
                if chunk.len() == IMPORT_CHUNK {
                    break;
                }
            }
            Ok(chunk)
        };
    bar.set_position(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:10} [{bar:40}] {pos}/{len} {per_sec} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let written = runtime()?.block_on(async {
        let b = open(s).await?;
        b.migrate().await.context("migration failed")?;
        b.import(&hosts, &mut next, rules::unix_now(), |n| {
            bar.set_position(n)
        })
        .await
        .context("import failed; nothing was written")
    })?;
    bar.finish_and_clear();
    println!(
        "{}: {} links imported into {} in {:.1}s",
        file.display(),
        written,
        s.display_url(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `gateway store add --host H --code C --to URL [--status N]`: one link,
/// checked as an imported row is.
pub fn add(config: &Config, host: &str, code: &str, to: &str, status: u16) -> Result<ExitCode> {
    let s = section(config)?;
    let rules = RuleSet::load_with(&config.rules.path, &config.load_options())
        .map_err(|_| anyhow::anyhow!("the rules ({}) do not load", config.rules.path.display()))?;
    let status = status.to_string();
    let given = |name: &str| match name {
        "host" => Some(host),
        "code" => Some(code),
        "to" => Some(to),
        "status" => Some(status.as_str()),
        _ => None,
    };
    let link = match row(&rules, None, &given) {
        Ok(l) => l,
        Err(m) => {
            eprintln!("gateway: {m}");
            return Ok(ExitCode::from(1));
        }
    };
    let created = runtime()?.block_on(async {
        let b = open(s).await?;
        b.migrate().await?;
        b.insert(&link, rules::unix_now())
            .await
            .map(|(record, _seq)| record)
            .map_err(anyhow::Error::from)
    })?;
    println!(
        "link {} created: {}/{} -> {}",
        created.id, created.link.host, created.link.code, created.link.destination
    );
    Ok(ExitCode::SUCCESS)
}

/// `gateway store remove --host H --code C`.
pub fn remove(config: &Config, host: &str, code: &str) -> Result<ExitCode> {
    let s = section(config)?;
    let rules = RuleSet::load_with(&config.rules.path, &config.load_options())
        .map_err(|_| anyhow::anyhow!("the rules ({}) do not load", config.rules.path.display()))?;
    let (host, code) = rules
        .store_key(host, code)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let removed = runtime()?.block_on(async {
        open(s)
            .await?
            .delete(&host, &code)
            .await
            .map_err(anyhow::Error::from)
    })?;
    if removed {
        println!("link {host}/{code} removed");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("gateway: no link {host}/{code}");
        Ok(ExitCode::from(1))
    }
}

/// Prints a line above the progress bar (which is hidden when stderr is
/// not a terminal; the line is not).
fn say(bar: &indicatif::ProgressBar, line: String) {
    bar.suspend(|| eprintln!("{line}"));
}

/// One CSV row as a link to write, or what is wrong with it.
fn row<'r>(
    rules: &RuleSet,
    default_host: Option<&str>,
    field: &dyn Fn(&str) -> Option<&'r str>,
) -> Result<NewLink, String> {
    let host = field("host").or(default_host).ok_or("no host")?;
    let code = field("code").ok_or("empty code")?;
    let (host, code) = rules.store_key(host, code).map_err(|e| e.to_string())?;
    if !rules.is_store_domain(&host) {
        return Err(format!(
            "host `{host}` is not a [[domain]] with store = true in the rules, so its links would never be served"
        ));
    }
    if let Some(rule) = rules.claimed_by(&host, &code) {
        return Err(format!(
            "code `{code}` is already answered by rule `{rule}` of the rules file"
        ));
    }
    let json = |name: &str| -> Result<Option<serde_json::Value>, String> {
        field(name)
            .map(|v| serde_json::from_str(v).map_err(|e| format!("{name}: not JSON: {e}")))
            .transpose()
    };
    let countries: BTreeMap<String, String> = match json("countries")? {
        None => BTreeMap::new(),
        Some(v) => {
            serde_json::from_value(v).map_err(|_| "countries: must be a JSON object of URLs")?
        }
    };
    let tags: Vec<String> = match json("tags")? {
        None => Vec::new(),
        Some(v) => {
            serde_json::from_value(v).map_err(|_| "tags: must be a JSON array of strings")?
        }
    };
    let expires_at = field("expires_at")
        .map(|v| rules::parse_timestamp(v).map_err(|m| format!("expires_at {m}")))
        .transpose()?;
    let status = match field("status") {
        None => 302,
        Some(v) => v
            .parse()
            .map_err(|_| format!("status `{v}` is not a number"))?,
    };
    let link = NewLink {
        host,
        code,
        destination: field("to").ok_or("no destination (`to`)")?.to_string(),
        status,
        ios: field("ios").map(str::to_string),
        android: field("android").map(str::to_string),
        desktop: field("desktop").map(str::to_string),
        countries,
        expires_at,
        expired_to: field("expired_to").map(str::to_string),
        query_mode: field("query_mode").map(str::to_string),
        cache_control: field("cache_control").map(str::to_string),
        tags,
        owner: field("owner").map(str::to_string),
        external_id: field("external_id").map(str::to_string),
    };
    check(&link, rules)?;
    Ok(link)
}

/// The one validation path: the rules' own checks of a stored link.
pub(crate) fn check(link: &NewLink, rules: &RuleSet) -> Result<StoreLink, String> {
    let spec: LinkSpec<'_> = link.spec(0, 0);
    StoreLink::compile(&spec, rules).map_err(|e| format!("code `{}`: {e}", link.code))
}

/// Unix seconds as RFC 3339, as `import` reads `expires_at`.
fn rfc3339(t: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `gateway explain` on a store domain: the code looked up in the store
/// itself (no cache), then explained with what it holds.
pub(crate) fn explain_stored(
    rules: &RuleSet,
    req: &rules::Request<'_>,
    s: &StoreSection,
) -> Result<rules::Explanation> {
    /// Notes which code the rules want from the store.
    struct Wanted(std::sync::OnceLock<(String, String)>);
    impl rules::LinkSource for Wanted {
        fn link(&self, host: &str, code: &str) -> rules::Stored<'_> {
            let _ = self.0.set((host.into(), code.into()));
            rules::Stored::Unknown
        }
    }
    let wanted = Wanted(std::sync::OnceLock::new());
    rules.explain_with(req, &wanted);
    let Some((host, code)) = wanted.0.get() else {
        return Ok(rules.explain(req));
    };
    let record = runtime()?
        .block_on(async {
            open(s)
                .await?
                .get(host, code)
                .await
                .map_err(anyhow::Error::from)
        })?
        .0;
    let link = match record {
        None => None,
        Some(record) => {
            let link = StoreLink::compile(&record.link.spec(record.id, record.version), rules)
                .map_err(|e| anyhow::anyhow!("code `{}`: {e}", record.link.code))?;
            Some(std::sync::Arc::new(Resolved { record, link }))
        }
    };
    Ok(rules.explain_with(req, &StoreView::known(link)))
}

/// `gateway store export`: every link as CSV on stdout, in the columns
/// `import` reads.
pub fn export(config: &Config) -> Result<ExitCode> {
    let s = section(config)?;
    let stdout = std::io::stdout();
    let mut out = csv::Writer::from_writer(stdout.lock());
    out.write_record(COLUMNS)?;
    runtime()?.block_on(async {
        let b = open(s).await?;
        let mut after = 0;
        loop {
            let page = b.page(after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for r in &page {
                let l = &r.link;
                let json_or_empty = |v: Option<String>| v.unwrap_or_default();
                out.write_record([
                    l.host.as_str(),
                    l.code.as_str(),
                    l.destination.as_str(),
                    &l.status.to_string(),
                    l.ios.as_deref().unwrap_or(""),
                    l.android.as_deref().unwrap_or(""),
                    l.desktop.as_deref().unwrap_or(""),
                    &l.expires_at.map(rfc3339).unwrap_or_default(),
                    l.expired_to.as_deref().unwrap_or(""),
                    l.query_mode.as_deref().unwrap_or(""),
                    l.cache_control.as_deref().unwrap_or(""),
                    &json_or_empty(l.countries_json()),
                    &json_or_empty(l.tags_json()),
                    l.owner.as_deref().unwrap_or(""),
                    l.external_id.as_deref().unwrap_or(""),
                ])?;
            }
        }
        anyhow::Ok(())
    })?;
    out.flush()?;
    std::io::stdout().flush()?;
    Ok(ExitCode::SUCCESS)
}
