//! Process facts from `/proc`: resident memory, CPU time, children.

use std::collections::BTreeMap;
use std::path::Path;

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&text, field)
}

/// Proportional set size from `/proc/<pid>/smaps_rollup`.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_field(&text, "Pss")
}

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Fields of `/proc/<pid>/stat` after the command name: index 0 is the
/// state, 1 the parent pid, 11 utime, 12 stime.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// User plus system CPU seconds of a process (all its threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    ticks_to_seconds(&text[text.rfind(')')? + 1..])
}

/// utime + stime in seconds, from a `stat` line's fields after the
/// command name (a process's or a thread's: the same layout).
fn ticks_to_seconds(fields: &str) -> Option<f64> {
    let f: Vec<&str> = fields.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    Some((utime + stime) as f64 / ticks)
}

/// User plus system CPU seconds of each of `pid`'s threads whose name
/// (`comm`, cut to 15 bytes by the kernel) starts with one of `names`, by
/// thread id.
pub fn threads_cpu(pid: u32, names: &[&str]) -> BTreeMap<u32, f64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    tasks
        .filter_map(|t| t.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|comm| names.iter().any(|n| comm.trim_end().starts_with(n)))
        })
        .filter_map(|tid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            Some((tid, ticks_to_seconds(&text[text.rfind(')')? + 1..])?))
        })
        .collect()
}

/// [`threads_cpu`] summed (0 when no thread has such a name).
pub fn threads_cpu_seconds(pid: u32, names: &[&str]) -> f64 {
    // A fold from +0: an empty float `sum()` is -0, printed as `-0.00`.
    threads_cpu(pid, names).values().fold(0.0, |a, b| a + b)
}

/// The CPU seconds threads spent between two [`threads_cpu`] readings: a
/// thread started since counts whole, one that ended since is left out.
/// A difference of sums would go negative when a long-lived thread ends
/// (a database connection replaced): its whole life would drop out.
pub fn threads_cpu_since<K: Ord>(before: &BTreeMap<K, f64>, after: &BTreeMap<K, f64>) -> f64 {
    after
        .iter()
        .map(|(k, a)| a - before.get(k).copied().unwrap_or(0.0))
        .fold(0.0, |a, b| a + b)
}

/// Direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(Path::new("/proc")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            stat_fields(p)
                .and_then(|f| f.get(1)?.parse::<u32>().ok())
                .is_some_and(|parent| parent == pid)
        })
        .collect()
}

/// Facts about this machine for the report.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_string())
        })
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    serde_json::json!({
        "nproc": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "cpu_model": model,
        "mem_total_kib": kib_field(&meminfo, "MemTotal"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let me = std::process::id();
        assert!(status_kib(me, "VmRSS").unwrap() > 0);
        assert!(cpu_seconds(me).is_some());
        assert_eq!(kib_field("VmRSS:\t  1234 kB\n", "VmRSS"), Some(1234));
    }

    #[test]
    fn threads_are_picked_by_name() {
        let me = std::process::id();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        // Busy until told to stop, and at most a few seconds.
        let burner = std::thread::Builder::new()
            .name("burner-thread-0".into())
            .spawn(move || {
                let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
                let mut x = 0u64;
                while finished.try_recv().is_err() && std::time::Instant::now() < until {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
            .unwrap();
        let mut burnt = 0.0;
        for _ in 0..400 {
            burnt = threads_cpu_seconds(me, &["burner-thread"]);
            if burnt > 0.0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let none = threads_cpu_seconds(me, &["no-such-thread"]);
        let _ = done.send(());
        burner.join().unwrap();
        assert!(burnt > 0.0, "the busy thread's CPU is counted");
        assert_eq!(none, 0.0);
        assert!(burnt <= cpu_seconds(me).unwrap(), "a part of the process's");
    }

    #[test]
    fn a_thread_that_ended_drops_out_without_going_negative() {
        let before = BTreeMap::from([(1, 5.0), (2, 9.0)]);
        // Thread 2 ended, thread 3 started since.
        let after = BTreeMap::from([(1, 5.5), (3, 0.25)]);
        assert_eq!(threads_cpu_since(&before, &after), 0.75);
        assert_eq!(threads_cpu_since(&after, &after), 0.0);
        // No thread at all is +0, not -0 (which prints as `-0.00`).
        let none = threads_cpu_since(&BTreeMap::<u32, f64>::new(), &BTreeMap::new());
        assert!(none == 0.0 && none.is_sign_positive());
    }
}
