//! Rule errors: every problem found in a rule set, with its exact location.

use serde::Serialize;
use std::fmt;

/// One problem in a rule set, located in the file that holds it.
///
/// Displayed as `file:line:col: rule <id>: message`, the format editors and
/// CI logs turn into clickable links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct RuleError {
    /// File the problem is in (the rules file, or a CSV or body file it names).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Id of the rule concerned, or `-` when the problem is not in a rule.
    pub rule: String,
    /// What is wrong, and where the other party is for conflicts.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: rule {}: {}",
            self.file, self.line, self.column, self.rule, self.message
        )
    }
}

/// Maps byte offsets of one source text to 1-based line and column.
#[derive(Debug, Clone)]
pub(crate) struct SourceMap {
    file: String,
    line_starts: Vec<usize>,
    text_len: usize,
    char_cols: Vec<u8>,
}

impl SourceMap {
    pub(crate) fn new(file: impl Into<String>, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        // Column counting needs characters, not bytes; remember which bytes
        // start a character so non-ASCII ids still get the right column.
        let char_cols = text.bytes().map(|b| u8::from((b & 0xC0) != 0x80)).collect();
        SourceMap {
            file: file.into(),
            line_starts,
            text_len: text.len(),
            char_cols,
        }
    }

    /// The file name used in messages.
    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// 1-based (line, column) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text_len);
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self.char_cols[start..offset]
            .iter()
            .map(|&c| c as usize)
            .sum::<usize>();
        (line, col + 1)
    }

    /// An error at `offset` for rule `rule`.
    pub(crate) fn error(&self, offset: usize, rule: &str, message: impl Into<String>) -> RuleError {
        let (line, column) = self.position(offset);
        RuleError {
            file: self.file.clone(),
            line,
            column,
            rule: if rule.is_empty() {
                "-".into()
            } else {
                rule.into()
            },
            message: message.into(),
        }
    }

    /// "file:line:col" of an offset, for messages that point at a second place.
    pub(crate) fn place(&self, offset: usize) -> String {
        let (line, column) = self.position(offset);
        format!("{}:{}:{}", self.file, line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let map = SourceMap::new("r.toml", "ab\ncdé f\n\nx");
        assert_eq!(map.position(0), (1, 1));
        assert_eq!(map.position(1), (1, 2));
        assert_eq!(map.position(3), (2, 1));
        // 'é' is two bytes: the space after it is the 4th character.
        assert_eq!(map.position(7), (2, 4));
        assert_eq!(map.position(10), (3, 1));
        assert_eq!(map.position(11), (4, 1));
        assert_eq!(map.position(12), (4, 2));
        let e = map.error(3, "r1", "bad");
        assert_eq!(e.to_string(), "r.toml:2:1: rule r1: bad");
        assert_eq!(map.error(0, "", "x").rule, "-");
    }
}
