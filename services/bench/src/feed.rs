//! Feed read throughput: bulk-seeded company events read back through
//! `GET /v1/events` as SBB, 1000 at a time.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagepact_store::company_registry;

use crate::machine::{CpuSample, CpuUse};
use crate::setup::Env;
use crate::stats::Summary;

/// Events per seeded company history.
const PER_AGGREGATE: i64 = 100;
/// Events per feed page (the API's maximum).
const PAGE: usize = 1000;

/// What the feed phase measured.
#[derive(Debug)]
pub struct FeedOutcome {
    /// Events seeded.
    pub seeded: i64,
    /// Companies they belong to.
    pub seeded_aggregates: i64,
    /// From the seeding commit until the sequencer stamped all of them.
    pub stamping: Duration,
    /// From then until the company registry had applied them all.
    pub projection_catch_up: Duration,
    /// Events the feed served.
    pub events_read: u64,
    /// Company events in the table (what the feed should serve).
    pub events_expected: i64,
    /// Pages requested (including the final empty one).
    pub pages: u64,
    /// Reading the whole feed.
    pub elapsed: Duration,
    /// Per-page latency.
    pub page_latency: Summary,
    /// CPU use while reading.
    pub cpu: CpuUse,
}

impl FeedOutcome {
    /// Events read per second.
    pub fn rate(&self) -> f64 {
        self.events_read as f64 / self.elapsed.as_secs_f64()
    }
}

/// Seeds `events` company events, waits until they are stamped and projected,
/// then reads the whole feed.
pub async fn run(env: &Env, events: i64) -> anyhow::Result<FeedOutcome> {
    let seeded_aggregates = crate::seed::write_histories(
        &env.pool,
        "company",
        "feed-",
        events,
        PER_AGGREGATE,
        &json!({}),
    )
    .await?;
    let committed = Instant::now();
    let head = crate::seed::await_stamped(env, Duration::from_secs(600)).await?;
    let stamping = committed.elapsed();
    let stamped = Instant::now();
    let reached = env
        .state
        .projections
        .await_position(company_registry::NAME, head, Duration::from_secs(1800))
        .await?;
    if !reached {
        bail!("the company registry did not catch up with position {head}");
    }
    let projection_catch_up = stamped.elapsed();
    let projected_companies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM company_registry WHERE company_id LIKE 'feed-%'")
            .fetch_one(&env.pool)
            .await?;
    if projected_companies != seeded_aggregates {
        bail!(
            "the registry holds {projected_companies} of the {seeded_aggregates} seeded companies"
        );
    }
    let events_expected: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'company'")
            .fetch_one(&env.pool)
            .await?;

    let (runtime, http) = crate::http_load::client_runtime(2)?;
    let cpu_before = CpuSample::now();
    let reader = runtime.spawn(read_feed(http, env.base.clone(), env.token.clone()));
    let read = reader.await.context("the feed reader failed");
    let cpu = cpu_before.until(CpuSample::now());
    drop(runtime);
    let (events_read, elapsed, page_latencies) = read??;
    Ok(FeedOutcome {
        seeded: events,
        seeded_aggregates,
        stamping,
        projection_catch_up,
        events_read,
        events_expected,
        pages: page_latencies.len() as u64,
        elapsed,
        page_latency: Summary::of(&page_latencies),
        cpu,
    })
}

/// Reads the whole feed, page by page: events read, time taken, page latencies (ms).
async fn read_feed(
    http: reqwest::Client,
    base: String,
    token: String,
) -> anyhow::Result<(u64, Duration, Vec<f64>)> {
    let start = Instant::now();
    let mut after = 0i64;
    let mut events_read = 0u64;
    let mut page_latencies = Vec::new();
    loop {
        let sent = Instant::now();
        let response = http
            .get(format!("{base}/v1/events"))
            .query(&[("after", after.to_string()), ("limit", PAGE.to_string())])
            .bearer_auth(&token)
            .send()
            .await
            .context("reading the feed")?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading a feed page")?;
        if status != StatusCode::OK {
            bail!("the feed answered {status}: {}", String::from_utf8_lossy(&bytes));
        }
        let page: Value = serde_json::from_slice(&bytes).context("decoding a feed page")?;
        page_latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        let count = page.get("events").and_then(Value::as_array).map_or(0, Vec::len);
        let next =
            page.get("next").and_then(Value::as_i64).context("a feed page without `next`")?;
        events_read += count as u64;
        if count == 0 {
            break;
        }
        after = next;
    }
    Ok((events_read, start.elapsed(), page_latencies))
}
