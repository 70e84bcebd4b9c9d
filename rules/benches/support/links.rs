//! Deterministic bulk links shared by the `decide` bench and the `memory`
//! example (included with `#[path]`: benches and examples cannot share a
//! module otherwise).

use std::io::Write;
use std::path::Path;

/// Base62 of `i` (`0-9a-zA-Z`), the code of link `i`.
pub fn base62(mut i: u64) -> String {
    const DIGITS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(i % 62) as usize]);
        i /= 62;
        if i == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// Writes `n` links: code = base62(i), to = https://shop.example.com/item/<i>?utm_source=go.
pub fn write_links(path: &Path, n: u64) {
    let file = std::fs::File::create(path).expect("create csv");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(w, "code,to").unwrap();
    for i in 0..n {
        writeln!(
            w,
            "{},https://shop.example.com/item/{i}?utm_source=go",
            base62(i)
        )
        .unwrap();
    }
    w.flush().unwrap();
}
