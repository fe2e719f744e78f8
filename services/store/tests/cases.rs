//! The case files read model against real PostgreSQL: reports, signals,
//! complaints and investigations fold as their aggregates do, the school's
//! worklist filters (open, overdue) agree with the domain, sealed content stays
//! sealed in the rows, and a rebuild gives the same rows.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Days, NaiveDate, Utc};
use cqrs_es::Aggregate;
use stagepact_domain::Visibility;
use stagepact_domain::complaint::{Complaint, ComplaintReceived};
use stagepact_domain::investigation::{
    HearingParty, HearingRecorded, Investigation, InvestigationCommand, InvestigationOpened,
};
use stagepact_domain::report::{
    ConversationForm, Filing, Ground, Report, ReportCommand, ReportConversationRecorded,
    ReportKind, ReportOutcome, overdue_if_filed_by,
};
use stagepact_domain::signal::{ReceiveSignal, Signal};
use stagepact_domain::student::student_key;
use stagepact_domain::values::{CompanyId, Description, SchoolId, StudentNumber};
use stagepact_store::cases::{self, CaseFiles, ReportFilter};
use stagepact_store::testing::fresh_pool;
use stagepact_store::{CommandBus, EventLog, MasterKey, Projections, Vault};
use uuid::Uuid;

struct World {
    bus: CommandBus,
    log: Arc<EventLog>,
    vault: Vault,
    projections: Arc<Projections>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.workers.iter().for_each(|w| w.abort());
    }
}

async fn world() -> World {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let workers = log.spawn();
    let projections = Projections::new(Arc::clone(&log), vec![Arc::new(CaseFiles)]);
    let vault = Vault::new(pool, MasterKey::generate());
    World { bus: CommandBus::new(Arc::clone(&log)), log, vault, projections, workers }
}

impl World {
    async fn run<A>(&self, id: Uuid, command: A::Command)
    where
        A: Aggregate<Services = ()> + Clone + Visibility + 'static,
        A::Command: Clone,
    {
        self.bus
            .execute::<A>(&id.to_string(), command, None, HashMap::new())
            .await
            .unwrap_or_else(|error| panic!("{} {id}: {error}", A::TYPE));
    }

    async fn file(&self, student: &str, days_ago: u64) -> Uuid {
        let school = SchoolId::parse("25XX").expect("valid");
        let student_id = StudentNumber::parse(student).expect("valid");
        let cipher = self.vault.cipher_for(&student_key(&school, &student_id)).await.expect("key");
        let filing = Filing {
            school,
            student_id,
            company_id: company(),
            placement_id: None,
            kind: ReportKind::Discrimination,
            description: Description::parse("refused because of my headscarf").expect("valid"),
            grounds: vec![Ground::Religion],
            wants_replacement_placement: true,
            consent_to_forward: true,
            filed_on: today() - Days::new(days_ago),
        };
        let id = Uuid::new_v4();
        self.run::<Report>(id, ReportCommand::File { filing, cipher, placement_company: None })
            .await;
        id
    }
}

fn company() -> CompanyId {
    CompanyId::parse("100012345").expect("valid")
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn ids(entries: Vec<cases::CaseEntry<stagepact_domain::report::ReportRecord>>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = entries.into_iter().map(|e| e.id).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn case_files_follow_the_log_filter_like_the_domain_and_rebuild_the_same() {
    let world = world().await;
    let fresh = world.file("s-1", 0).await;
    let late = world.file("s-2", 30).await;
    let closed = world.file("s-3", 30).await;
    let talk = ReportConversationRecorded {
        form: ConversationForm::SchoolAndCompany,
        held_on: today(),
        safe_for_student: false,
    };
    world
        .run::<Report>(
            closed,
            ReportCommand::RecordConversation { conversation: talk, today: today() },
        )
        .await;
    world
        .run::<Report>(
            closed,
            ReportCommand::Close { outcome: ReportOutcome::Resolved, on: today() },
        )
        .await;
    let signals = world.vault.cipher_for("sbb-signals").await.expect("key");
    let signal = Uuid::new_v4();
    let receive = ReceiveSignal {
        company_id: company(),
        kind: ReportKind::Discrimination,
        grounds: vec![Ground::Religion],
        filed_on: today(),
        cipher: signals,
    };
    world.run::<Signal>(signal, receive).await;
    let complaint = Uuid::new_v4();
    let student = world.vault.cipher_for("25XX:s-1").await.expect("key");
    let received = ComplaintReceived {
        company_id: company(),
        school: SchoolId::parse("25XX").expect("valid"),
        kind: ReportKind::Discrimination,
        summary: student.seal(&"three reports this year"),
        received_on: today(),
    };
    world.run::<Complaint>(complaint, received).await;
    let investigation = Uuid::new_v4();
    let opened = InvestigationOpened {
        company_id: company(),
        signal_ids: vec![signal],
        complaint_id: Some(complaint),
        opened_on: today(),
    };
    world
        .run::<Investigation>(
            investigation,
            InvestigationCommand::Open { opened, evidence_companies: vec![company(), company()] },
        )
        .await;
    let hearing = HearingRecorded { party: HearingParty::Company, held_on: today() };
    world
        .run::<Investigation>(
            investigation,
            InvestigationCommand::RecordHearing { hearing, today: today() },
        )
        .await;
    world.projections.catch_up(cases::NAME).await.expect("catch up");
    let pool = world.log.pool();

    let all = ReportFilter { school: Some("25XX".into()), ..ReportFilter::default() };
    let mut expected = vec![fresh, late, closed];
    expected.sort();
    assert_eq!(ids(cases::reports(pool, &all, None, 10).await.expect("list")), expected);
    let open = ReportFilter { open: Some(true), ..all.clone() };
    let mut expected = vec![fresh, late];
    expected.sort();
    assert_eq!(ids(cases::reports(pool, &open, None, 10).await.expect("list")), expected);
    let overdue =
        ReportFilter { overdue_if_filed_by: Some(overdue_if_filed_by(today(), 5)), ..all.clone() };
    assert_eq!(ids(cases::reports(pool, &overdue, None, 10).await.expect("list")), vec![late]);
    let other_school = ReportFilter { school: Some("30YY".into()), ..ReportFilter::default() };
    assert!(cases::reports(pool, &other_school, None, 10).await.expect("list").is_empty());

    let entry = cases::get::<Investigation>(pool, investigation).await.expect("get").expect("row");
    assert_eq!(entry.record.hearings.len(), 1);
    assert_eq!(entry.version, 2);
    assert_eq!(
        cases::list::<Signal>(pool, Some("100012345"), None, 10).await.expect("list").len(),
        1
    );
    assert!(
        cases::list::<Complaint>(pool, Some("100067890"), None, 10).await.expect("list").is_empty()
    );
    // A report is not an investigation, even by id.
    assert!(cases::get::<Investigation>(pool, fresh).await.expect("get").is_none());

    let rows = || async {
        let rows: Vec<serde_json::Value> =
            sqlx::query_scalar("SELECT to_jsonb(c) FROM cases c ORDER BY case_id")
                .fetch_all(pool)
                .await
                .expect("rows");
        rows
    };
    let before = rows().await;
    assert_eq!(before.len(), 6);
    let text = serde_json::Value::Array(before.clone()).to_string();
    assert!(
        !text.contains("headscarf") && !text.contains("\"religion\""),
        "sealed in the rows: {text}"
    );
    world.projections.rebuild(cases::NAME).await.expect("rebuild");
    assert_eq!(rows().await, before, "cases differ after a rebuild");
}
