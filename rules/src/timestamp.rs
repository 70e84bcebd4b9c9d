//! Times in rules: RFC 3339 with an explicit zone (`2026-12-31T23:59:59Z`,
//! `2030-09-01T00:00:00+02:00`), written as a string or a bare TOML
//! date-time.

/// Parses an RFC 3339 time to Unix seconds. A time without a zone is an
/// error: "midnight" differs by a day around the world, and a campaign
/// must not end at a guessed hour.
pub fn parse(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp())
        .map_err(|e| format!("`{s}` is not an RFC 3339 time with a zone ({e}), e.g. 2026-12-31T23:59:59Z or 2026-12-31T23:59:59+01:00"))
}

/// The text of a TOML value that should hold a time.
pub(crate) fn text(v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        other => {
            let t = other.type_str();
            let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            Err(format!(
                "a time must be a string like \"2026-12-31T23:59:59Z\", not {article} {t}"
            ))
        }
    }
}

/// Parses a TOML value holding a time.
pub(crate) fn parse_value(v: &toml::Value) -> Result<i64, String> {
    parse(&text(v)?)
}

/// The current time in seconds since the Unix epoch, the clock
/// [`Request::now`](crate::Request::now) is read against.
pub fn unix_now() -> i64 {
    unix_seconds(std::time::SystemTime::now())
}

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_seconds(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_required_and_honoured() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse("2030-09-01T00:00:00+02:00"),
            Ok(parse("2030-08-31T22:00:00Z").unwrap())
        );
        assert!(parse("2030-09-01T00:00:00").unwrap_err().contains("zone"));
        assert!(parse("next tuesday").is_err());
        let d: toml::Value =
            toml::from_str::<toml::Table>("t = 2030-01-01T00:00:00Z").unwrap()["t"].clone();
        assert_eq!(parse_value(&d), parse("2030-01-01T00:00:00Z"));
        assert!(parse_value(&toml::Value::Integer(5))
            .unwrap_err()
            .contains("integer"));
    }
}
