//! The matching engine's benchmark: generates the school-size and the
//! country-size synthetic round, solves each exactly and greedily, and prints
//! time, peak memory, matched share, mean fit and blocking pairs side by side.
//!
//! `cargo run --release -p stagepact-matching --bin matching-bench [-- --seed N]
//! [--only school|country] [--threads N]]` (threads: all cores by default)

use std::error::Error;
use std::time::{Duration, Instant};

use stagepact_matching::synthetic::{self, Scenario};
use stagepact_matching::{Instance, MatchingOutcome, Method};

/// A line from /proc/self/status, in MiB (Linux only; None elsewhere).
fn status_mib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak resident set size (VmHWM) to the current one.
fn reset_peak() {
    // Best effort: without it the peak is that of the whole process so far.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Run {
    solve: Duration,
    outcome: Duration,
    peak_mib: Option<f64>,
    result: MatchingOutcome,
}

fn run(instance: &Instance, method: Method) -> Run {
    reset_peak();
    let started = Instant::now();
    let assignment = instance.solve(method);
    let solve = started.elapsed();
    let started = Instant::now();
    let result = instance.outcome(&assignment);
    let outcome = started.elapsed();
    Run { solve, outcome, peak_mib: status_mib("VmHWM:"), result }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut seed = 1u64;
    let mut only: Option<String> = None;
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => seed = args.next().ok_or("--seed needs a number")?.parse()?,
            "--only" => only = Some(args.next().ok_or("--only needs school or country")?),
            "--threads" => threads = args.next().ok_or("--threads needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let scenarios = [("school", Scenario::school(seed)), ("country", Scenario::country(seed))];
    for (name, scenario) in scenarios {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let started = Instant::now();
        let input = synthetic::generate(&scenario);
        let generated = started.elapsed();
        reset_peak();
        let before = status_mib("VmRSS:");
        let started = Instant::now();
        let instance = Instance::with_threads(&input, threads)?;
        let prepared = started.elapsed();
        let prepare_peak = status_mib("VmHWM:");
        let optimal = run(&instance, Method::Optimal);
        let greedy = run(&instance, Method::Greedy);

        let (o, g) = (&optimal.result.metrics, &greedy.result.metrics);
        println!(
            "## {name}: {} students, {} offers, {} slots, {} candidate pairs (seed {seed}, {threads} threads)",
            o.students, o.offers, o.slots, o.candidate_pairs
        );
        println!(
            "generate {:.0} ms; prepare (intern + candidates) {:.0} ms; RSS before prepare {:.0} MiB, peak during prepare {:.0} MiB",
            ms(generated),
            ms(prepared),
            before.unwrap_or(f64::NAN),
            prepare_peak.unwrap_or(f64::NAN)
        );
        println!();
        println!("| | optimal | greedy | optimal / greedy |");
        println!("|---|---:|---:|---:|");
        let total = |r: &Run| prepared + r.solve + r.outcome;
        let row = |label: &str, a: f64, b: f64, digits: usize| {
            println!("| {label} | {a:.digits$} | {b:.digits$} | {:.3} |", a / b);
        };
        row("solve (ms)", ms(optimal.solve), ms(greedy.solve), 1);
        row("outcome: explanations + metrics (ms)", ms(optimal.outcome), ms(greedy.outcome), 1);
        row("total with prepare (ms)", ms(total(&optimal)), ms(total(&greedy)), 1);
        row(
            "peak RSS (MiB)",
            optimal.peak_mib.unwrap_or(f64::NAN),
            greedy.peak_mib.unwrap_or(f64::NAN),
            0,
        );
        row("matched students", f64::from(o.matched_students), f64::from(g.matched_students), 0);
        row("matched share", o.matched_share, g.matched_share, 4);
        row("total fit", o.total_fit as f64, g.total_fit as f64, 0);
        row("mean fit (‰)", o.mean_fit, g.mean_fit, 1);
        row("slots left", o.slots_left as f64, g.slots_left as f64, 0);
        row("blocking pairs", o.blocking_pairs as f64, g.blocking_pairs as f64, 0);
        println!();
    }
    Ok(())
}
