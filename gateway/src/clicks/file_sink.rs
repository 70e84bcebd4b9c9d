//! Click files: JSON lines appended to `clicks-YYYYMMDD-HH-N.jsonl`, rotated
//! by size and by hour (UTC). Lines are only ever written whole; a file is
//! fsynced when it is rotated away and on shutdown. A new process never
//! appends to an old file, so a crash cannot leave a torn line in the
//! middle of a file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

struct Open {
    writer: BufWriter<File>,
    path: PathBuf,
    size: u64,
    hour: String,
}

/// Writes batches of lines into rotated files in one directory.
pub struct FileSink {
    dir: PathBuf,
    prefix: &'static str,
    max_bytes: u64,
    current: Option<Open>,
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
        }
    }

    /// Appends whole lines, rotating before a line would cross the size
    /// limit (a file always takes at least one line) or when the hour
    /// changes. Flushed to the OS before returning.
    pub fn write_batch(&mut self, lines: &[String]) -> io::Result<()> {
        let hour = hour_of(SystemTime::now());
        for line in lines {
            let len = line.len() as u64;
            let rotate = match &self.current {
                None => true,
                Some(o) => o.hour != hour || (o.size > 0 && o.size + len > self.max_bytes),
            };
            if rotate {
                self.close()?;
                self.current = Some(self.open(&hour)?);
            }
            if let Some(o) = &mut self.current {
                if let Err(e) = o.writer.write_all(line.as_bytes()) {
                    // A torn line may end this file; later lines go to a
                    // new one so none follows it.
                    self.current = None;
                    return Err(e);
                }
                o.size += len;
            }
        }
        if let Some(o) = &mut self.current {
            o.writer.flush()?;
        }
        Ok(())
    }

    /// Flushes and fsyncs the open file and closes it.
    pub fn close(&mut self) -> io::Result<()> {
        if let Some(mut o) = self.current.take() {
            o.writer.flush()?;
            o.writer.get_ref().sync_all()?;
            tracing::debug!(file = %o.path.display(), bytes = o.size, "click file closed");
        }
        Ok(())
    }

    fn open(&self, hour: &str) -> io::Result<Open> {
        std::fs::create_dir_all(&self.dir)?;
        let mut n = 0;
        loop {
            let path = self
                .dir
                .join(format!("{}-{hour}-{n:04}.jsonl", self.prefix));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Open {
                        writer: BufWriter::with_capacity(256 << 10, file),
                        path,
                        size: 0,
                        hour: hour.to_string(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(e),
            }
        }
    }
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
    fn hour_names() {
        assert_eq!(hour_of(SystemTime::UNIX_EPOCH), "19700101-00");
    }
}
