//! The indicators scenario (`--scenario indicators`): the pact's monitoring
//! over a log of about a million events.
//!
//! Untimed setup: a school year's worth of valid histories, built from the
//! domain's own event types and written in bulk (the command path is measured
//! by the other scenarios): companies with their recognition and (some) an
//! opt-out of matching, offers, students with their learning wish (some with
//! a sealed support need), placements walked from the match to the rating in
//! interleaved blocks (as a school year's placements progress side by side;
//! some stop at the agreement or the start), each reserving its offer's slot,
//! and reports with sealed grounds, acknowledged and (most) followed up.
//! Support needs and grounds are sealed with the vault's real keys, so the
//! projector's opening of them is part of what is measured. The sequencer
//! stamps everything and every projection catches up (reported, not a target).
//!
//! Timed: rebuilding the `indicators` projection from position 0 (target
//! under 60 s), then `getIndicators` read by monitors over HTTP for a fixed
//! time, each request with a random scope (no filter, a school year, a
//! school, a region, a qualification, a sector, or two of them), p99 against
//! the 50 ms target.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Days, Utc};
use serde_json::{Value, json};
use stagepact_api::auth::Role;
use stagepact_domain::company::{
    CompanyEvent, CompanyRegistered, MatchingParticipationSet, RecognitionGranted,
    RecognitionSuspended,
};
use stagepact_domain::offer::{OfferEvent, OfferPublished, OfferSlotReserved};
use stagepact_domain::placement::*;
use stagepact_domain::report::{
    Ground, ReportAcknowledged, ReportConversationRecorded, ReportEvent, ReportFiled, ReportKind,
};
use stagepact_domain::student::{
    Enrolment, LearningWishRecorded, StudentEnrolled, StudentEvent, SupportNeedRecorded,
    student_key,
};
use stagepact_domain::values::*;
use stagepact_store::indicators;
use uuid::Uuid;

use crate::header::Header;
use crate::machine::CpuSample;
use crate::setup::Env;
use crate::stats::{Summary, round};

/// Rounds to one decimal.
fn tenths(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Options of the scenario.
pub struct Options {
    /// About how many events the log holds.
    pub events: usize,
    /// Concurrent readers of `getIndicators`.
    pub readers: usize,
    /// How long they read, in seconds (after a 2 s warm-up).
    pub read_seconds: u64,
    /// List the top statements of the read phase (pg_stat_statements).
    pub statement_stats: bool,
}

/// Target: the rebuild of the indicators, in seconds.
const TARGET_REBUILD_SECONDS: f64 = 60.0;
/// Target: p99 of `getIndicators`, in milliseconds.
const TARGET_P99_MS: f64 = 50.0;

const SCHOOLS: usize = 40;
const REGIONS: [&str; 12] = [
    "Groningen",
    "Friesland",
    "Drenthe",
    "Twente",
    "Achterhoek",
    "Gelderland",
    "Utrecht",
    "Amsterdam",
    "Rijnmond",
    "Haaglanden",
    "Brabant",
    "Limburg",
];
const SECTORS: [&str; 8] =
    ["Techniek", "Zorg", "Horeca", "Handel", "Logistiek", "ICT", "Bouw", "Voedsel"];
const QUALIFICATIONS: usize = 30;
const COMPANIES: usize = 4_000;
const OFFERS: usize = 6_000;
/// Events a placement walked to its rating records (a support-need student's
/// has a warm handover too); a placement reserves its offer's slot as well.
const PER_PLACEMENT: usize = 14;
/// Placements progress side by side in blocks of this many, step by step.
const BLOCK: usize = 1_000;
/// Rows per INSERT.
const CHUNK: usize = 10_000;

fn crebo(n: usize) -> anyhow::Result<Crebo> {
    Ok(Crebo::parse(&format!("{:05}", 25_001 + n % QUALIFICATIONS))?)
}

fn school(n: usize) -> anyhow::Result<SchoolId> {
    Ok(SchoolId::parse(&format!("B{:03}", n % SCHOOLS))?)
}

/// Events waiting to be written, in log order.
#[derive(Default)]
struct Log {
    types: Vec<&'static str>,
    ids: Vec<String>,
    sequences: Vec<i64>,
    names: Vec<String>,
    payloads: Vec<Value>,
    next: HashMap<String, i64>,
    written: usize,
}

impl Log {
    fn push<E: cqrs_es::DomainEvent>(
        &mut self,
        aggregate: &'static str,
        id: &str,
        event: E,
    ) -> anyhow::Result<()> {
        let sequence = self.next.entry(id.to_owned()).or_insert(0);
        *sequence += 1;
        self.types.push(aggregate);
        self.ids.push(id.to_owned());
        self.sequences.push(*sequence);
        self.names.push(event.event_type());
        self.payloads.push(serde_json::to_value(event)?);
        Ok(())
    }

    async fn flush(&mut self, env: &Env) -> anyhow::Result<()> {
        while !self.types.is_empty() {
            let take = self.types.len().min(CHUNK);
            let types: Vec<&str> = self.types.drain(..take).collect();
            let ids: Vec<String> = self.ids.drain(..take).collect();
            let sequences: Vec<i64> = self.sequences.drain(..take).collect();
            let names: Vec<String> = self.names.drain(..take).collect();
            let payloads: Vec<Value> = self.payloads.drain(..take).collect();
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                        event_version, payload, metadata)
                 SELECT t, i, s, n, '1', p, '{}'::jsonb
                   FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::jsonb[])
                        AS u(t, i, s, n, p)",
            )
            .bind(&types)
            .bind(&ids)
            .bind(&sequences)
            .bind(&names)
            .bind(&payloads)
            .execute(&env.pool)
            .await
            .context("writing events")?;
            self.written += take;
        }
        Ok(())
    }
}

/// One seeded student: its key, and whether it has a support need.
struct Seeded {
    school: SchoolId,
    number: StudentNumber,
    level: Level,
    pathway: Pathway,
    support_need: bool,
}

/// Writes about `target` events of a school year; returns how many.
async fn seed(env: &Env, target: usize) -> anyhow::Result<usize> {
    let today = Utc::now().date_naive();
    let mut log = Log::default();
    // Companies: registered, recognised for one qualification; one in ten
    // opts out of matching, one in a hundred is suspended.
    for c in 0..COMPANIES {
        let id = format!("bench-i{c:05}");
        log.push(
            "company",
            &id,
            CompanyEvent::CompanyRegistered(CompanyRegistered {
                company_id: CompanyId::parse(&id)?,
                name: CompanyName::parse(&format!("Leerbedrijf {c}"))?,
                sector: Sector::parse(SECTORS[c % SECTORS.len()])?,
                region: Region::parse(REGIONS[c % REGIONS.len()])?,
                location: None,
            }),
        )?;
        log.push(
            "company",
            &id,
            CompanyEvent::RecognitionGranted(RecognitionGranted {
                qualification: crebo(c)?,
                granted_on: today,
                valid_until: today + Days::new(4 * 365),
            }),
        )?;
        if c % 10 == 3 {
            let opted_out = MatchingParticipationSet { participates: false };
            log.push("company", &id, CompanyEvent::MatchingParticipationSet(opted_out))?;
        }
        if c % 100 == 7 {
            log.push(
                "company",
                &id,
                CompanyEvent::RecognitionSuspended(RecognitionSuspended {
                    reason: Reason::parse("Onderzoek naar signalen")?,
                    investigation_id: None,
                }),
            )?;
        }
    }
    // Offers: each of a company with its qualification and region.
    let period = Period { start: today + Days::new(30), end: today + Days::new(150) };
    let mut offers = Vec::with_capacity(OFFERS);
    for o in 0..OFFERS {
        let c = o % COMPANIES;
        let offer_id = Uuid::from_u128(0xbe7c_0000_0000_0000_0000_0000_0000_0000 | o as u128);
        log.push(
            "offer",
            &offer_id.to_string(),
            OfferEvent::OfferPublished(OfferPublished {
                offer_id,
                company_id: CompanyId::parse(&format!("bench-i{c:05}"))?,
                qualification: crebo(c)?,
                levels: vec![Level::parse(2)?, Level::parse(3)?],
                slots: 12,
                period,
                hours_per_week: 32,
                region: Region::parse(REGIONS[c % REGIONS.len()])?,
                location: None,
                learning_opportunities: vec![LearningOpportunity::parse("werken in een team")?],
                internship_allowance: Some(Allowance {
                    amount: Cents(30_000),
                    per: AllowancePer::Month,
                }),
                open_for_matching: true,
                published_on: today,
            }),
        )?;
        offers.push((offer_id, c));
    }
    log.flush(env).await?;

    // Students: about as many as placements plus a fifth still seeking.
    let fixed = log.written + OFFERS; // plus one slot reservation per placement, below
    let placements = target.saturating_sub(fixed) * 5 / (5 * PER_PLACEMENT + 11);
    let students = placements + placements / 4;
    eprintln!(
        "  {COMPANIES} companies, {OFFERS} offers, {students} students, {placements} placements ..."
    );
    let mut seeded = Vec::with_capacity(students);
    for s in 0..students {
        let school = school(s)?;
        let number = StudentNumber::parse(&format!("st{s:06}"))?;
        let key = student_key(&school, &number);
        let pathway = if s % 5 == 4 { Pathway::Bbl } else { Pathway::Bol };
        let level = Level::parse(1 + (s % 4) as i64)?;
        let born = today - Days::new(365 * (16 + (s % 6) as u64) + 40);
        log.push(
            "student",
            &key,
            StudentEvent::StudentEnrolled(StudentEnrolled {
                school: school.clone(),
                student_id: number.clone(),
                enrolment: Enrolment {
                    qualification: crebo(s)?,
                    level,
                    pathway,
                    cohort: 2026,
                    first_year: s % 2 == 0,
                    date_of_birth: born,
                },
            }),
        )?;
        log.push(
            "student",
            &key,
            StudentEvent::LearningWishRecorded(LearningWishRecorded {
                learning_goals: vec![LearningGoal::parse("zelfstandig werken")?],
                competences: vec![Competence::parse("samenwerken")?],
                sectors: vec![Sector::parse(SECTORS[s % SECTORS.len()])?],
                region: Region::parse(REGIONS[(s / 7) % REGIONS.len()])?,
                max_travel_km: None,
                travel_from: None,
            }),
        )?;
        let support_need = s % 10 == 1;
        if support_need {
            let cipher = env.state.vault.cipher_for(&key).await?;
            let need = Some("extra begeleiding bij de start".to_owned());
            let sealed = SupportNeedRecorded { support_need: cipher.seal(&need) };
            log.push("student", &key, StudentEvent::SupportNeedRecorded(sealed))?;
        }
        seeded.push(Seeded { school, number, level, pathway, support_need });
        if log.types.len() >= CHUNK {
            log.flush(env).await?;
        }
    }
    log.flush(env).await?;

    // Placements, block by block, each block step by step.
    for block in (0..placements).step_by(BLOCK) {
        let members: Vec<usize> = (block..(block + BLOCK).min(placements)).collect();
        for step in 0..PER_PLACEMENT {
            for &p in &members {
                placement_step(&mut log, &seeded[p], p, step, &offers, period)?;
            }
        }
        log.flush(env).await?;
    }

    // Reports: one for every twentieth placed student.
    for (r, p) in (0..placements).step_by(20).enumerate() {
        let student = &seeded[p];
        let key = student_key(&student.school, &student.number);
        let cipher = env.state.vault.cipher_for(&key).await?;
        let report_id = Uuid::from_u128(0x4e70_0000_0000_0000_0000_0000_0000_0000 | r as u128);
        let id = report_id.to_string();
        let discrimination = r % 3 != 0;
        let grounds: Vec<Ground> = if discrimination {
            vec![[Ground::Origin, Ground::Religion, Ground::Sex, Ground::Age][r % 4]]
        } else {
            Vec::new()
        };
        let filed_on = today - Days::new((r % 200) as u64);
        log.push(
            "report",
            &id,
            ReportEvent::ReportFiled(ReportFiled {
                school: student.school.clone(),
                student_id: student.number.clone(),
                company_id: CompanyId::parse(&format!(
                    "bench-i{:05}",
                    offers[p * 7_919 % OFFERS].1
                ))?,
                placement_id: None,
                kind: if discrimination { ReportKind::Discrimination } else { ReportKind::Misuse },
                description: cipher.seal(&"Wat er gebeurde, in de woorden van de student."),
                grounds: cipher.seal(&grounds),
                wants_replacement_placement: false,
                consent_to_forward: false,
                filed_on,
            }),
        )?;
        log.push(
            "report",
            &id,
            ReportEvent::ReportAcknowledged(ReportAcknowledged { acknowledged_on: filed_on }),
        )?;
        if r % 5 != 0 {
            use stagepact_domain::report::ConversationForm;
            log.push(
                "report",
                &id,
                ReportEvent::ReportConversationRecorded(ReportConversationRecorded {
                    form: ConversationForm::SchoolAndCompany,
                    held_on: filed_on,
                    safe_for_student: false,
                }),
            )?;
        }
    }
    log.flush(env).await?;
    Ok(log.written)
}

/// Step `step` of placement `p`: propose (and reserve the slot), accept,
/// draft, three signatures, a warm handover for a student with a support
/// need, start, three contact moments, complete, rate. One in ten stops
/// after the draft, one in ten after the start.
fn placement_step(
    log: &mut Log,
    student: &Seeded,
    p: usize,
    step: usize,
    offers: &[(Uuid, usize)],
    period: Period,
) -> anyhow::Result<()> {
    let placement_id = Uuid::from_u128(0x9a1c_0000_0000_0000_0000_0000_0000_0000 | p as u128);
    let id = placement_id.to_string();
    // Offers spread over students independently of their school.
    let (offer_id, company) = offers[p * 7_919 % offers.len()];
    let day = period.start;
    let stops_at = match p % 10 {
        0 => 6,
        1 => 9,
        _ => PER_PLACEMENT,
    };
    if step >= stops_at {
        return Ok(());
    }
    let event = match step {
        0 => {
            log.push(
                "offer",
                &offer_id.to_string(),
                stagepact_domain::offer::OfferEvent::OfferSlotReserved(OfferSlotReserved {
                    placement_id,
                }),
            )?;
            PlacementEvent::MatchProposed(MatchProposed {
                placement_id,
                student: PlacementStudent {
                    school: student.school.clone(),
                    student_id: student.number.clone(),
                    level: student.level,
                    pathway: student.pathway,
                },
                company_id: CompanyId::parse(&format!("bench-i{company:05}"))?,
                offer_id,
                qualification: crebo(company)?,
                period,
                explanation: None,
                replaces: None,
                matching_round_id: p.is_multiple_of(3).then(|| Uuid::from_u128(42)),
            })
        }
        1 => PlacementEvent::MatchAccepted(MatchAccepted { accepted_on: day }),
        2 => {
            let bbl = student.pathway == Pathway::Bbl;
            let allowance = (!bbl && !p.is_multiple_of(4)).then(|| Allowance {
                amount: Cents(
                    20_000 + 2_500 * i64::from(student.level.get()) + (p % 7) as i64 * 500,
                ),
                per: if p.is_multiple_of(2) { AllowancePer::Month } else { AllowancePer::Week },
            });
            PlacementEvent::AgreementDrafted(AgreementDrafted {
                agreement_version: 1,
                terms: AgreementTerms {
                    period,
                    hours_per_week: 32,
                    learning_goals: vec![LearningGoal::parse("zelfstandig werken")?],
                    school_contact: ContactRef::parse("BPV-1")?,
                    company_trainer: ContactRef::parse("PO-1")?,
                    compensation: Compensation {
                        costs: vec![Cost { kind: CostKind::Travel, amount: Cents(4_000) }],
                        expense_allowance: Cents(4_000),
                        internship_allowance: allowance,
                        hourly_wage: bbl.then_some(Cents(1_200)),
                    },
                    contact_plan: Vec::new(),
                },
                required_signatures: vec![
                    Signatory::Student,
                    Signatory::School,
                    Signatory::Company,
                ],
                // C3 holds for every agreement the domain records.
                minimum_hourly_wage: bbl.then_some(Cents(1_000)),
            })
        }
        3..=5 => PlacementEvent::AgreementSigned(AgreementSigned {
            party: [Signatory::Student, Signatory::School, Signatory::Company][step - 3],
            agreement_version: 1,
            signed_on: day,
        }),
        6 if student.support_need => {
            PlacementEvent::WarmHandoverHeld(WarmHandoverHeld { held_on: day })
        }
        6 => return Ok(()),
        7 => PlacementEvent::PlacementStarted(PlacementStarted { started_on: day }),
        8..=10 => {
            let (kind, mode) = [
                (ContactKind::Start, ContactMode::OnSite),
                (ContactKind::Midway, ContactMode::Video),
                (ContactKind::End, ContactMode::Phone),
            ][step - 8];
            PlacementEvent::ContactMomentHeld(ContactMomentHeld {
                moment_id: Uuid::from_u128((p as u128) << 8 | step as u128),
                kind,
                mode,
                held_on: day,
                participants: vec![Participant::Student, Participant::School, Participant::Company],
                recorded_by: Participant::School,
            })
        }
        11 => PlacementEvent::PlacementCompleted(PlacementCompleted { completed_on: period.end }),
        _ => PlacementEvent::GuidanceRated(GuidanceRated {
            school_score: 1 + (p % 5) as u8,
            company_score: 1 + ((p / 5) % 5) as u8,
        }),
    };
    log.push("placement", &id, event)
}

/// A random scope for one `getIndicators` request.
fn scope(n: u64) -> String {
    let year = stagepact_domain::monitoring::SchoolYear::of(Utc::now().date_naive());
    let pick = |k: u64, len: usize| (k as usize) % len;
    let region = REGIONS[pick(n / 7, REGIONS.len())];
    let sector = SECTORS[pick(n / 11, SECTORS.len())];
    let school = format!("B{:03}", pick(n / 13, SCHOOLS));
    let qualification = format!("{:05}", 25_001 + pick(n / 17, QUALIFICATIONS));
    match n % 8 {
        0 => String::new(),
        1 => format!("school_year={year}"),
        2 => format!("school={school}"),
        3 => format!("region={region}"),
        4 => format!("qualification={qualification}"),
        5 => format!("sector={sector}"),
        6 => format!("school_year={year}&region={region}"),
        _ => format!("school={school}&qualification={qualification}"),
    }
}

/// Runs the scenario: seed, catch up, rebuild, read.
pub async fn run(options: &Options, header: &Header, env: &Env) -> anyhow::Result<(String, Value)> {
    eprintln!("seeding about {} events ...", options.events);
    let seeding = Instant::now();
    let written = seed(env, options.events).await?;
    let seeded_in = seeding.elapsed();
    let stamping = Instant::now();
    let head = crate::seed::await_stamped(env, Duration::from_secs(1800)).await?;
    let stamped_in = stamping.elapsed();
    eprintln!(
        "  {written} events written in {seeded_in:.1?}, stamped in {stamped_in:.1?}; projections catching up ..."
    );
    let catching_up = Instant::now();
    for name in env.state.projections.names() {
        if !env.state.projections.await_position(name, head, Duration::from_secs(3600)).await? {
            anyhow::bail!("{name} did not catch up with {head}");
        }
    }
    let caught_up_in = catching_up.elapsed();
    sqlx::query("ANALYZE").execute(&env.pool).await?;
    sqlx::query("CHECKPOINT").execute(&env.pool).await?;

    eprintln!("rebuilding the indicators from position 0 ...");
    let cpu = CpuSample::now();
    let rebuilding = Instant::now();
    let reached = env.state.projections.rebuild(indicators::NAME).await?;
    let rebuild = rebuilding.elapsed();
    let rebuild_cpu = cpu.until(CpuSample::now());
    anyhow::ensure!(reached >= head, "the rebuild stopped at {reached} of {head}");
    let indicator_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events
          WHERE aggregate_type IN ('company', 'student', 'placement', 'report', 'investigation')",
    )
    .fetch_one(&env.pool)
    .await?;
    sqlx::query("ANALYZE").execute(&env.pool).await?;

    eprintln!(
        "getIndicators: {} monitors for {} s (after a 2 s warm-up) ...",
        options.readers, options.read_seconds
    );
    let token = env.mint(Role::Monitor, None, None)?;
    if options.statement_stats {
        crate::dbstats::reset_statements(&env.pool).await?;
    }
    let reads = read(
        env,
        &token,
        options.readers,
        Duration::from_secs(2),
        Duration::from_secs(options.read_seconds),
    )
    .await?;

    let statements = if options.statement_stats {
        crate::dbstats::top_statements(&env.pool, crate::dbstats::TOP_STATEMENTS).await?
    } else {
        Vec::new()
    };
    let pass = |ok: bool| if ok { "met" } else { "MISSED" };
    let rebuild_seconds = rebuild.as_secs_f64();
    let p99 = reads.latency.p99;
    let mut r = String::new();
    for text in &header.lines {
        r.push_str(text);
        r.push('\n');
    }
    let rate = indicator_events as f64 / rebuild_seconds;
    r.push_str(&format!(
        "log: {head} events ({written} seeded in {seeded_in:.1?}; stamped in {stamped_in:.1?}; every projection caught up in {caught_up_in:.1?})\n\
         -- rebuild of the indicators (events of companies, students, placements, reports: {indicator_events}) --\n\
         \x20 {rebuild_seconds:.1} s = {rate:.0} events/s (target < {TARGET_REBUILD_SECONDS} s: {}); {}\n\
         -- getIndicators, {} monitors back to back, random scopes --\n\
         \x20 {} requests in {:.1} s = {:.1}/s, errors {}; latency {}\n\
         \x20 p99 {p99:.1} ms (target < {TARGET_P99_MS} ms: {})\n",
        pass(rebuild_seconds < TARGET_REBUILD_SECONDS),
        rebuild_cpu.line(u64::try_from(indicator_events).unwrap_or(0), "event"),
        options.readers,
        reads.requests,
        reads.elapsed.as_secs_f64(),
        reads.requests as f64 / reads.elapsed.as_secs_f64(),
        reads.errors,
        reads.latency.line(),
        pass(p99 < TARGET_P99_MS),
    ));
    if !statements.is_empty() {
        r.push_str("  top statements of the reads (pg_stat_statements; per unit = per request):\n");
        for text in crate::dbstats::statements_lines(&statements, reads.requests) {
            r.push_str(&text);
            r.push('\n');
        }
    }
    let figures = header.figures(json!({
        "scenario": "indicators",
        "events": head,
        "indicator_events": indicator_events,
        "seeded_seconds": tenths(seeded_in.as_secs_f64()),
        "stamped_seconds": tenths(stamped_in.as_secs_f64()),
        "caught_up_seconds": tenths(caught_up_in.as_secs_f64()),
        "rebuild_seconds": round(rebuild_seconds),
        "rebuild_events_per_second": rate.round(),
        "rebuild_cpu": rebuild_cpu.to_json(u64::try_from(indicator_events).unwrap_or(0)),
        "rebuild_target_met": rebuild_seconds < TARGET_REBUILD_SECONDS,
        "readers": options.readers,
        "requests": reads.requests,
        "errors": reads.errors,
        "latency": reads.latency.to_json(),
        "p99_target_met": p99 < TARGET_P99_MS,
    }));
    Ok((r, figures))
}

/// What the readers measured.
struct Reads {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latency: Summary,
}

async fn read(
    env: &Env,
    token: &str,
    readers: usize,
    warm_up: Duration,
    measure: Duration,
) -> anyhow::Result<Reads> {
    let started = Instant::now();
    let measure_from = started + warm_up;
    let until = measure_from + measure;
    let mut tasks = Vec::new();
    for reader in 0..readers {
        let (http, base, token) = (env.http.clone(), env.base.clone(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0u64;
            let mut n = reader as u64 * 7_919;
            while Instant::now() < until {
                n += 1;
                let url = format!("{base}/v1/indicators?{}", scope(n));
                let sent = Instant::now();
                let ok = match http.get(url).bearer_auth(&token).send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if sent >= measure_from {
                    if ok {
                        samples.push(sent.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        errors += 1;
                    }
                }
            }
            (samples, errors)
        }));
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut own, own_errors) = task.await.context("a reader failed")?;
        samples.append(&mut own);
        errors += own_errors;
    }
    Ok(Reads {
        requests: samples.len() as u64 + errors,
        errors,
        elapsed: measure,
        latency: Summary::of(&samples),
    })
}
