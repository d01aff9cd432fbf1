//! What `/proc` says about a process the test or benchmark started: memory in KiB, CPU ticks.

/// A numeric field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`, `RssAnon:`, in KiB), 0 when
/// absent (the process is gone, or the kernel does not report it).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of `pid` in clock ticks (`utime` + `stime` of `/proc/<pid>/stat`),
/// 0 when the process is gone.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_a_gone_one_has_none() {
        let me = std::process::id();
        assert!(status_kib(me, "VmRSS:") > 0);
        assert!(status_kib(me, "VmHWM:") >= status_kib(me, "VmRSS:") / 2);
        assert_eq!(status_kib(me, "NoSuchField:"), 0);
        assert_eq!(status_kib(u32::MAX, "VmRSS:"), 0);
        assert_eq!(cpu_ticks(u32::MAX), 0);
    }

    #[test]
    fn cpu_ticks_grow_with_work() {
        let me = std::process::id();
        let before = cpu_ticks(me);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        // Bounded: at most two seconds of arithmetic, ended as soon as a tick has passed.
        while start.elapsed() < std::time::Duration::from_secs(2) {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            if cpu_ticks(me) > before {
                break;
            }
        }
        std::hint::black_box(x);
        assert!(
            cpu_ticks(me) > before,
            "no CPU tick after two seconds of work"
        );
    }
}
