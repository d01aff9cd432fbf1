//! procfs tables: `/proc/stat` (CPU times per core), `/proc/meminfo`, `/proc/buddyinfo`.
//!
//! Parsers are pure (`&str` → values) and skip lines they do not know; a table whose shape is
//! wrong as a whole is counted as a read error by the `read_*` functions.

use std::collections::BTreeMap;

use super::fs::{self, Root};

/// Time a CPU spent, in `USER_HZ` ticks, from one `cpuN` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Every state but idle and iowait (user, nice, system, irq, softirq, steal).
    pub busy: u64,
    /// idle + iowait.
    pub idle: u64,
}

impl CpuTimes {
    /// busy + idle.
    pub fn total(self) -> u64 {
        self.busy.saturating_add(self.idle)
    }
}

/// The busy share between two readings of one core, in percent; `None` when no tick passed
/// (or the counters went backwards: a core that went offline and came back).
pub fn usage_percent(before: CpuTimes, after: CpuTimes) -> Option<f64> {
    let total = after.total().checked_sub(before.total())?;
    let busy = after.busy.checked_sub(before.busy)?;
    // Multiplied first, so whole shares come out whole (7 of 100 ticks is 7, not 7.000…1).
    (total > 0 && busy <= total).then(|| busy as f64 * 100.0 / total as f64)
}

/// `/proc/stat` → per-core times, keyed by core number (the aggregate `cpu` line is left
/// out). `guest`/`guest_nice` are already part of `user`/`nice` and are not added twice.
pub fn parse_stat(text: &str) -> BTreeMap<u32, CpuTimes> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let Some(core) = words.next().and_then(|w| fs::index_after(w, "cpu")) else {
            continue;
        };
        let mut fields = [0u64; 8];
        let mut n = 0;
        for (slot, word) in fields.iter_mut().zip(words.by_ref()) {
            match word.parse() {
                Ok(v) => *slot = v,
                Err(_) => break,
            }
            n += 1;
        }
        // user nice system idle (Linux 2.4 had only these) [iowait irq softirq steal].
        if n < 4 {
            continue;
        }
        let [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
        out.insert(
            core,
            CpuTimes {
                busy: [user, nice, system, irq, softirq, steal]
                    .into_iter()
                    .fold(0u64, u64::saturating_add),
                idle: idle.saturating_add(iowait),
            },
        );
    }
    out
}

/// Reads `/proc/stat`; a file without any `cpuN` line is counted.
pub fn read_stat(root: &Root) -> Option<BTreeMap<u32, CpuTimes>> {
    let path = root.join("/proc/stat");
    let text = fs::text(&path)?;
    let cores = parse_stat(&text);
    if cores.is_empty() {
        fs::count_error(&path, "no cpuN line");
        return None;
    }
    Some(cores)
}

/// `/proc/meminfo` → field → kB (`MemTotal` → 7620000). Fields without a `kB` unit
/// (`HugePages_Total`) are kept as plain numbers.
pub fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_ascii_whitespace();
        let Some(Ok(v)) = words.next().map(str::parse::<u64>) else {
            continue;
        };
        if matches!(words.next(), None | Some("kB")) {
            out.insert(key.trim().to_owned(), v);
        }
    }
    out
}

/// Memory figures in kB from `/proc/meminfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`.
    pub total_kb: u64,
    /// `MemFree`.
    pub free_kb: u64,
    /// `MemAvailable` (Linux 3.14+).
    pub available_kb: Option<u64>,
    /// `Buffers`.
    pub buffers_kb: u64,
    /// `Cached`.
    pub cached_kb: u64,
    /// `SwapTotal`.
    pub swap_total_kb: u64,
    /// `SwapFree`.
    pub swap_free_kb: u64,
    /// `SwapCached`.
    pub swap_cached_kb: u64,
}

impl Memory {
    /// RAM in use as `free` counts it: total − free − buffers − page cache.
    pub fn used_kb(&self) -> u64 {
        self.total_kb
            .saturating_sub(self.free_kb)
            .saturating_sub(self.buffers_kb)
            .saturating_sub(self.cached_kb)
    }

    /// Swap in use: total − free.
    pub fn swap_used_kb(&self) -> u64 {
        self.swap_total_kb.saturating_sub(self.swap_free_kb)
    }

    /// The figures of a parsed table; `None` without `MemTotal` and `MemFree`.
    pub fn from_table(t: &BTreeMap<String, u64>) -> Option<Memory> {
        let get = |k: &str| t.get(k).copied();
        Some(Memory {
            total_kb: get("MemTotal")?,
            free_kb: get("MemFree")?,
            available_kb: get("MemAvailable"),
            buffers_kb: get("Buffers").unwrap_or(0),
            cached_kb: get("Cached").unwrap_or(0),
            swap_total_kb: get("SwapTotal").unwrap_or(0),
            swap_free_kb: get("SwapFree").unwrap_or(0),
            swap_cached_kb: get("SwapCached").unwrap_or(0),
        })
    }
}

/// Reads `/proc/meminfo`; a table without `MemTotal`/`MemFree` is counted.
pub fn read_memory(root: &Root) -> Option<Memory> {
    let path = root.join("/proc/meminfo");
    let text = fs::text(&path)?;
    let mem = Memory::from_table(&parse_meminfo(&text));
    if mem.is_none() {
        fs::count_error(&path, "no MemTotal/MemFree");
    }
    mem
}

/// `/proc/buddyinfo` → free blocks per order, summed over every node and zone
/// (`Node 0, zone Normal 12 8 4 ...`: the Nth number counts free blocks of 2^N pages).
pub fn parse_buddyinfo(text: &str) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for line in text.lines() {
        let Some((_, counts)) = line.split_once("zone") else {
            continue;
        };
        // Skip the zone's name, then the counts.
        for (order, word) in counts.split_ascii_whitespace().skip(1).enumerate() {
            let Ok(n) = word.parse::<u64>() else {
                break;
            };
            if out.len() <= order {
                out.resize(order + 1, 0);
            }
            out[order] = out[order].saturating_add(n);
        }
    }
    out
}

/// Reads `/proc/buddyinfo`.
pub fn read_buddyinfo(root: &Root) -> Option<Vec<u64>> {
    let path = root.join("/proc/buddyinfo");
    let text = fs::text(&path)?;
    let orders = parse_buddyinfo(&text);
    if orders.is_empty() {
        fs::count_error(&path, "no zone line");
        return None;
    }
    Some(orders)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 0 50 1000 10 0 5 0 0 0\n\
                        cpu0 60 0 20 400 5 0 5 0 0 0\n\
                        cpu1 40 0 30 600 5 0 0 0 0 0\n\
                        cpu3 1 2 3 4\n\
                        cpu4 x 1 2 3\n\
                        intr 12345 0 0\nctxt 99\n";

    #[test]
    fn stat_gives_busy_and_idle_per_core() {
        let cores = parse_stat(STAT);
        assert_eq!(cores.keys().copied().collect::<Vec<_>>(), [0, 1, 3]);
        assert_eq!(
            cores[&0],
            CpuTimes {
                busy: 85,
                idle: 405
            }
        );
        assert_eq!(cores[&3], CpuTimes { busy: 6, idle: 4 });
    }

    #[test]
    fn huge_counters_saturate_instead_of_overflowing() {
        let max = u64::MAX;
        let cores = parse_stat(&format!("cpu0 {max} {max} 1 {max} {max} 0 0 0\n"));
        assert_eq!(
            cores[&0],
            CpuTimes {
                busy: max,
                idle: max
            }
        );
        assert_eq!(
            parse_buddyinfo(&format!("Node 0, zone A {max}\nNode 0, zone B 5\n")),
            [max]
        );
    }

    #[test]
    fn usage_is_the_busy_share_between_two_reads() {
        let a = CpuTimes {
            busy: 100,
            idle: 900,
        };
        let b = CpuTimes {
            busy: 125,
            idle: 975,
        };
        assert_eq!(usage_percent(a, b), Some(25.0));
        assert_eq!(usage_percent(a, a), None);
        assert_eq!(usage_percent(b, a), None, "counters went backwards");
    }

    #[test]
    fn meminfo_and_memory_figures() {
        let t = parse_meminfo(
            "MemTotal:        7620000 kB\nMemFree:          1000000 kB\n\
             MemAvailable:    5000000 kB\nBuffers:           100000 kB\n\
             Cached:          2000000 kB\nSwapCached:         3072 kB\n\
             SwapTotal:       3809280 kB\nSwapFree:        3500000 kB\n\
             HugePages_Total:       0\nbroken line\nOdd: 12 MB\n",
        );
        assert_eq!(t["HugePages_Total"], 0);
        assert!(!t.contains_key("Odd"));
        let m = Memory::from_table(&t).unwrap();
        assert_eq!(m.used_kb(), 7620000 - 1000000 - 100000 - 2000000);
        assert_eq!(m.swap_used_kb(), 309280);
        assert_eq!(m.available_kb, Some(5000000));
        assert!(Memory::from_table(&parse_meminfo("SwapTotal: 1 kB\n")).is_none());
    }

    #[test]
    fn buddyinfo_sums_zones_per_order() {
        let orders = parse_buddyinfo(
            "Node 0, zone      DMA      1      2      3\n\
             Node 0, zone   Normal     10      0      5      7\n",
        );
        assert_eq!(orders, [11, 2, 8, 7]);
    }
}
