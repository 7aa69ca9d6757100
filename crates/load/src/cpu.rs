//! Where this machine's CPU went during the bidding, by program (`/proc/*/stat`): on the machine
//! that runs everything, the first cut of a profile — which process to look into.

use std::collections::BTreeMap;
use std::time::Instant;

/// CPU seconds used so far by each program name, summed over its processes.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    seconds: BTreeMap<String, f64>,
}

/// Clock ticks per second of `/proc/*/stat` (USER_HZ: 100 on every Linux architecture Gavel runs on).
const TICKS: f64 = 100.0;

pub fn snapshot() -> Snapshot {
    let mut seconds = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid … utime(14) stime(15): comm may hold spaces, so split at ')'.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = &stat[open + 1..close];
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok());
            // After the ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
            if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
                *seconds.entry(program(name)).or_insert(0.0) += (user + system) / TICKS;
            }
        }
    }
    Snapshot {
        at: Instant::now(),
        seconds,
    }
}

/// PostgreSQL's backends name themselves after their work; they are all PostgreSQL.
fn program(comm: &str) -> String {
    if comm.starts_with("postgres") || comm.starts_with("postmaster") {
        "postgres".to_owned()
    } else {
        comm.to_owned()
    }
}

/// Each program's share of one core between two snapshots, in percent, busiest first, above 1 %.
pub fn usage(before: &Snapshot, after: &Snapshot) -> Vec<(String, f64)> {
    let elapsed = after
        .at
        .saturating_duration_since(before.at)
        .as_secs_f64()
        .max(1e-3);
    let mut usage: Vec<(String, f64)> = after
        .seconds
        .iter()
        .map(|(name, seconds)| {
            let used = seconds - before.seconds.get(name).copied().unwrap_or(0.0);
            (name.clone(), 100.0 * used / elapsed)
        })
        .filter(|(_, percent)| *percent >= 1.0)
        .collect();
    usage.sort_by(|a, b| b.1.total_cmp(&a.1));
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_shows_up_when_it_burns_cpu() {
        let before = snapshot();
        let started = Instant::now();
        let mut spin = 0u64;
        while started.elapsed().as_millis() < 300 {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        let after = snapshot();
        let usage = usage(&before, &after);
        assert!(!usage.is_empty(), "a busy loop of 300 ms shows up");
        assert!(usage.iter().all(|(_, percent)| *percent >= 1.0));
    }
}
