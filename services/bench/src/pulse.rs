//! The machine second by second during the soak: where a stall's time went.
//!
//! A stall of a few seconds in which PostgreSQL logs nothing leaves three
//! suspects outside the code: the hypervisor taking the CPUs away (steal), the
//! disk taking long to flush (the WAL's `fsync`), or every runnable thread
//! waiting for a core. Counters from `/proc` (CPU states, pressure stall
//! information, the block devices' statistics) taken once a second tell them
//! apart.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::machine::{all_cpus, own_ticks, stat_fields};
use crate::stats::round;

/// Clock ticks per second of `/proc/stat` (`USER_HZ`).
const TICKS_PER_S: f64 = 100.0;

/// Monotonic counters at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    /// All CPUs: every state, busy, waiting for I/O, stolen (ticks).
    total: u64,
    busy: u64,
    iowait: u64,
    steal: u64,
    /// Pressure stall information: some task waiting for a CPU, every task
    /// waiting for I/O (microseconds).
    cpu_some_us: u64,
    io_full_us: u64,
    /// Whole disks: writes and the time spent on them, flushes and theirs (ms).
    writes: u64,
    write_ms: u64,
    flushes: u64,
    flush_ms: u64,
    /// This process (API server and load generator), user plus system (ticks).
    process: u64,
}

/// The `total=` value of a pressure file's line that starts with `kind`.
fn pressure_total(path: &str, kind: &str) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(kind))
        .and_then(|line| line.rsplit_once("total="))
        .and_then(|(_, total)| total.trim().parse().ok())
        .unwrap_or_default()
}

impl Counters {
    fn now() -> Self {
        let cpu = all_cpus();
        let field = |i: usize| cpu.get(i).copied().unwrap_or_default();
        // user nice system idle iowait irq softirq steal
        let total: u64 = cpu.iter().take(8).sum();
        let mut counters = Self {
            total,
            busy: total.saturating_sub(field(3) + field(4)),
            iowait: field(4),
            steal: field(7),
            cpu_some_us: pressure_total("/proc/pressure/cpu", "some"),
            io_full_us: pressure_total("/proc/pressure/io", "full"),
            ..Self::default()
        };
        // Fields after major, minor and name: writes 4, write ms 7, flushes
        // 15, flush ms 16 (kernel 5.5 and later). Partitions are left out:
        // their I/O is counted in their disk's line already.
        for line in fs::read_to_string("/proc/diskstats").unwrap_or_default().lines() {
            let mut words = line.split_whitespace().skip(2);
            let Some(name) = words.next() else { continue };
            if !std::path::Path::new("/sys/block").join(name).exists() || name.starts_with("loop") {
                continue;
            }
            let numbers: Vec<u64> = words.map(|n| n.parse().unwrap_or(0)).collect();
            let at = |i: usize| numbers.get(i).copied().unwrap_or_default();
            counters.writes += at(4);
            counters.write_ms += at(7);
            counters.flushes += at(15);
            counters.flush_ms += at(16);
        }
        let own = fs::read_to_string("/proc/self/stat").unwrap_or_default();
        counters.process = own_ticks(&stat_fields(&own).1);
        counters
    }
}

/// The machine during one second.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pulse {
    /// Shares of all CPUs' time: busy, waiting for I/O, stolen by the host.
    pub busy: f64,
    pub iowait: f64,
    pub steal: f64,
    /// CPU time of this process (API server and load generator), in ms.
    pub process_ms: f64,
    /// Milliseconds in which some task waited for a CPU / all waited for I/O.
    pub cpu_pressure_ms: f64,
    pub io_pressure_ms: f64,
    /// Disk writes and flushes completed, and their mean time (ms).
    pub writes: u64,
    pub write_ms: f64,
    pub flushes: u64,
    pub flush_ms: f64,
}

impl Pulse {
    fn between(from: Counters, to: Counters) -> Self {
        let ticks = to.total.saturating_sub(from.total).max(1) as f64;
        let share = |a: u64, b: u64| b.saturating_sub(a) as f64 / ticks;
        let mean = |ms: u64, count: u64| ms as f64 / count.max(1) as f64;
        let writes = to.writes.saturating_sub(from.writes);
        let flushes = to.flushes.saturating_sub(from.flushes);
        Self {
            busy: share(from.busy, to.busy),
            iowait: share(from.iowait, to.iowait),
            steal: share(from.steal, to.steal),
            process_ms: to.process.saturating_sub(from.process) as f64 * 1000.0 / TICKS_PER_S,
            cpu_pressure_ms: to.cpu_some_us.saturating_sub(from.cpu_some_us) as f64 / 1000.0,
            io_pressure_ms: to.io_full_us.saturating_sub(from.io_full_us) as f64 / 1000.0,
            writes,
            write_ms: mean(to.write_ms.saturating_sub(from.write_ms), writes),
            flushes,
            flush_ms: mean(to.flush_ms.saturating_sub(from.flush_ms), flushes),
        }
    }

    /// The pulses of several seconds as one: shares and means averaged, the
    /// worst flush kept, counts summed.
    pub fn over(pulses: &[Pulse]) -> Self {
        let n = pulses.len().max(1) as f64;
        let sum = |f: fn(&Pulse) -> f64| pulses.iter().map(f).sum::<f64>();
        let flushes: u64 = pulses.iter().map(|p| p.flushes).sum();
        let writes: u64 = pulses.iter().map(|p| p.writes).sum();
        Self {
            busy: sum(|p| p.busy) / n,
            iowait: sum(|p| p.iowait) / n,
            steal: sum(|p| p.steal) / n,
            process_ms: sum(|p| p.process_ms) / n,
            cpu_pressure_ms: sum(|p| p.cpu_pressure_ms) / n,
            io_pressure_ms: sum(|p| p.io_pressure_ms) / n,
            writes: writes / pulses.len().max(1) as u64,
            write_ms: sum(|p| p.write_ms * p.writes as f64) / writes.max(1) as f64,
            flushes: flushes / pulses.len().max(1) as u64,
            flush_ms: pulses.iter().map(|p| p.flush_ms).fold(0.0, f64::max),
        }
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        format!(
            "busy {:>3.0}%  iowait {:>2.0}%  steal {:>2.0}%  this process {:>4.0} ms/s  CPU pressure {:>4.0} ms/s  I/O pressure {:>4.0} ms/s  writes {:>5}/s {:>5.1} ms  flushes {:>4}/s, worst mean {:>6.1} ms",
            self.busy * 100.0,
            self.iowait * 100.0,
            self.steal * 100.0,
            self.process_ms,
            self.cpu_pressure_ms,
            self.io_pressure_ms,
            self.writes,
            self.write_ms,
            self.flushes,
            self.flush_ms,
        )
    }

    /// As JSON.
    pub fn to_json(self) -> Value {
        json!({
            "busy_pct": round(self.busy * 100.0), "iowait_pct": round(self.iowait * 100.0),
            "steal_pct": round(self.steal * 100.0), "process_cpu_ms": round(self.process_ms),
            "cpu_pressure_ms": round(self.cpu_pressure_ms), "io_pressure_ms": round(self.io_pressure_ms),
            "writes": self.writes, "write_mean_ms": round(self.write_ms),
            "flushes": self.flushes, "flush_mean_ms": round(self.flush_ms),
        })
    }
}

/// Samples the machine at each whole second after `start` until `stop`, on a
/// thread of its own (a busy runtime must not delay the samples); pulse `k`
/// covers seconds `k` to `k + 1` of the schedule.
pub fn every_second(start: Instant, stop: Arc<AtomicBool>) -> JoinHandle<Vec<Pulse>> {
    std::thread::spawn(move || {
        let mut pulses = Vec::new();
        let mut last = Counters::now();
        for second in 1u64.. {
            let due = start + Duration::from_secs(second);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let now = Counters::now();
            pulses.push(Pulse::between(last, now));
            last = now;
        }
        pulses
    })
}
