//! Sizes written as a number of bytes or as `"256MiB"`, `"10MB"`: the same
//! spelling as `max_body` in the rules.

use serde::{Deserialize, Deserializer};

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = toml::Value::deserialize(d)?;
    rules::parse_size(&v).map_err(serde::de::Error::custom)
}
