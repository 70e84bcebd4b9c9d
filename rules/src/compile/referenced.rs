//! Reading the files rules reference (`body_file`, `[[links]] file`) into
//! a compile: through the fence, into the content hash and the watch list.

use std::path::PathBuf;

use super::Compiler;
use crate::files::{FileError, FileKind};

impl Compiler {
    /// Reads the file a rule names at `offset` (`name` is relative to the
    /// rules file), records it for the content hash and the file watcher,
    /// and returns its path and content; reports an error at `offset`
    /// otherwise. `what` names the key in messages.
    pub(crate) fn read_referenced(
        &mut self,
        offset: usize,
        rule: &str,
        what: &str,
        name: &str,
        kind: FileKind,
    ) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.base_dir.join(name);
        match self.access.read(&path, kind) {
            Ok(data) => {
                self.hasher.update(&data);
                self.files.push(path.clone());
                self.file_kinds.push(kind);
                Some((path, data))
            }
            Err(e) => {
                let hint = match (&e, kind) {
                    (FileError::TooLarge { .. }, FileKind::Links) => {
                        " (split it into several [[links]] sets)"
                    }
                    _ => "",
                };
                self.err(
                    offset,
                    rule,
                    format!("cannot read {what} {}: {e}{hint}", path.display()),
                );
                None
            }
        }
    }
}
