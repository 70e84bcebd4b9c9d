//! The request as the rules see it: borrowed views of what the server parsed.

use std::fmt;
use std::net::IpAddr;

/// One incoming request, reduced to what a rule decision depends on.
///
/// Everything is borrowed from the server's own request head so that building
/// a `Request` costs nothing. The clock and the click id come from the caller,
/// which keeps the library free of global state and makes decisions
/// reproducible in tests.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method, e.g. `GET` or `HEAD`.
    pub method: &'a str,
    /// Host as sent by the client (`Host` header or authority), port and
    /// case included: normalization is the rule set's job.
    pub host: &'a str,
    /// Path as sent, still percent-encoded; must start with `/`.
    pub path: &'a str,
    /// Raw query string without the leading `?`, if any.
    pub query: Option<&'a str>,
    /// `User-Agent` header, empty when absent.
    pub user_agent: &'a str,
    /// ISO 3166-1 alpha-2 country code from the configured country header.
    pub country: Option<&'a str>,
    /// Client address, used for sticky splits.
    pub client_ip: Option<IpAddr>,
    /// Click id to append as `settings.click_id_param`, supplied by the caller.
    pub click_id: ClickIdSource<'a>,
    /// Current time in seconds since the Unix epoch; expiry is evaluated
    /// against it on every request.
    pub now: i64,
}

impl<'a> Request<'a> {
    /// A `GET` request for `host` and `path_and_query` with no other headers,
    /// evaluated at time `now` (Unix seconds).
    pub fn get(host: &'a str, path_and_query: &'a str, now: i64) -> Self {
        let (path, query) = split_query(path_and_query);
        Request {
            method: "GET",
            host,
            path,
            query,
            user_agent: "",
            country: None,
            client_ip: None,
            click_id: ClickIdSource::None,
            now,
        }
    }

    /// Same request with a `User-Agent`.
    pub fn with_user_agent(mut self, ua: &'a str) -> Self {
        self.user_agent = ua;
        self
    }

    /// Same request with a country code.
    pub fn with_country(mut self, country: &'a str) -> Self {
        self.country = Some(country);
        self
    }

    /// Same request with a client address.
    pub fn with_client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Same request with a click id to append.
    pub fn with_click_id(mut self, click_id: &'a str) -> Self {
        self.click_id = ClickIdSource::Given(click_id);
        self
    }

    /// Same request with another method.
    pub fn with_method(mut self, method: &'a str) -> Self {
        self.method = method;
        self
    }
}

/// Where the click id to append comes from.
#[derive(Clone, Copy, Default)]
pub enum ClickIdSource<'a> {
    /// No id: nothing is appended.
    #[default]
    None,
    /// This id.
    Given(&'a str),
    /// Asked for only when a redirect's `Location` is rendered with
    /// `settings.click_id_param` set (and then it must give the same id
    /// every time): the caller may still be fetching it (the gateway's
    /// de-duplication bucket, on its way from memory while the rules find
    /// the link), and a request answered without a `Location` needs none.
    Later(&'a (dyn Fn() -> &'a str + Sync)),
}

impl<'a> ClickIdSource<'a> {
    /// The id, asking a [`ClickIdSource::Later`] for it now.
    pub fn get(&self) -> Option<&'a str> {
        match *self {
            ClickIdSource::None => None,
            ClickIdSource::Given(id) => Some(id),
            ClickIdSource::Later(id) => Some(id()),
        }
    }

    /// No id at all.
    pub fn is_none(&self) -> bool {
        matches!(self, ClickIdSource::None)
    }
}

impl<'a> From<Option<&'a str>> for ClickIdSource<'a> {
    fn from(id: Option<&'a str>) -> Self {
        id.map_or(ClickIdSource::None, ClickIdSource::Given)
    }
}

impl fmt::Debug for ClickIdSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClickIdSource::None => f.write_str("None"),
            ClickIdSource::Given(id) => f.debug_tuple("Given").field(id).finish(),
            ClickIdSource::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// Splits `path?query` into the path and the query (without `?`).
pub fn split_query(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    }
}

/// A request described as text, the way an operator or a `[[test]]` writes
/// it: `gateway explain`, the admin explain and embedded tests all turn one
/// into a [`Request`] the same way, so they cannot disagree about a URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct Probe<'a> {
    /// `http://host/path?query` (or `https://`), taken byte for byte.
    pub url: &'a str,
    /// Method; `GET` when `None`.
    pub method: Option<&'a str>,
    /// `User-Agent`; empty when `None`.
    pub user_agent: Option<&'a str>,
    /// Country code.
    pub country: Option<&'a str>,
    /// Client address as text.
    pub ip: Option<&'a str>,
    /// Click id to append.
    pub click_id: Option<&'a str>,
}

impl<'a> Probe<'a> {
    /// The request at time `now` (Unix seconds), or why the URL or the
    /// address cannot be one.
    pub fn request(&self, now: i64) -> Result<Request<'a>, String> {
        let (host, path, query) = split_url(self.url)?;
        let client_ip = match self.ip {
            Some(ip) => Some(
                ip.parse::<IpAddr>()
                    .map_err(|_| format!("ip `{ip}` is not an IP address"))?,
            ),
            None => None,
        };
        Ok(Request {
            method: self.method.unwrap_or("GET"),
            host,
            path,
            query,
            user_agent: self.user_agent.unwrap_or(""),
            country: self.country,
            client_ip,
            click_id: self.click_id.into(),
            now,
        })
    }
}

/// Splits `http://host/path?q` into host, path and query, without any
/// normalization: a test (or an operator's `explain`) must see the bytes it
/// wrote. A URL without a path has path `/`.
pub fn split_url(url: &str) -> Result<(&str, &str, Option<&str>), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}` must start with http:// or https://"))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, pq) = rest.split_at(end);
    let (path, query) = split_query(pq);
    Ok((host, if path.is_empty() { "/" } else { path }, query))
}
