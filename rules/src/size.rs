//! Sizes written as a number of bytes or as `"512KiB"`, `"1MiB"`,
//! `"10MB"`: a route's `max_body`, and the gateway's own settings, read the
//! same way.

/// A size written as a number of bytes or as `"512KiB"`, `"1MiB"`,
/// `"10MB"` (binary and decimal units, `B` alone, spaces allowed).
pub fn parse_size(v: &toml::Value) -> Result<u64, &'static str> {
    const SHAPE: &str = "must be a number of bytes or a size like \"1MiB\"";
    let text = match v {
        toml::Value::Integer(n) => return u64::try_from(*n).map_err(|_| "must not be negative"),
        toml::Value::String(s) => s.trim(),
        _ => return Err(SHAPE),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| SHAPE)?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return Err(SHAPE),
    };
    n.checked_mul(scale).ok_or("is too large")
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        let s = |t: &str| parse_size(&toml::Value::String(t.into()));
        assert_eq!(s("1MiB"), Ok(1 << 20));
        assert_eq!(s("512 KiB"), Ok(512 << 10));
        assert_eq!(s("10MB"), Ok(10_000_000));
        assert_eq!(s("42"), Ok(42));
        assert_eq!(parse_size(&toml::Value::Integer(0)), Ok(0));
        assert!(s("1.5MiB").is_err());
        assert!(s("lots").is_err());
        assert!(parse_size(&toml::Value::Integer(-1)).is_err());
        assert!(s("99999999999999999999GiB").is_err());
    }
}
