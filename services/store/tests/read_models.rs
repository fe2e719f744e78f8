//! The student, offer and placement read models against real PostgreSQL: they
//! fold the log as the aggregates do, their filters match the domain's rules
//! (S1, S2, "needs attention"), and a rebuild gives the same rows.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use cqrs_es::Aggregate;
use stagepact_domain::Visibility;
use stagepact_domain::company::{
    Company, CompanyCommand, CompanyRegistered, RecognitionGranted, RecognitionReinstated,
    RecognitionSuspended,
};
use stagepact_domain::offer::{Offer, OfferCommand, OfferPublished, OfferWithdrawn};
use stagepact_domain::placement::{
    AgreementTerms, Compensation, MatchWithdrawn, OfferFacts, Participant, Placement,
    PlacementCommand, PlacementStatus, PlacementStudent, Signatory, StudentFacts,
};
use stagepact_domain::student::{
    Enrolment, LearningWishRecorded, Student, StudentCommand, StudentEnrolled,
    StudentEnrolmentUpdated, StudentEvent, StudentRecord, student_key,
};
use stagepact_domain::values::{
    Cents, CompanyId, CompanyName, ContactRef, Crebo, LearningGoal, Level, Pathway, Period, Reason,
    Region, SchoolId, Sector, StudentNumber,
};
use stagepact_domain::wage::WageTable;
use stagepact_store::company_registry::{self, CompanyRegistry};
use stagepact_store::offers::{self, OfferBoard, OfferFilter};
use stagepact_store::placements::{self, PlacementBoard, PlacementFilter};
use stagepact_store::students::{self, StudentDirectory};
use stagepact_store::testing::fresh_pool;
use stagepact_store::{CommandBus, Committed, EventLog, Projections};
use uuid::Uuid;

/// A bus, the log it appends to, and every read model of this file.
struct World {
    bus: CommandBus,
    log: Arc<EventLog>,
    projections: Arc<Projections>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

async fn world() -> World {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool).await.expect("log");
    let workers = log.spawn();
    let projections = Projections::new(
        Arc::clone(&log),
        vec![
            Arc::new(CompanyRegistry),
            Arc::new(StudentDirectory),
            Arc::new(OfferBoard),
            Arc::new(PlacementBoard::default()),
        ],
    );
    World { bus: CommandBus::new(Arc::clone(&log)), log, projections, workers }
}

impl World {
    async fn run<A>(&self, id: &str, command: A::Command) -> Committed
    where
        A: Aggregate<Services = ()> + Clone + Visibility + 'static,
        A::Command: Clone,
    {
        let committed = self
            .bus
            .execute::<A>(id, command, None, HashMap::new())
            .await
            .unwrap_or_else(|error| panic!("{} {id}: {error}", A::TYPE));
        assert!(committed.position.is_some(), "{} {id} got no position", A::TYPE);
        committed
    }

    async fn catch_up(&self) {
        for name in self.projections.names() {
            self.projections.catch_up(name).await.expect("catch up");
        }
    }

    /// Rebuilds `projection` and checks that `table` holds the same rows after.
    async fn assert_rebuild_keeps(&self, projection: &str, table: &str, key: &str) {
        let rows = || async {
            let rows: Vec<serde_json::Value> =
                sqlx::query_scalar(&format!("SELECT to_jsonb(t) FROM {table} t ORDER BY {key}"))
                    .fetch_all(self.log.pool())
                    .await
                    .expect("rows");
            rows
        };
        let before = rows().await;
        assert!(!before.is_empty(), "{table} is empty");
        self.projections.rebuild(projection).await.expect("rebuild");
        assert_eq!(rows().await, before, "{table} differs after a rebuild");
    }
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

fn school(code: &str) -> SchoolId {
    SchoolId::parse(code).expect("valid")
}

fn number(raw: &str) -> StudentNumber {
    StudentNumber::parse(raw).expect("valid")
}

fn crebo(raw: &str) -> Crebo {
    Crebo::parse(raw).expect("valid")
}

fn level(raw: i64) -> Level {
    Level::parse(raw).expect("valid")
}

fn region(raw: &str) -> Region {
    Region::parse(raw).expect("valid")
}

fn reason(raw: &str) -> Reason {
    Reason::parse(raw).expect("valid")
}

fn company(raw: &str) -> CompanyId {
    CompanyId::parse(raw).expect("valid")
}

fn period() -> Period {
    Period::parse(day(2027, 2, 1), day(2027, 6, 30)).expect("valid")
}

const COOK: &str = "25180";
const BAKER: &str = "25181";

fn enrolment(level_number: i64, cohort: u16) -> Enrolment {
    Enrolment {
        qualification: crebo(COOK),
        level: level(level_number),
        pathway: Pathway::Bol,
        cohort,
        first_year: true,
        date_of_birth: day(2008, 3, 1),
    }
}

#[tokio::test]
async fn a_students_record_is_the_aggregates_fold() {
    let world = world().await;
    let enrolled = StudentEnrolled {
        school: school("25XX"),
        student_id: number("s-1"),
        enrolment: enrolment(2, 2026),
    };
    let key = student_key(&enrolled.school, &enrolled.student_id);
    world.run::<Student>(&key, StudentCommand::Enroll(enrolled.clone())).await;
    // The same number at another school is another student.
    let elsewhere = StudentEnrolled {
        school: school("26YY"),
        student_id: number("s-1"),
        enrolment: enrolment(4, 2025),
    };
    world.run::<Student>("26YY:s-1", StudentCommand::Enroll(elsewhere.clone())).await;
    // One batch for the enrolments, then one that starts from the stored rows.
    world.catch_up().await;

    let wish = LearningWishRecorded {
        learning_goals: vec![LearningGoal::parse("plating").expect("valid")],
        competences: vec![],
        sectors: vec![Sector::parse("hospitality").expect("valid")],
        region: region("Utrecht"),
        max_travel_km: Some(25),
        travel_from: None,
    };
    world.run::<Student>(&key, StudentCommand::RecordLearningWish(wish.clone())).await;
    let changed = StudentEnrolled { enrolment: enrolment(3, 2026), ..enrolled.clone() };
    let last = world.run::<Student>(&key, StudentCommand::Sync(changed.clone())).await;
    world.catch_up().await;

    let mut expected = StudentRecord::enrolled(&enrolled);
    expected.apply(&StudentEvent::LearningWishRecorded(wish));
    expected.apply(&StudentEvent::StudentEnrolmentUpdated(StudentEnrolmentUpdated {
        enrolment: changed.enrolment,
    }));
    let entry = students::get(world.log.pool(), "25XX", "s-1").await.expect("get").expect("found");
    assert_eq!(entry.record, expected);
    assert_eq!(entry.version, 3);
    assert_eq!(Some(entry.last_position), last.position);
    let other = students::get(world.log.pool(), "26YY", "s-1").await.expect("get").expect("found");
    assert_eq!(other.record, StudentRecord::enrolled(&elsewhere));
    assert_eq!(other.version, 1);
    assert!(students::get(world.log.pool(), "25XX", "s-2").await.expect("get").is_none());

    world.assert_rebuild_keeps(students::NAME, "students", "student_key").await;
}

async fn register(world: &World, id: &str) {
    let registered = CompanyRegistered {
        company_id: company(id),
        name: CompanyName::parse("De Keuken").expect("valid"),
        sector: Sector::parse("hospitality").expect("valid"),
        region: region("Utrecht"),
        location: None,
    };
    world.run::<Company>(id, CompanyCommand::RegisterCompany(registered)).await;
    for qualification in [COOK, BAKER] {
        let granted = RecognitionGranted {
            qualification: crebo(qualification),
            granted_on: day(2026, 1, 1),
            valid_until: day(2029, 12, 31),
        };
        world.run::<Company>(id, CompanyCommand::GrantRecognition(granted)).await;
    }
}

fn published(
    offer_id: Uuid,
    company_id: &str,
    qualification: &str,
    in_region: &str,
    levels: &[i64],
    slots: u32,
) -> OfferCommand {
    OfferCommand::Publish {
        offer: OfferPublished {
            offer_id,
            company_id: company(company_id),
            qualification: crebo(qualification),
            levels: levels.iter().copied().map(level).collect(),
            slots,
            period: period(),
            hours_per_week: 32,
            region: region(in_region),
            location: None,
            learning_opportunities: vec![],
            internship_allowance: None,
            open_for_matching: true,
            published_on: day(2026, 11, 1),
        },
        company_may_host: true,
    }
}

fn ids_of(entries: &[offers::OfferEntry]) -> Vec<Uuid> {
    entries.iter().map(|e| e.record.offer.offer_id).collect()
}

#[tokio::test]
async fn an_offer_is_open_only_while_current_free_and_its_company_active() {
    let world = world().await;
    let pool = world.log.pool();
    register(&world, "c-active").await;
    register(&world, "c-suspended").await;
    let suspended =
        RecognitionSuspended { reason: reason("investigation"), investigation_id: None };
    world.run::<Company>("c-suspended", CompanyCommand::SuspendRecognition(suspended)).await;

    let [open, withdrawn, full, suspended, unregistered, baker] =
        [1, 2, 3, 4, 5, 6].map(Uuid::from_u128);
    let publish = [
        (open, "c-active", COOK, "Utrecht", &[2, 3][..], 2),
        (withdrawn, "c-active", COOK, "Utrecht", &[2, 3][..], 2),
        (full, "c-active", COOK, "Utrecht", &[2, 3][..], 1),
        (suspended, "c-suspended", COOK, "Utrecht", &[2, 3][..], 2),
        (unregistered, "c-ghost", COOK, "Utrecht", &[2, 3][..], 2),
        (baker, "c-active", BAKER, "Noord", &[4][..], 3),
    ];
    for (id, company_id, qualification, in_region, levels, slots) in publish {
        let command = published(id, company_id, qualification, in_region, levels, slots);
        world.run::<Offer>(&id.to_string(), command).await;
    }
    world
        .run::<Offer>(
            &withdrawn.to_string(),
            OfferCommand::Withdraw(OfferWithdrawn { reason: None }),
        )
        .await;
    let placement = Uuid::from_u128(99);
    let today = day(2027, 1, 15);
    world
        .run::<Offer>(
            &full.to_string(),
            OfferCommand::ReserveSlot { placement_id: placement, today },
        )
        .await;
    world.catch_up().await;

    let filter = |open: Option<bool>, today: NaiveDate| OfferFilter {
        qualification: None,
        region: None,
        level: None,
        open,
        company_id: None,
        today,
    };
    let all = offers::list(pool, &filter(None, today), None, 100).await.expect("list");
    assert_eq!(ids_of(&all), vec![open, withdrawn, full, suspended, unregistered, baker]);
    let listed = |filter: OfferFilter| async move {
        ids_of(&offers::list(pool, &filter, None, 100).await.expect("list"))
    };
    // S2: withdrawn and full offers are closed; S1: so are a suspended or
    // unknown company's.
    assert_eq!(listed(filter(Some(true), today)).await, vec![open, baker]);
    assert_eq!(
        listed(filter(Some(false), today)).await,
        vec![withdrawn, full, suspended, unregistered]
    );
    let entry = offers::get(pool, full, today).await.expect("get").expect("found");
    assert!(!entry.open);
    assert_eq!(entry.record.free_slots(), 0);
    assert!(entry.record.reserved.contains(&placement));
    assert_eq!(entry.version, 2);
    // S2 agrees with the domain for the active company's offers.
    for entry in all.iter().filter(|e| e.record.offer.company_id.as_str() == "c-active") {
        assert_eq!(entry.open, entry.record.is_open(today), "{}", entry.record.offer.offer_id);
    }
    // A stale offer is not listed as open (S2).
    let after_the_end = day(2027, 7, 1);
    assert!(listed(filter(Some(true), after_the_end)).await.is_empty());
    let stale = offers::get(pool, open, after_the_end).await.expect("get").expect("found");
    assert!(!stale.open);
    assert!(offers::get(pool, Uuid::from_u128(7), today).await.expect("get").is_none());

    // The other filters, and paging.
    let by =
        |qualification: Option<&str>, in_region: Option<&str>, level: Option<i16>| OfferFilter {
            qualification: qualification.map(str::to_owned),
            region: in_region.map(str::to_owned),
            level,
            ..filter(None, today)
        };
    assert_eq!(listed(by(Some(BAKER), None, None)).await, vec![baker]);
    assert_eq!(listed(by(None, Some("Noord"), None)).await, vec![baker]);
    assert_eq!(listed(by(None, None, Some(4))).await, vec![baker]);
    assert_eq!(listed(by(Some(COOK), Some("Utrecht"), Some(3))).await.len(), 5);
    assert!(listed(by(Some(BAKER), None, Some(2))).await.is_empty());
    let of_suspended =
        OfferFilter { company_id: Some("c-suspended".to_owned()), ..filter(None, today) };
    assert_eq!(listed(of_suspended).await, vec![suspended]);
    let page = offers::list(pool, &filter(None, today), Some(withdrawn), 2).await.expect("list");
    assert_eq!(ids_of(&page), vec![full, suspended]);

    // Reinstating the company and releasing the slot open both offers again.
    let reinstated = RecognitionReinstated { reason: reason("cleared") };
    world.run::<Company>("c-suspended", CompanyCommand::ReinstateRecognition(reinstated)).await;
    world
        .run::<Offer>(&full.to_string(), OfferCommand::ReleaseSlot { placement_id: placement })
        .await;
    world.catch_up().await;
    let registry = company_registry::get(pool, "c-suspended").await.expect("get").expect("found");
    assert_eq!(registry.record.status().as_str(), "active");
    assert_eq!(listed(filter(Some(true), today)).await, vec![open, full, suspended, baker]);
    let released = offers::get(pool, full, today).await.expect("get").expect("found");
    assert_eq!((released.version, released.record.free_slots()), (3, 1));

    world.assert_rebuild_keeps(offers::NAME, "offers", "offer_id").await;
}

fn student(school_code: &str, student_id: &str) -> StudentFacts {
    StudentFacts {
        student: PlacementStudent {
            school: school(school_code),
            student_id: number(student_id),
            level: level(2),
            pathway: Pathway::Bol,
        },
        qualification: crebo(COOK),
    }
}

fn matched(id: Uuid, school_code: &str, student_id: &str, company_id: &str) -> PlacementCommand {
    PlacementCommand::ProposeMatch {
        placement_id: id,
        student: student(school_code, student_id),
        offer: OfferFacts {
            offer_id: Uuid::from_u128(1_000),
            company_id: company(company_id),
            qualification: crebo(COOK),
            levels: vec![level(2)],
            period: period(),
        },
        company_may_host: true,
        explanation: None,
        replaces: None,
        matching_round_id: None,
    }
}

fn draft() -> PlacementCommand {
    PlacementCommand::DraftAgreement {
        terms: AgreementTerms {
            period: period(),
            hours_per_week: 32,
            learning_goals: vec![],
            school_contact: ContactRef::parse("BPV-017").expect("valid"),
            company_trainer: ContactRef::parse("PO-3").expect("valid"),
            compensation: Compensation {
                costs: vec![],
                expense_allowance: Cents(0),
                internship_allowance: None,
                hourly_wage: None,
            },
            contact_plan: vec![],
        },
        // Of age at the start: student, school and company sign (G1).
        date_of_birth: day(2000, 1, 1),
        pathway: Pathway::Bol,
        wages: Arc::new(WageTable::embedded()),
    }
}

fn placement_ids(entries: &[placements::PlacementEntry]) -> Vec<Uuid> {
    entries.iter().map(|e| e.record.placement_id).collect()
}

#[tokio::test]
async fn placements_are_listed_by_party_status_and_attention() {
    let world = world().await;
    let pool = world.log.pool();
    let [proposed, agreed, active, withdrawn] = [1, 2, 3, 4].map(Uuid::from_u128);
    let signed_on = day(2027, 1, 20);
    let run = |id: Uuid, command: PlacementCommand| {
        let world = &world;
        async move { world.run::<Placement>(&id.to_string(), command).await }
    };

    run(proposed, matched(proposed, "25XX", "s-1", "c-1")).await;

    run(agreed, matched(agreed, "25XX", "s-2", "c-2")).await;
    run(agreed, PlacementCommand::Accept { today: day(2027, 1, 10) }).await;
    run(agreed, draft()).await;

    run(active, matched(active, "26YY", "s-1", "c-1")).await;
    run(active, PlacementCommand::Accept { today: day(2027, 1, 10) }).await;
    run(active, draft()).await;
    for party in [Signatory::Student, Signatory::School, Signatory::Company] {
        run(active, PlacementCommand::Sign { party, today: signed_on }).await;
    }
    let started = run(
        active,
        PlacementCommand::Start {
            company_may_host: true,
            today: day(2027, 2, 1),
            date_of_birth: day(2000, 1, 1),
        },
    )
    .await;

    let self_found = PlacementCommand::ProposeSelfFound {
        placement_id: withdrawn,
        student: student("25XX", "s-1"),
        company_id: company("c-2"),
        qualification: crebo(COOK),
        company_may_host: true,
        note: None,
        proposed_by: Participant::Student,
        replaces: None,
    };
    run(withdrawn, self_found).await;
    run(withdrawn, PlacementCommand::Withdraw(MatchWithdrawn { reason: reason("moved") })).await;
    world.catch_up().await;

    // The start contact moment is due at the start plus the grace days (G2).
    let due = day(2027, 2, 15);
    let filter = |today: NaiveDate| PlacementFilter {
        school: None,
        company_id: None,
        student_id: None,
        status: None,
        needs_attention: None,
        today,
    };
    let listed = |filter: PlacementFilter| async move {
        placement_ids(&placements::list(pool, &filter, None, 100).await.expect("list"))
    };
    let of_school = |code: &str| PlacementFilter { school: Some(code.to_owned()), ..filter(due) };
    assert_eq!(listed(of_school("25XX")).await, vec![proposed, agreed, withdrawn]);
    assert_eq!(listed(of_school("26YY")).await, vec![active]);
    let of_company = PlacementFilter { company_id: Some("c-1".to_owned()), ..filter(due) };
    assert_eq!(listed(of_company).await, vec![proposed, active]);
    let of_student = PlacementFilter { student_id: Some("s-1".to_owned()), ..of_school("25XX") };
    assert_eq!(listed(of_student).await, vec![proposed, withdrawn]);
    let with_status = |status: PlacementStatus| PlacementFilter {
        status: Some(status.as_str().to_owned()),
        ..filter(due)
    };
    assert_eq!(listed(with_status(PlacementStatus::Agreed)).await, vec![agreed]);
    assert_eq!(listed(with_status(PlacementStatus::Withdrawn)).await, vec![withdrawn]);
    assert_eq!(listed(with_status(PlacementStatus::Active)).await, vec![active]);
    let page = placements::list(pool, &filter(due), Some(proposed), 2).await.expect("list");
    assert_eq!(placement_ids(&page), vec![agreed, active]);

    // Unsigned is flagged on any day; the missing start moment only after its
    // due day.
    let attention = |value: bool, today: NaiveDate| PlacementFilter {
        needs_attention: Some(value),
        ..filter(today)
    };
    let after_due = due.succ_opt().expect("a day");
    assert_eq!(listed(attention(true, due)).await, vec![agreed]);
    assert_eq!(listed(attention(true, after_due)).await, vec![agreed, active]);
    assert_eq!(listed(attention(false, after_due)).await, vec![proposed, withdrawn]);
    // The SQL agrees with `PlacementRecord::needs_attention`.
    let all = placements::list(pool, &filter(due), None, 100).await.expect("list");
    for today in [day(2027, 1, 1), due, after_due, day(2027, 8, 1)] {
        let expected: Vec<Uuid> = all
            .iter()
            .filter(|e| e.record.needs_attention(today))
            .map(|e| e.record.placement_id)
            .collect();
        assert_eq!(listed(attention(true, today)).await, expected, "on {today}");
    }

    let entry = placements::get(pool, active).await.expect("get").expect("found");
    assert_eq!(entry.record.status, PlacementStatus::Active);
    assert_eq!(entry.record.overdue_from(), Some(due));
    assert_eq!((entry.version, Some(entry.last_position)), (7, started.position));
    assert!(placements::get(pool, Uuid::from_u128(5)).await.expect("get").is_none());

    // Once everyone has signed, the agreed placement no longer needs attention.
    for party in [Signatory::Student, Signatory::School, Signatory::Company] {
        run(agreed, PlacementCommand::Sign { party, today: signed_on }).await;
    }
    world.catch_up().await;
    assert_eq!(listed(attention(true, due)).await, Vec::<Uuid>::new());

    world.assert_rebuild_keeps(placements::NAME, "placements", "placement_id").await;
}

/// Read models rewritten by every event of their aggregate are analysed as
/// they grow, not after every tenth of their rows changed (migration 0014).
#[tokio::test]
async fn rewritten_read_models_are_analysed_as_they_grow() {
    let pool = fresh_pool().await.expect("pool");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class
          WHERE relkind = 'r' AND 'autovacuum_analyze_scale_factor=10' = ANY(reloptions)
          ORDER BY relname",
    )
    .fetch_all(&pool)
    .await
    .expect("reloptions");
    assert_eq!(
        tables,
        [
            "indicator_placement_records",
            "indicator_placements",
            "indicator_student_records",
            "indicator_students",
            "offers",
            "placements",
            "reaction_placements",
        ]
    );
}
