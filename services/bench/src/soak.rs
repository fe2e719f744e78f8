//! The soak (`--scenario soak`, issue 7): placement lifecycles at 70% of the
//! measured maximum command rate for ten minutes, with students reading their
//! overview and a school following the feed beside them; per minute, the
//! command rate and p99, the readers' p99, the feed's lag and the process's
//! memory, which must all stay flat, with no error.
//!
//! Why it is built this way:
//!
//! - **The maximum is measured in the same run**, on the same population and
//!   database: a closed-loop lifecycle walk of two minutes, as fast as the
//!   server answers (the lifecycle scenario's method), long enough to
//!   include autovacuum and a checkpoint: 70 % of a few seconds'
//!   burst on a freshly analysed database kept both cores busy (96 %) and
//!   queued commands for seconds. The readers and the feed run beside it as
//!   they do beside the soak: it is the command rate of the soak's whole load.
//! - **The soak is open loop** ([`Pacer`]): command `k` is due at
//!   `k ÷ rate`, whatever the answers before it, and its latency counts from
//!   then, so a server that slowed down would show as rising latency, not be
//!   hidden by clients that wait for it. Minutes are minutes of the schedule;
//!   the commands of lifecycles still under way at the end (the drain) count
//!   in the totals only.
//! - **Memory is the resident set of this process**, which holds the
//!   in-process API (its pools, caches and tasks) and the load generator.
//!   The generator keeps every latency it measures: 16 bytes a command and
//!   32 a read or feed event, about 0.9 MiB a minute at 566 commands/s,
//!   which is nearly all of the growth a 40-minute run showed. So the flatness
//!   criterion is on the resident set less those records (counted from the
//!   minutes' samples, so an estimate: it leaves out the allocator's slack).
//!   PostgreSQL's memory is its own (shared buffers, fixed) and not counted.
//! - **Stalls are traced**: per minute the machine's CPU and its CPU time per
//!   command; the seconds with the slowest commands, on the wall clock (to
//!   find in PostgreSQL's log with `--pg-log`); and the longest-open writing
//!   transactions of request sessions, which hold back the log's stamping and
//!   so every command's answer (`stagepact_store::log`; autovacuum's and the
//!   background sessions' do not). Beside each slow second, the machine while
//!   its slowest command ran (`crate::pulse`: CPU stolen by the host, waiting
//!   for a core or for the disk, the disk's flush times), against a typical
//!   second: stalls that PostgreSQL's log did not explain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::activity;
use crate::header::Header;
use crate::http_load::client_runtime;
use crate::lifecycle::population;
use crate::lifecycle::walk::{self, Pace, Pacer};
use crate::machine::{CpuSample, CpuUse};
use crate::pulse::{self, Pulse};
use crate::setup::Env;
use crate::stats::{Summary, round};

/// Commands of one lifecycle.
const COMMANDS_PER_LIFECYCLE: f64 = 13.0;
/// Most slots per offer in the soak's population (the API allows 1,000).
const SLOTS_PER_OFFER: usize = 50;
/// How long the maximum-rate walk runs: long enough to take in autovacuum's
/// rounds, one a minute, and a checkpoint's writes. A maximum measured on a
/// freshly analysed database in a few seconds is a burst the server cannot
/// hold (`BENCHMARKS.md`, "Soak"). It was a fixed 600 placements per client,
/// about two minutes when the server took them at 1,000 commands/s and 24 s
/// at 5,000.
const PROBE_LENGTH: Duration = Duration::from_secs(120);
/// Walkers per client in the paced soak. An open-loop schedule must never wait
/// for a free walker while the server has room: with one walker per client
/// (16), 984 commands a second at 10 ms each keep ten of them busy, and a
/// rise of the server's latency to 17 ms (an autovacuum round, the machine
/// 85 % busy) capped the walkers at 940 commands a second. The schedule
/// then fell behind by the second and every later command counted the wait
/// (run J: one minute's p99 at 1.2 s while the machine was less busy than
/// usual). Real callers are many and independent: they do not wait for each
/// other's answers. Four per client leave that much headroom; the maximum
/// is still measured with one per client, closed loop.
const SOAK_WALKERS_PER_CLIENT: usize = 4;
/// Flatness: the rate of every minute at least this share of the target.
const RATE_FLOOR: f64 = 0.95;
/// Flatness: p99 of the last minute at most this many times the second's.
const P99_GROWTH_MAX: f64 = 1.5;
/// Steadiness: no minute's p99 (the first, the warm-up, aside) above this
/// many times the median minute's.
const P99_SPREAD_MAX: f64 = 2.0;
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
    /// A fixed soak rate instead of `share` × the measured maximum.
    pub rate: Option<f64>,
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
    /// What the load generator's records held at the minute's end.
    records_mib: f64,
    /// The machine's CPU from the minute's first sample to the next minute's.
    cpu: Option<CpuUse>,
}

/// What a side task saw: (seconds since the start, milliseconds), or an error.
type Samples = Vec<(f32, Result<f64, String>)>;

/// How often the oldest open writing transaction is looked up.
const HOLDER_POLL: Duration = Duration::from_millis(20);

/// A writing transaction seen open (one with a transaction id, of a session
/// that may append events, so one that holds back the event log's stamping
/// frontier; see `stagepact_store::log`):
/// when it was last seen, for how long it had been open then, and what it
/// was doing.
#[derive(Debug, Clone)]
struct Holder {
    at: f32,
    open_ms: f64,
    what: String,
}

/// What the transaction watcher saw.
#[derive(Debug, Default)]
struct Holders {
    /// Each transaction once (by backend and start), as last seen.
    seen: Vec<Holder>,
    /// Lookups that failed.
    errors: u64,
}

/// Samples the oldest open writing transaction every [`HOLDER_POLL`] until
/// `stop`, on a connection of its own (not the API's pool, which it would
/// compete for, and wait on during a stall).
async fn watch_holders(url: String, start: Instant, stop: Arc<AtomicBool>) -> Holders {
    use sqlx::Connection;
    let mut holders = Holders::default();
    let mut connection = match sqlx::PgConnection::connect(&url).await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(%error, "the transaction watcher could not connect");
            holders.errors += 1;
            return holders;
        }
    };
    let mut by_transaction: std::collections::HashMap<(i32, i64), Holder> =
        std::collections::HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let row: Result<Option<(i32, i64, f64, String)>, _> = sqlx::query_as(
            "SELECT pid,
                    (extract(epoch FROM xact_start) * 1000000)::int8,
                    extract(epoch FROM clock_timestamp() - xact_start)::float8 * 1000,
                    coalesce(state, '?') || ': '
                        || left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 160)
               FROM pg_stat_activity
              WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
                AND xact_start IS NOT NULL
                AND backend_type IS DISTINCT FROM 'autovacuum worker'
                AND application_name IS DISTINCT FROM $1
              ORDER BY xact_start LIMIT 1",
        )
        .bind(stagepact_store::log::BACKGROUND_APPLICATION)
        .fetch_optional(&mut connection)
        .await;
        match row {
            Ok(Some((pid, started, open_ms, what))) => {
                let at = start.elapsed().as_secs_f32();
                by_transaction.insert((pid, started), Holder { at, open_ms, what });
            }
            Ok(None) => {}
            Err(_) => holders.errors += 1,
        }
        tokio::time::sleep(HOLDER_POLL).await;
    }
    holders.seen = by_transaction.into_values().collect();
    holders
}

/// The whole machine's busy CPU time of a minute per command due in it, in
/// ms (readers and the feed included: their load is the same every minute).
/// The busy share is measured between samples that need not be 60 s apart
/// (the last minute's runs into the drain), so it is scaled to the minute.
fn cpu_ms_per_command(minute: &Minute) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    minute.cpu.map_or(0.0, |cpu| {
        cpu.machine_busy * cores as f64 * 60_000.0 / minute.commands.len().max(1) as f64
    })
}

/// How many of the slowest seconds the report lists.
const SLOWEST_SECONDS: usize = 10;

/// One second of the schedule, by the slowest command due in it.
#[derive(Debug)]
struct Second {
    offset: usize,
    wall: String,
    max_ms: f64,
    commands: usize,
}

/// The [`SLOWEST_SECONDS`] seconds of the soak whose slowest command was
/// slowest, slowest first, with their time on the wall clock: where to look
/// in PostgreSQL's log (`--pg-log`) for what stalled.
fn slowest_seconds(
    timeline: &[(f32, f32)],
    minutes: u64,
    wall_start: chrono::DateTime<chrono::Utc>,
) -> Vec<Second> {
    let mut seconds = vec![(0usize, 0f64); windows_len(minutes).saturating_mul(60)];
    for &(at, ms) in timeline {
        if let Some(second) = seconds.get_mut(at.max(0.0) as usize) {
            second.0 += 1;
            second.1 = second.1.max(f64::from(ms));
        }
    }
    let mut ranked: Vec<_> = seconds.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    ranked
        .into_iter()
        .take(SLOWEST_SECONDS)
        .map(|(offset, (commands, max_ms))| Second {
            offset,
            wall: (wall_start + chrono::Duration::seconds(offset as i64))
                .format("%H:%M:%S%.3f UTC")
                .to_string(),
            max_ms,
            commands,
        })
        .collect()
}

/// How many of PostgreSQL's busiest session states the report lists.
const SESSION_STATES: usize = 6;

impl Second {
    /// Per-second samples (of the machine, of the sessions) from this second
    /// until its slowest command was answered.
    fn span<'p, T>(&self, samples: &'p [T]) -> &'p [T] {
        let end = (self.offset + 1 + (self.max_ms / 1000.0).ceil() as usize).min(samples.len());
        samples.get(self.offset.min(end)..end).unwrap_or_default()
    }
}

/// The median second: each measure's median on its own.
fn typical(pulses: &[Pulse]) -> Pulse {
    let median = |f: fn(&Pulse) -> f64| {
        let mut values: Vec<f64> = pulses.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    Pulse {
        busy: median(|p| p.busy),
        iowait: median(|p| p.iowait),
        steal: median(|p| p.steal),
        process_ms: median(|p| p.process_ms),
        cpu_pressure_ms: median(|p| p.cpu_pressure_ms),
        io_pressure_ms: median(|p| p.io_pressure_ms),
        writes: median(|p| p.writes as f64) as u64,
        write_ms: median(|p| p.write_ms),
        flushes: median(|p| p.flushes as f64) as u64,
        flush_ms: median(|p| p.flush_ms),
    }
}

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
    // Room for a soak's events up front (see `walk::walk_client`): a million
    // samples, 32 MiB, resident only as they are written.
    let mut samples = Vec::with_capacity(1 << 20);
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

/// The readers and the feed follower beside the commands.
struct SideLoad {
    readers: Vec<tokio::task::JoinHandle<Samples>>,
    feed: tokio::task::JoinHandle<Samples>,
}

impl SideLoad {
    /// Starts `options.readers` readers of the overviews of the students whose
    /// `tokens` are given, at `options.read_rate` in all, and a school
    /// following its feed from `head`, on `side`, until `stop`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site per phase; all are distinct inputs"
    )]
    fn spawn(
        side: &tokio::runtime::Runtime,
        http: &reqwest::Client,
        env: &Env,
        options: &Options,
        tokens: Arc<Vec<String>>,
        school_token: String,
        head: i64,
        start: Instant,
        stop: &Arc<AtomicBool>,
    ) -> Self {
        let per_reader = options.read_rate / options.readers as f64;
        let readers = (0..options.readers)
            .map(|_| {
                side.spawn(read_overviews(
                    http.clone(),
                    format!("{}/v1/me/overview", env.base),
                    Arc::clone(&tokens),
                    per_reader,
                    start,
                    Arc::clone(stop),
                ))
            })
            .collect();
        let feed = side.spawn(follow_feed(
            http.clone(),
            env.base.clone(),
            school_token,
            head,
            start,
            Arc::clone(stop),
        ));
        Self { readers, feed }
    }

    /// Waits for them to stop; the reads' and the feed's samples.
    async fn join(self) -> anyhow::Result<(Samples, Samples)> {
        let mut reads = Vec::new();
        for reader in self.readers {
            reads.extend(reader.await.context("a reader failed")?);
        }
        let feed = self.feed.await.context("the feed follower failed")?;
        Ok((reads, feed))
    }
}

/// What the readers and the feed got: successes and errors.
struct SideFigures {
    reads: usize,
    read_errors: usize,
    feed_events: usize,
    feed_errors: usize,
}

impl SideFigures {
    fn of(reads: &Samples, feed: &Samples) -> Self {
        let errors = |samples: &Samples| samples.iter().filter(|(_, r)| r.is_err()).count();
        let (read_errors, feed_errors) = (errors(reads), errors(feed));
        Self {
            reads: reads.len() - read_errors,
            read_errors,
            feed_events: feed.len() - feed_errors,
            feed_errors,
        }
    }
}

/// The log's highest position.
async fn log_head(env: &Env) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT coalesce(max(log_position), 0) FROM events")
        .fetch_one(&env.pool)
        .await
        .context("the log's head")
}

/// Runs the scenario; the human report and the JSON figures.
pub async fn run(options: &Options, header: &Header, env: &Env) -> anyhow::Result<(String, Value)> {
    let Options { clients, schools, minutes, share, .. } = *options;
    let length = Duration::from_secs(minutes * 60);
    // Enough placements for the maximum's walk at the highest maximum expected.
    let probe = (options.rate_ceiling * PROBE_LENGTH.as_secs_f64() / COMMANDS_PER_LIFECYCLE).ceil()
        as usize;
    let probe = probe.next_multiple_of(clients);
    // Sized for the highest rate the soak may run at: the fixed one, or the
    // share of the highest maximum expected.
    let highest_rate = options.rate.unwrap_or(options.rate_ceiling * share);
    let soak_capacity =
        (highest_rate * length.as_secs_f64() / COMMANDS_PER_LIFECYCLE).ceil() as usize;
    // Enough offers that none has more than a large company's slots: an
    // offer's cost grows with its reservations (its aggregate and read model
    // hold them), and an hour of placements on a few offers of a thousand
    // slots each would measure that growth, not the soak.
    let offers_per_client =
        options.offers_per_client.max((probe + soak_capacity).div_ceil(clients * SLOTS_PER_OFFER));
    let population = Arc::new(
        population::build(env, probe + soak_capacity, clients, schools, offers_per_client).await?,
    );
    env.settle().await?;

    // The maximum is the command rate the server holds while it serves the
    // soak's readers and feed too: 70 % of a rate measured without them (runs
    // up to R) kept the machine 95–97 % busy in the soak, where the commands'
    // queue builds up, because the readers and the feed took their share of
    // it on top (BENCHMARKS.md, "Soak"). The readers read the overviews of the
    // walk's own students, whose placements are under way.
    let (side, http) = client_runtime(options.readers + 4)?;
    let head = log_head(env).await?;
    let probe_tokens: Arc<Vec<String>> =
        Arc::new((0..probe).map(|p| population.students[p].party.token.clone()).collect());
    let beside_max = Arc::new(AtomicBool::new(false));
    let max_side = SideLoad::spawn(
        &side,
        &http,
        env,
        options,
        probe_tokens,
        population.schools[0].token.clone(),
        head,
        Instant::now(),
        &beside_max,
    );
    eprintln!(
        "soak: the maximum rate, {clients} clients walking lifecycles for {} s, with the readers and the feed ...",
        PROBE_LENGTH.as_secs()
    );
    let max = walk::run(
        env,
        Arc::clone(&population),
        0..probe,
        Pace::Closed(Some(PROBE_LENGTH)),
        clients,
    )
    .await;
    beside_max.store(true, Ordering::Relaxed);
    let (max_reads, max_feed) = max_side.join().await?;
    let max_side_figures = SideFigures::of(&max_reads, &max_feed);
    let max = max?;
    if max.errors > 0 {
        bail!("the maximum-rate walk had {} errors: {:?}", max.errors, max.error_kinds);
    }
    let max_rate = max.commands_per_s();
    let rate = options.rate.unwrap_or(share * max_rate);
    let basis = match options.rate {
        Some(_) => format!("fixed; {:.2} × the maximum", rate / max_rate),
        None => format!("{share} × the maximum"),
    };
    if options.rate.is_none() && max_rate > options.rate_ceiling {
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
    let head = log_head(env).await?;

    eprintln!(
        "soak: {minutes} min at {rate:.0} commands/s ({basis}, {max_rate:.0}), {} overview reads/s, a school's feed ...",
        options.read_rate
    );
    let stop = Arc::new(AtomicBool::new(false));
    // One clock for every sample: the schedule's.
    let pacer = Arc::new(Pacer::new(rate, length));
    let start = pacer.start();
    let holders = side.spawn(watch_holders(env.database_url(), start, Arc::clone(&stop)));
    let pulses = pulse::every_second(start, Arc::clone(&stop));
    let sessions = side.spawn(activity::sample(env.database_url(), start, Arc::clone(&stop)));
    // The schedule's start on the wall clock, to find a stall in PostgreSQL's log.
    let wall_start = chrono::Utc::now();
    let side_load = SideLoad::spawn(
        &side,
        &http,
        env,
        options,
        tokens,
        population.schools[0].token.clone(),
        head,
        start,
        &stop,
    );
    let memory = {
        let stop = Arc::clone(&stop);
        side.spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push((start.elapsed().as_secs_f32(), rss_mib(), CpuSample::now()));
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            // The last minute's CPU runs to the end, not to a sample up to 5 s before.
            samples.push((start.elapsed().as_secs_f32(), rss_mib(), CpuSample::now()));
            samples
        })
    };
    let walkers = clients * SOAK_WALKERS_PER_CLIENT;
    let soaked = walk::run(
        env,
        Arc::clone(&population),
        probe..population.students.len(),
        Pace::Open(pacer),
        walkers,
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let (reads, feed) = side_load.join().await?;
    let memory = memory.await.context("the memory sampler failed")?;
    let pulses = pulses.join().map_err(|_| anyhow::anyhow!("the machine sampler panicked"))?;
    let (sessions, session_errors) = sessions.await.context("the session sampler failed")?;
    let Holders { seen: mut holders, errors: holder_errors } =
        holders.await.context("the transaction watcher failed")?;
    holders.sort_by(|a, b| b.open_ms.total_cmp(&a.open_ms));
    holders.truncate(SLOWEST_SECONDS);
    drop(side);

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
    for &(at, mib, _) in &memory {
        let Some(m) = minute_of(at) else { continue };
        windows[m].rss_mib = windows[m].rss_mib.max(mib);
    }
    // A command's latency is kept twice (per step, and on the timeline); a
    // read or a feed event is one sample.
    const COMMAND_RECORD: usize = size_of::<f64>() + size_of::<(f32, f32)>();
    const SAMPLE_RECORD: usize = size_of::<(f32, Result<f64, String>)>();
    let mut held = 0usize;
    for w in &mut windows {
        let samples = w.reads.len() + w.feed_lag.len() + (w.read_errors + w.feed_errors) as usize;
        held += w.commands.len() * COMMAND_RECORD + samples * SAMPLE_RECORD;
        w.records_mib = held as f64 / (1024.0 * 1024.0);
    }
    let less_records = |w: &Minute| w.rss_mib - w.records_mib;
    // Each minute's CPU, from its first sample to the first of the next
    // minute (or the last sample): whether a command costs more as the
    // database grows, which latency alone cannot tell from a stall.
    let firsts: Vec<(usize, CpuSample)> = memory
        .iter()
        .filter_map(|&(at, _, cpu)| Some((minute_of(at)?, cpu)))
        .fold(Vec::new(), |mut firsts, (m, cpu)| {
            if firsts.last().is_none_or(|&(last, _)| last != m) {
                firsts.push((m, cpu));
            }
            firsts
        });
    let ends = firsts.iter().skip(1).map(|&(_, cpu)| cpu).chain(memory.last().map(|s| s.2));
    for (&(m, from), to) in firsts.iter().zip(ends) {
        windows[m].cpu = Some(from.until(to));
    }

    let slowest_seconds = slowest_seconds(&soaked.timeline, minutes, wall_start);
    let commands = |w: &Minute| Summary::of(&w.commands);
    let per_s = |w: &Minute| w.commands.len() as f64 / 60.0;
    let errors = drain_errors
        + windows.iter().map(|w| w.command_errors + w.read_errors + w.feed_errors).sum::<u64>();
    // The second minute is the reference: the first holds the warm-up.
    let reference = windows.get(1).unwrap_or(&windows[0]);
    let last = windows.last().unwrap_or(reference);
    let slowest = windows.iter().map(per_s).fold(f64::INFINITY, f64::min);
    let p99_growth = commands(last).p99 / commands(reference).p99.max(f64::EPSILON);
    let rss_growth = last.rss_mib / reference.rss_mib.max(f64::EPSILON);
    let memory_growth = less_records(last) / less_records(reference).max(f64::EPSILON);
    let rate_met = slowest >= RATE_FLOOR * rate;
    let p99_met = p99_growth <= P99_GROWTH_MAX;
    let mut p99s: Vec<f64> = windows.iter().skip(1).map(|w| commands(w).p99).collect();
    p99s.sort_by(f64::total_cmp);
    let p99_spread = p99s.last().copied().unwrap_or_default()
        / p99s.get(p99s.len() / 2).copied().unwrap_or_default().max(f64::EPSILON);
    let spread_met = p99_spread <= P99_SPREAD_MAX;
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
        "clients: {clients} (the soak: {} walkers), readers: {} at {} requests/s in all, feed: school {} (long polls)",
        clients * SOAK_WALKERS_PER_CLIENT,
        options.readers,
        options.read_rate,
        population.schools[0].id
    ));
    line(String::new());
    line("-- maximum: closed-loop lifecycles, as fast as answered, beside the readers and the feed --".into());
    line(format!(
        "  {} commands in {:.1} s = {max_rate:.1} commands/s; p99 {:.1} ms; errors {}",
        max.commands,
        max.elapsed.as_secs_f64(),
        max.all.p99,
        max.errors
    ));
    line(format!(
        "  beside it: {} overview reads ({:.1}/s, {} errors), {} feed events ({} errors)",
        max_side_figures.reads,
        max_side_figures.reads as f64 / max.elapsed.as_secs_f64(),
        max_side_figures.read_errors,
        max_side_figures.feed_events,
        max_side_figures.feed_errors
    ));
    line(String::new());
    line(format!("-- soak: {minutes} min at {rate:.1} commands/s ({basis}), open loop --"));
    line("  min  commands/s  cmd p50  cmd p99  errors  reads/s  read p99  feed ev/s  feed lag p99  RSS MiB  less records  CPU %  CPU ms/cmd".into());
    for (index, w) in windows.iter().enumerate() {
        let reads = Summary::of(&w.reads);
        let lag = Summary::of(&w.feed_lag);
        line(format!(
            "  {:>3}  {:>10.1}  {:>7.1}  {:>7.1}  {:>6}  {:>7.1}  {:>8.1}  {:>9.1}  {:>12.1}  {:>7.1}  {:>12.1}  {:>5.1}  {:>10.2}",
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
            less_records(w),
            w.cpu.map_or(0.0, |cpu| cpu.machine_busy * 100.0),
            cpu_ms_per_command(w),
        ));
    }
    line(format!(
        "  lifecycles completed: {}; commands: {} ({drain} after the last minute, finishing lifecycles under way); errors (commands, reads, feed): {errors}",
        soaked.completed, soaked.commands
    ));
    line(format!("  the {SLOWEST_SECONDS} seconds with the slowest command (due in that second):"));
    for second in &slowest_seconds {
        line(format!(
            "    {:>4} s  {}  slowest {:>7.1} ms  {:>4} commands",
            second.offset, second.wall, second.max_ms, second.commands
        ));
        line(format!("           while it ran: {}", Pulse::over(second.span(&pulses)).line()));
        for (what, sessions) in activity::busiest(second.span(&sessions), SESSION_STATES) {
            line(format!("             {sessions:>5.1} sessions  {what}"));
        }
    }
    line(format!("           a typical second: {}", typical(&pulses).line()));
    line(format!(
        "           PostgreSQL's sessions over the whole soak ({session_errors} samples failed):"
    ));
    for (what, sessions) in activity::busiest(&sessions, SESSION_STATES) {
        line(format!("             {sessions:>5.1} sessions  {what}"));
    }
    line(format!(
        "  the {SLOWEST_SECONDS} longest-open writing transactions (they hold back the log's stamping; {holder_errors} lookups failed):"
    ));
    for holder in &holders {
        line(format!("    {:>6.1} s  open {:>7.1} ms  {}", holder.at, holder.open_ms, holder.what));
    }
    line(format!(
        "  flat: slowest minute {slowest:.1} commands/s (>= {RATE_FLOOR} × {rate:.1}: {}); p99 last ÷ minute 2 = {p99_growth:.2} (<= {P99_GROWTH_MAX}: {}); p99 highest ÷ median minute = {p99_spread:.2} (<= {P99_SPREAD_MAX}: {}); RSS last ÷ minute 2 = {rss_growth:.3}, less the generator's records {memory_growth:.3} (<= {MEMORY_GROWTH_MAX}: {}); zero errors: {}",
        pass(rate_met),
        pass(p99_met),
        pass(spread_met),
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
                "rss_less_records_mib": round(less_records(w)),
                "cpu_busy_percent": round(w.cpu.map_or(0.0, |cpu| cpu.machine_busy * 100.0)),
                "cpu_ms_per_command": round(cpu_ms_per_command(w)),
            })
        })
        .collect();
    let rest = json!({
        "parameters": {
            "clients": clients, "soak_walkers": clients * SOAK_WALKERS_PER_CLIENT, "schools": schools, "offers_per_client": offers_per_client,
            "minutes": minutes, "share": share, "fixed_rate": options.rate, "readers": options.readers,
            "read_rate": options.read_rate,
        },
        "maximum": {
            "commands": max.commands, "elapsed_s": round(max.elapsed.as_secs_f64()),
            "commands_per_s": round(max_rate), "latency": max.all.to_json(),
            "overview_reads_beside": max_side_figures.reads,
            "overview_read_errors_beside": max_side_figures.read_errors,
            "feed_events_beside": max_side_figures.feed_events,
            "feed_errors_beside": max_side_figures.feed_errors,
        },
        "soak": {
            "target_commands_per_s": round(rate),
            "commands": soaked.commands,
            "commands_after_the_last_minute": drain,
            "lifecycles_completed": soaked.completed,
            "errors": errors,
            "minutes": minutes_json,
            "slowest_seconds": slowest_seconds.iter().map(|s| json!({
                "offset_s": s.offset, "utc": s.wall, "max_ms": round(s.max_ms), "commands": s.commands,
                "machine_while_it_ran": Pulse::over(s.span(&pulses)).to_json(),
                "sessions_while_it_ran": activity::to_json(&activity::busiest(s.span(&sessions), SESSION_STATES)),
            })).collect::<Vec<_>>(),
            "machine_typical_second": typical(&pulses).to_json(),
            "sessions_over_the_soak": activity::to_json(&activity::busiest(&sessions, SESSION_STATES)),
            "machine_by_second": pulses.iter().map(|p| p.to_json()).collect::<Vec<_>>(),
            // The process's resident set every 5 s (seconds since the start, MiB):
            // whether it grows steadily or in steps.
            "rss_every_5_s": memory.iter().map(|&(at, mib, _)| json!([round(f64::from(at)), round(mib)])).collect::<Vec<_>>(),
            "longest_open_writing_transactions": holders.iter().map(|h| json!({
                "at_s": round(f64::from(h.at)), "open_ms": round(h.open_ms), "what": h.what,
            })).collect::<Vec<_>>(),
            "slowest_commands_per_s": round(slowest),
            "p99_growth": round(p99_growth),
            "p99_spread": round(p99_spread),
            "rss_growth": round(rss_growth),
            "memory_growth": round(memory_growth),
            "met": {"rate": rate_met, "p99": p99_met, "p99_spread": spread_met, "memory": memory_met, "errors": errors == 0},
        },
    });
    Ok((r, header.figures(rest)))
}
