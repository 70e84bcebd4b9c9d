//! Query pass-through: merging the incoming query into a destination.

use crate::encode;

/// What happens to the incoming query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum QueryMode {
    /// Carry it over; incoming parameters replace same-named destination ones.
    #[default]
    Merge,
    /// Ignore it.
    Drop,
}

impl QueryMode {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "merge" => Ok(QueryMode::Merge),
            "drop" => Ok(QueryMode::Drop),
            other => Err(format!(
                "query must be \"merge\" or \"drop\", not \"{other}\""
            )),
        }
    }
}

/// The click id parameter: its configured name, and the id to append last
/// (none when the caller supplied none; visitors' values are dropped anyway).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Click<'a> {
    pub name: &'a str,
    pub id: Option<&'a str>,
}

fn name_of(param: &str) -> &str {
    param.split_once('=').map_or(param, |(n, _)| n)
}

/// Parameter names compare as every query parser will read them: after
/// percent-decoding, so `btn%5Fref` is `btn_ref`.
fn same_name(a: &str, b: &str) -> bool {
    if !a.contains('%') && !b.contains('%') {
        return a == b;
    }
    percent_encoding::percent_decode_str(a).eq(percent_encoding::percent_decode_str(b))
}

/// Merges `incoming` into the destination `base` and appends the click id.
///
/// Returns `None` when nothing changes, so the caller can use a pre-built
/// header value. The incoming query is kept byte for byte (no `+`/`%20`
/// rewriting, valueless and repeated parameters kept), except that bytes a
/// query may not hold are escaped and any parameter named like the click id
/// parameter is dropped: a visitor must not be able to plant a click id.
// Inlined into every redirect's `finish`: left to the crate's split into
// codegen units, moving a module elsewhere can turn it into a call.
#[inline]
pub(crate) fn merge(
    base: &str,
    incoming: Option<&str>,
    mode: QueryMode,
    click: Option<Click<'_>>,
) -> Option<String> {
    let incoming = match (mode, incoming) {
        (QueryMode::Merge, Some(q)) if !q.is_empty() => Some(q),
        _ => None,
    };
    let click_id = click.and_then(|c| c.id);
    if incoming.is_none() && click_id.is_none() {
        return None;
    }
    let (before_fragment, fragment) = match base.find('#') {
        Some(i) => (&base[..i], Some(&base[i..])),
        None => (base, None),
    };
    let (path, dest_query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    let click_name = click.map(|c| c.name);
    let mut out = String::with_capacity(base.len() + incoming.map_or(0, str::len) + 48);
    out.push_str(path);
    let mut sep = '?';
    if let Some(dq) = dest_query {
        for param in dq.split('&').filter(|p| !p.is_empty()) {
            let name = name_of(param);
            let is_click = click_name.is_some_and(|cn| same_name(name, cn));
            // The destination's own click-id parameter stays unless an id is
            // appended; a visitor's one never replaces it.
            let dropped = if is_click {
                click_id.is_some()
            } else {
                incoming.is_some_and(|q| q.split('&').any(|ip| same_name(name_of(ip), name)))
            };
            if !dropped {
                out.push(sep);
                out.push_str(param);
                sep = '&';
            }
        }
    }
    if let Some(q) = incoming {
        match click_name {
            // Fast path: the whole query is carried as one piece.
            Some(cn) if q.split('&').any(|p| same_name(name_of(p), cn)) => {
                for param in q.split('&').filter(|p| !same_name(name_of(p), cn)) {
                    out.push(sep);
                    encode::push(&mut out, param, &encode::QUERY);
                    sep = '&';
                }
            }
            _ => {
                out.push(sep);
                encode::push(&mut out, q, &encode::QUERY);
                sep = '&';
            }
        }
    }
    if let (Some(name), Some(value)) = (click_name, click_id) {
        out.push(sep);
        out.push_str(name);
        out.push('=');
        encode::push(&mut out, value, &encode::QUERY_VALUE);
    }
    if let Some(f) = fragment {
        out.push_str(f);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_do_returns_none() {
        assert_eq!(merge("https://a/x", None, QueryMode::Merge, None), None);
        assert_eq!(merge("https://a/x", Some(""), QueryMode::Merge, None), None);
        assert_eq!(
            merge("https://a/x", Some("a=1"), QueryMode::Drop, None),
            None
        );
    }

    #[test]
    fn incoming_is_byte_for_byte_and_replaces_same_names() {
        let out = merge(
            "https://a/x?utm=dest&keep=1#frag",
            Some("utm=in&flag&x=a+b%20c&x=2"),
            QueryMode::Merge,
            None,
        );
        assert_eq!(
            out.unwrap(),
            "https://a/x?keep=1&utm=in&flag&x=a+b%20c&x=2#frag"
        );
    }

    #[test]
    fn click_id_goes_last_and_cannot_be_planted() {
        let out = merge(
            "https://a/x?btn_ref=old",
            Some("btn_ref=evil&q=1"),
            QueryMode::Merge,
            Some(Click {
                name: "btn_ref",
                id: Some("01ABC"),
            }),
        );
        assert_eq!(out.unwrap(), "https://a/x?q=1&btn_ref=01ABC");
        let out = merge(
            "https://a/x?%62tn_ref=old",
            Some("btn%5Fref=evil&btn%5fref=evil2&q=1"),
            QueryMode::Merge,
            Some(Click {
                name: "btn_ref",
                id: Some("01ABC"),
            }),
        );
        assert_eq!(out.unwrap(), "https://a/x?q=1&btn_ref=01ABC");
        let out = merge(
            "https://a/x",
            Some("q"),
            QueryMode::Drop,
            Some(Click {
                name: "c",
                id: Some("1"),
            }),
        );
        assert_eq!(out.unwrap(), "https://a/x?c=1");
    }

    #[test]
    fn without_an_id_visitors_still_cannot_plant_one() {
        let c = Some(Click {
            name: "btn_ref",
            id: None,
        });
        let out = merge(
            "https://a/x?btn_ref=dest",
            Some("btn_ref=forged&q=1"),
            QueryMode::Merge,
            c,
        );
        assert_eq!(out.unwrap(), "https://a/x?btn_ref=dest&q=1");
        assert_eq!(merge("https://a/x", None, QueryMode::Merge, c), None);
    }

    #[test]
    fn bytes_a_query_cannot_hold_are_escaped() {
        let out = merge("https://a/x", Some("q=\"a b\"#x"), QueryMode::Merge, None);
        assert_eq!(out.unwrap(), "https://a/x?q=%22a%20b%22%23x");
    }
}
