//! A lower CPU priority for a listener's threads, so that when the CPU is
//! short the redirect workers go first (nginx's `worker_priority`, per
//! listener): the Links API's writes cost more CPU per request than a
//! redirect, and a partner's batch must not slow the clicks down.

/// Gives every thread of this process named like the calling thread (all
/// workers of the runtime a background service runs on: Pingora names
/// them after the service) the nice value `nice`. A failure is logged and
/// changes nothing else.
pub fn lower_this_runtime(nice: i32) {
    let name = match std::fs::read_to_string("/proc/thread-self/comm") {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read this thread's name; its priority stays");
            return;
        }
    };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let same = std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c == name);
        let tid = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<libc::id_t>().ok());
        if let (true, Some(tid)) = (same, tid) {
            // SAFETY: setpriority only reads its integer arguments.
            let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
            if rc != 0 {
                tracing::warn!(tid, error = %std::io::Error::last_os_error(), "cannot lower a thread's priority");
            }
        }
    }
}
