//! What the benchmark ran on, and how busy the CPUs were during a phase.

use std::fs;

use serde_json::{Value, json};

/// The machine, from `/proc`.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `model name` of the first CPU.
    pub cpu_model: String,
    /// Logical CPUs (`processor` entries).
    pub cores: usize,
    /// `MemTotal`, in MiB.
    pub memory_mib: u64,
    /// The kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads `/proc/cpuinfo`, `/proc/meminfo` and the kernel release.
    pub fn read() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let cores = cpuinfo
            .lines()
            .filter(|line| line.split_once(':').is_some_and(|(key, _)| key.trim() == "processor"))
            .count();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or_default();
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|text| text.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Self { cpu_model, cores, memory_mib: memory_kib / 1024, kernel }
    }

    /// The machine as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "cpu_model": self.cpu_model,
            "cores": self.cores,
            "memory_mib": self.memory_mib,
            "kernel": self.kernel,
        })
    }
}

/// Clock ticks per second of the `/proc` CPU counters (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;
/// Name prefix of the load generator's runtime threads.
pub const LOAD_THREAD_PREFIX: &str = "bench-client";

/// CPU time counters at one instant, in clock ticks (`USER_HZ`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    /// All CPUs, all states.
    total: u64,
    /// All CPUs, not idle and not waiting for I/O.
    busy: u64,
    /// This process (every thread), user plus system.
    process: u64,
    /// This process's threads named [`LOAD_THREAD_PREFIX`]...
    load_threads: u64,
    /// Child processes that ended and were waited for (pgbench).
    children: u64,
}

/// Fields after the command name of a `/proc/.../stat` line, and the name.
pub(crate) fn stat_fields(text: &str) -> (&str, Vec<u64>) {
    let name = text
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map_or("", |(name, _)| name);
    // The name may hold spaces: fields are counted after its closing parenthesis.
    let after_name = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    // The state is a letter; it parses as 0, which keeps the indices right.
    (name, after_name.split_whitespace().map(|n| n.parse().unwrap_or(0)).collect())
}

/// The time counters of all CPUs together (the `cpu` line of `/proc/stat`:
/// user, nice, system, idle, iowait, irq, softirq, steal, ...), in ticks;
/// empty where unreadable.
pub(crate) fn all_cpus() -> Vec<u64> {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map(|rest| rest.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// utime + stime (fields 14 and 15 of the line, 12 and 13 after the name).
pub(crate) fn own_ticks(fields: &[u64]) -> u64 {
    fields.get(11).copied().unwrap_or_default() + fields.get(12).copied().unwrap_or_default()
}

impl CpuSample {
    /// Reads `/proc/stat` and this process's `stat` files; zeros where unreadable.
    pub fn now() -> Self {
        let fields = all_cpus();
        // user nice system idle iowait irq softirq steal (guest time is part of user).
        let total: u64 = fields.iter().take(8).sum();
        let idle =
            fields.get(3).copied().unwrap_or_default() + fields.get(4).copied().unwrap_or_default();
        let own = fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let (_, numbers) = stat_fields(&own);
        // cutime and cstime: fields 16 and 17, 14 and 15 after the name.
        let children = numbers.get(13).copied().unwrap_or_default()
            + numbers.get(14).copied().unwrap_or_default();
        let mut load_threads = 0;
        if let Ok(tasks) = fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Ok(text) = fs::read_to_string(task.path().join("stat")) else { continue };
                let (name, fields) = stat_fields(&text);
                if name.starts_with(LOAD_THREAD_PREFIX) {
                    load_threads += own_ticks(&fields);
                }
            }
        }
        Self {
            total,
            busy: total.saturating_sub(idle),
            process: own_ticks(&numbers),
            load_threads,
            children,
        }
    }

    /// CPU use between `self` (earlier) and `later`.
    pub fn until(self, later: Self) -> CpuUse {
        let ticks = later.total.saturating_sub(self.total).max(1) as f64;
        let delta = |a: u64, b: u64| b.saturating_sub(a) as f64;
        let process = delta(self.process, later.process);
        let load_threads = delta(self.load_threads, later.load_threads);
        let load_generator = load_threads + delta(self.children, later.children);
        let busy = delta(self.busy, later.busy);
        CpuUse {
            wall_core_s: ticks / USER_HZ,
            machine_busy: busy / ticks,
            api_server: (process - load_threads).max(0.0) / ticks,
            load_generator: load_generator / ticks,
            other: (busy - process - delta(self.children, later.children)).max(0.0) / ticks,
        }
    }
}

/// Shares of all CPUs' time during a phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// CPU time available in the phase: wall time × cores, in seconds.
    pub wall_core_s: f64,
    /// The whole machine, busy.
    pub machine_busy: f64,
    /// This process without the load generator's threads: the API server
    /// (and, in the pgbench phase, its sequencer and projector).
    pub api_server: f64,
    /// The HTTP load generator's threads, or the pgbench process.
    pub load_generator: f64,
    /// Everything else busy: PostgreSQL, essentially.
    pub other: f64,
}

impl CpuUse {
    /// CPU milliseconds per unit of work for a share.
    fn per_unit_ms(self, share: f64, units: u64) -> f64 {
        share * self.wall_core_s * 1000.0 / units.max(1) as f64
    }

    /// As JSON: percentages of the machine's total CPU time, and CPU
    /// milliseconds per unit of work (`units` commands or transactions).
    pub fn to_json(self, units: u64) -> Value {
        use crate::stats::round;
        json!({
            "machine_busy_pct": round(self.machine_busy * 100.0),
            "api_server_pct": round(self.api_server * 100.0),
            "load_generator_pct": round(self.load_generator * 100.0),
            "postgresql_and_other_pct": round(self.other * 100.0),
            "cpu_ms_per_unit": {
                "api_server": round(self.per_unit_ms(self.api_server, units)),
                "load_generator": round(self.per_unit_ms(self.load_generator, units)),
                "postgresql_and_other": round(self.per_unit_ms(self.other, units)),
            },
        })
    }

    /// For the human report.
    pub fn line(self, units: u64, unit: &str) -> String {
        format!(
            "CPU (share of both cores): machine busy {:.0}% = API server {:.0}% + load generator {:.0}% + PostgreSQL/other {:.0}%; CPU ms per {unit}: API server {:.2}, load generator {:.2}, PostgreSQL/other {:.2}",
            self.machine_busy * 100.0,
            self.api_server * 100.0,
            self.load_generator * 100.0,
            self.other * 100.0,
            self.per_unit_ms(self.api_server, units),
            self.per_unit_ms(self.load_generator, units),
            self.per_unit_ms(self.other, units),
        )
    }
}
