//! The soak (`--scenario soak`, issue 7): placement lifecycles at 70% of the
//! measured maximum command rate for ten minutes, with students reading their
//! overview and a school following the feed beside them; per minute, the
//! command rate and p99, the readers' p99, the feed's lag and the process's
//! memory, which must all stay flat, with no error.
//!
//! Why it is built this way:
//!
//! - **The maximum is measured in the same run**, on the same population and
//!   database: a closed-loop lifecycle walk of `clients × 100` placements, as
//!   fast as the server answers (the lifecycle scenario's method).
//! - **The soak is open loop** ([`Pacer`]): command `k` is due at
//!   `k ÷ rate`, whatever the answers before it, and its latency counts from
//!   then, so a server that slowed down would show as rising latency, not be
//!   hidden by clients that wait for it. Minutes are minutes of the schedule;
//!   the commands of lifecycles still under way at the end (the drain) count
//!   in the totals only.
//! - **Memory is the resident set of this process**, which holds the
//!   in-process API (its pools, caches and tasks) and the load generator;
//!   the generator's own records grow by about 8 bytes a command (some
//!   4 MB over the run), a bound on what it adds. PostgreSQL's memory is its
//!   own (shared buffers, fixed) and not counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::header::Header;
use crate::http_load::client_runtime;
use crate::lifecycle::population;
use crate::lifecycle::walk::{self, Pacer};
use crate::setup::Env;
use crate::stats::{Summary, round};

/// Commands of one lifecycle.
const COMMANDS_PER_LIFECYCLE: f64 = 13.0;
/// Placements per client of the maximum-rate walk.
const PROBE_PER_CLIENT: usize = 100;
/// Flatness: the rate of every minute at least this share of the target.
const RATE_FLOOR: f64 = 0.95;
/// Flatness: p99 of the last minute at most this many times the second's.
const P99_GROWTH_MAX: f64 = 1.5;
/// Flatness: resident memory at the end at most this many times the second
/// minute's.
const MEMORY_GROWTH_MAX: f64 = 1.10;

/// What the scenario is run with.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Concurrent lifecycle clients.
    pub clients: usize,
    /// Schools the students are spread over.
    pub schools: usize,
    /// Offers (one per company) per client.
    pub offers_per_client: usize,
    /// Length of the soak, in minutes.
    pub minutes: u64,
    /// The soak's command rate as a share of the measured maximum.
    pub share: f64,
    /// The highest maximum command rate the population is sized for.
    pub rate_ceiling: f64,
    /// Overview readers.
    pub readers: usize,
    /// Overview requests per second, all readers together.
    pub read_rate: f64,
}

/// One minute of the soak.
#[derive(Debug, Default)]
struct Minute {
    commands: Vec<f64>,
    command_errors: u64,
    reads: Vec<f64>,
    read_errors: u64,
    feed_lag: Vec<f64>,
    feed_errors: u64,
    rss_mib: f64,
}

/// What a side task saw: (seconds since the start, milliseconds), or an error.
type Samples = Vec<(f32, Result<f64, String>)>;

/// The number of whole minutes in the soak.
fn windows_len(minutes: u64) -> usize {
    usize::try_from(minutes).unwrap_or(usize::MAX)
}

/// The resident set of this process, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok()
            })
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Students read their overview, `rate` requests per second in all, until `stop`.
async fn read_overviews(
    http: reqwest::Client,
    url: String,
    tokens: Arc<Vec<String>>,
    rate: f64,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Samples {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        let token = &tokens[n.wrapping_mul(7919) % tokens.len()];
        let sent = Instant::now();
        let result = match http.get(&url).bearer_auth(token).send().await {
            Ok(response) if response.status().is_success() => {
                response.bytes().await.map(|_| ()).map_err(|e| e.to_string())
            }
            Ok(response) => Err(response.status().to_string()),
            Err(error) => Err(error.to_string()),
        };
        let at = (sent - start).as_secs_f32();
        samples.push((at, result.map(|()| sent.elapsed().as_secs_f64() * 1000.0)));
    }
    samples
}

/// A school follows its feed from `after` with long polls; per event, the lag
/// from its recording to its arrival here.
async fn follow_feed(
    http: reqwest::Client,
    base: String,
    token: String,
    mut after: i64,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Samples {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let url = format!("{base}/v1/events?after={after}&limit=1000&wait=2");
        let sent = Instant::now();
        let page = match http.get(&url).bearer_auth(&token).send().await {
            Ok(response) if response.status().is_success() => {
                response.json::<Value>().await.map_err(|e| e.to_string())
            }
            Ok(response) => Err(response.status().to_string()),
            Err(error) => Err(error.to_string()),
        };
        let at = (sent - start).as_secs_f32();
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                samples.push((at, Err(error)));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let now = chrono::Utc::now();
        for event in page["events"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let recorded = event["time"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| (now - t.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0));
            let lag = recorded.map(|us| us as f64 / 1000.0).ok_or_else(|| "no time".to_owned());
            samples.push((at, lag));
        }
        after = page["next"].as_i64().unwrap_or(after);
    }
    samples
}

/// Runs the scenario; the human report and the JSON figures.
pub async fn run(options: &Options, header: &Header, env: &Env) -> anyhow::Result<(String, Value)> {
    let Options { clients, schools, minutes, share, .. } = *options;
    let length = Duration::from_secs(minutes * 60);
    let probe = clients * PROBE_PER_CLIENT;
    let soak_capacity = (options.rate_ceiling * share * length.as_secs_f64()
        / COMMANDS_PER_LIFECYCLE)
        .ceil() as usize;
    // Enough offers that none needs more than the slots an offer may have.
    let offers_per_client = options
        .offers_per_client
        .max((probe + soak_capacity).div_ceil(clients * population::MAX_SLOTS));
    let population = Arc::new(
        population::build(env, probe + soak_capacity, clients, schools, offers_per_client).await?,
    );
    env.settle().await?;

    eprintln!("soak: the maximum rate, {clients} clients walking {probe} lifecycles ...");
    let max = walk::run(env, Arc::clone(&population), 0..probe, None).await?;
    if max.errors > 0 {
        bail!("the maximum-rate walk had {} errors: {:?}", max.errors, max.error_kinds);
    }
    let max_rate = max.commands_per_s();
    let rate = share * max_rate;
    if max_rate > options.rate_ceiling {
        bail!(
            "the maximum {max_rate:.0} commands/s is above the ceiling the population was sized for: raise --soak-rate-ceiling"
        );
    }
    env.settle().await?;
    let tokens: Arc<Vec<String>> = Arc::new(
        max.completed_placements
            .iter()
            .map(|&p| population.students[p].party.token.clone())
            .collect(),
    );
    anyhow::ensure!(!tokens.is_empty(), "no completed placement to read");
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(log_position), 0) FROM events")
        .fetch_one(&env.pool)
        .await
        .context("the log's head")?;

    eprintln!(
        "soak: {minutes} min at {rate:.0} commands/s ({share} × {max_rate:.0}), {} overview reads/s, a school's feed ...",
        options.read_rate
    );
    let (side, http) = client_runtime(options.readers + 4)?;
    let stop = Arc::new(AtomicBool::new(false));
    // One clock for every sample: the schedule's.
    let pacer = Arc::new(Pacer::new(rate, length));
    let start = pacer.start();
    let per_reader = options.read_rate / options.readers as f64;
    let readers: Vec<_> = (0..options.readers)
        .map(|_| {
            let url = format!("{}/v1/me/overview", env.base);
            side.spawn(read_overviews(
                http.clone(),
                url,
                Arc::clone(&tokens),
                per_reader,
                start,
                Arc::clone(&stop),
            ))
        })
        .collect();
    let feed = side.spawn(follow_feed(
        http.clone(),
        env.base.clone(),
        population.schools[0].token.clone(),
        head,
        start,
        Arc::clone(&stop),
    ));
    let memory = {
        let stop = Arc::clone(&stop);
        side.spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push((start.elapsed().as_secs_f32(), rss_mib()));
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            samples
        })
    };
    let pacer = Arc::new(Pacer::new(rate, length));
    let soaked =
        walk::run(env, Arc::clone(&population), probe..population.students.len(), Some(pacer))
            .await?;
    stop.store(true, Ordering::Relaxed);
    let mut reads = Vec::new();
    for reader in readers {
        reads.extend(reader.await.context("a reader failed")?);
    }
    let feed = feed.await.context("the feed follower failed")?;
    let memory = memory.await.context("the memory sampler failed")?;
    side.shutdown_background();

    // Per minute of the schedule. The lifecycles under way at the deadline
    // finish after it (the drain): their commands count in the totals and the
    // error count, not in any minute.
    let mut windows: Vec<Minute> = (0..minutes).map(|_| Minute::default()).collect();
    let mut drain = 0usize;
    let mut drain_errors = 0u64;
    let minute_of = |at: f32| {
        let minute = (at.max(0.0) / 60.0) as usize;
        (minute < windows_len(minutes)).then_some(minute)
    };
    for &(at, ms) in &soaked.timeline {
        match minute_of(at) {
            Some(m) => windows[m].commands.push(f64::from(ms)),
            None => drain += 1,
        }
    }
    for &at in &soaked.error_times {
        match minute_of(at) {
            Some(m) => windows[m].command_errors += 1,
            None => drain_errors += 1,
        }
    }
    for (at, result) in &reads {
        let Some(m) = minute_of(*at) else { continue };
        match result {
            Ok(ms) => windows[m].reads.push(*ms),
            Err(_) => windows[m].read_errors += 1,
        }
    }
    for (at, result) in &feed {
        let Some(m) = minute_of(*at) else { continue };
        match result {
            Ok(ms) => windows[m].feed_lag.push(*ms),
            Err(_) => windows[m].feed_errors += 1,
        }
    }
    for &(at, mib) in &memory {
        let Some(m) = minute_of(at) else { continue };
        windows[m].rss_mib = windows[m].rss_mib.max(mib);
    }

    let commands = |w: &Minute| Summary::of(&w.commands);
    let per_s = |w: &Minute| w.commands.len() as f64 / 60.0;
    let errors = drain_errors
        + windows.iter().map(|w| w.command_errors + w.read_errors + w.feed_errors).sum::<u64>();
    // The second minute is the reference: the first holds the warm-up.
    let reference = windows.get(1).unwrap_or(&windows[0]);
    let last = windows.last().unwrap_or(reference);
    let slowest = windows.iter().map(per_s).fold(f64::INFINITY, f64::min);
    let p99_growth = commands(last).p99 / commands(reference).p99.max(f64::EPSILON);
    let memory_growth = last.rss_mib / reference.rss_mib.max(f64::EPSILON);
    let rate_met = slowest >= RATE_FLOOR * rate;
    let p99_met = p99_growth <= P99_GROWTH_MAX;
    let memory_met = memory_growth <= MEMORY_GROWTH_MAX;
    let pass = |ok: bool| if ok { "met" } else { "MISSED" };

    let mut r = String::new();
    let mut line = |text: String| {
        r.push_str(&text);
        r.push('\n');
    };
    for text in &header.lines {
        line(text.clone());
    }
    line(format!(
        "clients: {clients}, readers: {} at {} requests/s in all, feed: school {} (long polls)",
        options.readers, options.read_rate, population.schools[0].id
    ));
    line(String::new());
    line("-- maximum: closed-loop lifecycles, as fast as answered --".into());
    line(format!(
        "  {} commands in {:.1} s = {max_rate:.1} commands/s; p99 {:.1} ms; errors {}",
        max.commands,
        max.elapsed.as_secs_f64(),
        max.all.p99,
        max.errors
    ));
    line(String::new());
    line(format!(
        "-- soak: {minutes} min at {rate:.1} commands/s ({share} × the maximum), open loop --"
    ));
    line("  min  commands/s  cmd p50  cmd p99  errors  reads/s  read p99  feed ev/s  feed lag p99  RSS MiB".into());
    for (index, w) in windows.iter().enumerate() {
        let reads = Summary::of(&w.reads);
        let lag = Summary::of(&w.feed_lag);
        line(format!(
            "  {:>3}  {:>10.1}  {:>7.1}  {:>7.1}  {:>6}  {:>7.1}  {:>8.1}  {:>9.1}  {:>12.1}  {:>7.1}",
            index + 1,
            per_s(w),
            commands(w).p50,
            commands(w).p99,
            w.command_errors + w.read_errors + w.feed_errors,
            w.reads.len() as f64 / 60.0,
            reads.p99,
            w.feed_lag.len() as f64 / 60.0,
            lag.p99,
            w.rss_mib,
        ));
    }
    line(format!(
        "  lifecycles completed: {}; commands: {} ({drain} after the last minute, finishing lifecycles under way); errors (commands, reads, feed): {errors}",
        soaked.completed, soaked.commands
    ));
    line(format!(
        "  flat: slowest minute {slowest:.1} commands/s (>= {RATE_FLOOR} × {rate:.1}: {}); p99 last ÷ minute 2 = {p99_growth:.2} (<= {P99_GROWTH_MAX}: {}); RSS last ÷ minute 2 = {memory_growth:.3} (<= {MEMORY_GROWTH_MAX}: {}); zero errors: {}",
        pass(rate_met),
        pass(p99_met),
        pass(memory_met),
        pass(errors == 0)
    ));

    let minutes_json: Vec<Value> = windows
        .iter()
        .map(|w| {
            json!({
                "commands_per_s": round(per_s(w)),
                "commands": commands(w).to_json(),
                "command_errors": w.command_errors,
                "reads_per_s": round(w.reads.len() as f64 / 60.0),
                "reads": Summary::of(&w.reads).to_json(),
                "read_errors": w.read_errors,
                "feed_events_per_s": round(w.feed_lag.len() as f64 / 60.0),
                "feed_lag": Summary::of(&w.feed_lag).to_json(),
                "feed_errors": w.feed_errors,
                "rss_mib": round(w.rss_mib),
            })
        })
        .collect();
    let rest = json!({
        "parameters": {
            "clients": clients, "schools": schools, "offers_per_client": offers_per_client,
            "minutes": minutes, "share": share, "readers": options.readers,
            "read_rate": options.read_rate,
        },
        "maximum": {
            "commands": max.commands, "elapsed_s": round(max.elapsed.as_secs_f64()),
            "commands_per_s": round(max_rate), "latency": max.all.to_json(),
        },
        "soak": {
            "target_commands_per_s": round(rate),
            "commands": soaked.commands,
            "commands_after_the_last_minute": drain,
            "lifecycles_completed": soaked.completed,
            "errors": errors,
            "minutes": minutes_json,
            "slowest_commands_per_s": round(slowest),
            "p99_growth": round(p99_growth),
            "memory_growth": round(memory_growth),
            "met": {"rate": rate_met, "p99": p99_met, "memory": memory_met, "errors": errors == 0},
        },
    });
    Ok((r, header.figures(rest)))
}
