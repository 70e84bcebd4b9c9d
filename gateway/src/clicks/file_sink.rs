//! Click files: JSON lines appended to `clicks-YYYYMMDD-HH-N.jsonl`, rotated
//! by size and by hour (UTC). Lines are only ever written whole; a file is
//! fsynced when it is rotated away and on shutdown. A new process never
//! appends to an old file, so a crash cannot leave a torn line in the
//! middle of a file.
//!
//! A failed write (full disk, file-size limit, I/O error) is accounted for
//! line by line: the lines that reached the file whole are reported as
//! written, a torn tail is cut off again, and nothing of the batch is kept
//! to be written later. The open file stays in use, so a disk that stays
//! full costs no new file per batch; a file that holds no line is removed.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Bytes handed to one `write` call at most: bounds the buffer a batch of
/// long lines needs.
const CHUNK: usize = 256 << 10;

/// A batch that did not reach the file in full.
#[derive(Debug)]
pub struct WriteError {
    /// Lines from the start of the batch that are in a file, whole. The
    /// others are not in any file and never will be.
    pub written: usize,
    /// Directory the sink writes into.
    pub dir: PathBuf,
    /// Why the rest was not written.
    pub source: io::Error,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write to {}: {}", self.dir.display(), self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A directory files cannot be written into.
#[derive(Debug)]
pub struct DirError {
    /// The directory.
    pub dir: PathBuf,
    /// What failed: creating the directory or a file in it.
    pub what: &'static str,
    /// The operating system's error.
    pub source: io::Error,
}

impl fmt::Display for DirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "clicks.dir {}: cannot {}: {}",
            self.dir.display(),
            self.what,
            self.source
        )
    }
}

impl std::error::Error for DirError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Creates `dir` and checks that a file can be created in it, so a
/// misconfigured or read-only directory stops the start instead of losing
/// every event later. A full disk is not refused here: it can free up, and
/// until it does the writer counts what it cannot write.
pub fn check_dir(dir: &Path) -> Result<(), DirError> {
    let err = |what, source| DirError {
        dir: dir.to_path_buf(),
        what,
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| err("create the directory", e))?;
    // Not `clicks-*.jsonl`, so no shipper picks it up even if a crash
    // leaves it behind.
    let probe = dir.join(format!(".write-check-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(|e| err("create a file in it", e))?;
    std::fs::remove_file(&probe).map_err(|e| err("remove a file in it", e))
}

struct Open {
    file: File,
    path: PathBuf,
    size: u64,
    hour: String,
    n: u32,
}

/// Writes batches of lines into rotated files in one directory.
pub struct FileSink {
    dir: PathBuf,
    prefix: &'static str,
    max_bytes: u64,
    current: Option<Open>,
    /// The hour and number the next file is tried under: numbers only grow
    /// within a process, except that a file removed empty is made again
    /// under its own name.
    next: (String, u32),
    /// One chunk of a batch on its way to the file (kept for reuse).
    buf: Vec<u8>,
}

/// `YYYYMMDD-HH` of a time, in UTC.
fn hour_of(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-11-28T10:04:05Z
    format!("{}{}{}-{}", &s[0..4], &s[5..7], &s[8..10], &s[11..13])
}

impl FileSink {
    /// A sink writing `<prefix>-YYYYMMDD-HH-N.jsonl` files into `dir`.
    pub fn new(dir: &Path, prefix: &'static str, max_bytes: u64) -> Self {
        FileSink {
            dir: dir.to_path_buf(),
            prefix,
            max_bytes: max_bytes.max(1),
            current: None,
            next: (String::new(), 0),
            buf: Vec::new(),
        }
    }

    /// The directory written into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends whole lines, rotating before a line would cross the size
    /// limit (a file always takes at least one line) or when the hour
    /// changes. Written to the OS before returning. On failure, the error
    /// says how many lines (from the start) are in a file; the rest are
    /// not, and are not kept.
    pub fn write_batch<S: AsRef<str>>(&mut self, lines: &[S]) -> Result<(), WriteError> {
        let hour = hour_of(SystemTime::now());
        let mut done = 0;
        while done < lines.len() {
            if self.must_rotate(&hour, lines[done].as_ref().len() as u64) {
                if let Some(o) = self.current.take() {
                    self.finish(o);
                }
            }
            let o = match self.current.take() {
                Some(o) => o,
                None => self.open(&hour).map_err(|source| WriteError {
                    written: done,
                    dir: self.dir.clone(),
                    source,
                })?,
            };
            // The lines that go into this file in one write.
            self.buf.clear();
            let mut end = done;
            while end < lines.len() && self.buf.len() < CHUNK {
                let line = lines[end].as_ref();
                let len = line.len() as u64;
                let size = o.size + self.buf.len() as u64;
                if end > done && size + len > self.max_bytes {
                    break;
                }
                self.buf.extend_from_slice(line.as_bytes());
                end += 1;
            }
            match write_some(&o.file, &self.buf) {
                Ok(()) => {
                    let mut o = o;
                    o.size += self.buf.len() as u64;
                    self.current = Some(o);
                    done = end;
                }
                Err((bytes, source)) => {
                    let whole = self.keep_whole_lines(o, &lines[done..end], bytes);
                    return Err(WriteError {
                        written: done + whole,
                        dir: self.dir.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn must_rotate(&self, hour: &str, len: u64) -> bool {
        match &self.current {
            None => false,
            Some(o) => o.hour != hour || (o.size > 0 && o.size + len > self.max_bytes),
        }
    }

    /// After `bytes` of `lines` reached the file `o`: cuts a torn line off
    /// again and returns how many lines are in the file whole. Keeps the
    /// file for the next batch (a full disk must not cost a file per
    /// batch), or removes it when it holds nothing.
    fn keep_whole_lines<S: AsRef<str>>(&mut self, mut o: Open, lines: &[S], bytes: usize) -> usize {
        let mut whole = 0;
        let mut kept = 0;
        for l in lines {
            let l = l.as_ref();
            if kept + l.len() > bytes {
                break;
            }
            kept += l.len();
            whole += 1;
        }
        if bytes > kept {
            if let Err(e) = o.file.set_len(o.size + kept as u64) {
                // The torn line stays at the end of this file: nothing may
                // follow it, so the next line starts a new file.
                tracing::error!(error = %e, file = %o.path.display(), "cannot cut a torn click line off");
                o.size += bytes as u64;
                self.finish(o);
                return whole;
            }
        }
        o.size += kept as u64;
        if o.size == 0 {
            // Made again under the same name when a write next succeeds.
            self.next = (o.hour.clone(), o.n);
            self.finish(o);
        } else {
            self.current = Some(o);
        }
        whole
    }

    /// Fsyncs the open file and closes it; a file holding nothing is
    /// removed instead.
    pub fn close(&mut self) -> io::Result<()> {
        match self.current.take() {
            Some(o) => close_file(o),
            None => Ok(()),
        }
    }

    /// Closes `o` on rotation. Its lines are already written, so a failed
    /// fsync is logged, not charged to the batch being written.
    fn finish(&self, o: Open) {
        let path = o.path.clone();
        if let Err(e) = close_file(o) {
            tracing::error!(error = %e, file = %path.display(), "cannot sync a click file");
        }
    }

    fn open(&mut self, hour: &str) -> io::Result<Open> {
        std::fs::create_dir_all(&self.dir)?;
        let mut n = if self.next.0 == hour { self.next.1 } else { 0 };
        loop {
            let path = self
                .dir
                .join(format!("{}-{hour}-{n:04}.jsonl", self.prefix));
            // Append mode: after a torn line is cut off, the next write
            // lands at the new end, not after a hole.
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => {
                    self.next = (hour.to_string(), n + 1);
                    return Ok(Open {
                        file,
                        path,
                        size: 0,
                        hour: hour.to_string(),
                        n,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Writes all of `buf` with plain `write` calls. No `BufWriter`: after a
/// failed write it keeps the bytes it could not write and writes them on a
/// later flush or on drop, so lines counted as lost would turn up in the
/// file after all. On failure, says how many bytes were written.
fn write_some(mut file: &File, buf: &[u8]) -> Result<(), (usize, io::Error)> {
    let mut off = 0;
    while off < buf.len() {
        match file.write(&buf[off..]) {
            Ok(0) => return Err((off, io::ErrorKind::WriteZero.into())),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((off, e)),
        }
    }
    Ok(())
}

/// Fsyncs and closes `o`, or removes it when it holds nothing.
fn close_file(o: Open) -> io::Result<()> {
    if o.size == 0 {
        drop(o.file);
        return match std::fs::remove_file(&o.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    o.file.sync_all()?;
    tracing::debug!(file = %o.path.display(), bytes = o.size, "click file closed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_with_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::new(dir.path(), "clicks", 100);
        let lines: Vec<String> = (0..10)
            .map(|i| format!("{{\"n\":{i},\"pad\":\"xxxxxxxxxxxxxxxx\"}}\n"))
            .collect();
        sink.write_batch(&lines).unwrap();
        sink.close().unwrap();
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{files:?}");
        let mut seen = 0;
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.len() <= 100 || text.lines().count() == 1);
            assert!(text.ends_with('\n'));
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["n"], seen);
                seen += 1;
            }
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("clicks-") && name.ends_with(".jsonl"),
                "{name}"
            );
        }
        assert_eq!(seen, 10);
    }

    #[test]
    fn a_closed_file_without_lines_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::new(dir.path(), "clicks", 100);
        let hour = hour_of(SystemTime::now());
        sink.current = Some(sink.open(&hour).unwrap());
        sink.close().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_under_a_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = check_dir(&file.join("clicks")).unwrap_err();
        assert!(
            err.to_string().contains(&*file.display().to_string()),
            "{err}"
        );
        check_dir(&dir.path().join("ok")).unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("ok")).unwrap().count(), 0);
    }

    #[test]
    fn hour_names() {
        assert_eq!(hour_of(SystemTime::UNIX_EPOCH), "19700101-00");
    }
}
