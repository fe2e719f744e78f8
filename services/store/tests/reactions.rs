//! The placement reactions against real PostgreSQL, for the orderings the API
//! cannot stage on demand: a proposal decided on the company's standing just
//! before SBB suspended it, but recorded just after.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use stagepact_domain::company::{
    Company, CompanyCommand, CompanyRegistered, RecognitionGranted, RecognitionSuspended,
};
use stagepact_domain::placement::{
    Participant, Placement, PlacementCommand, PlacementStudent, RecognitionChange, StudentFacts,
};
use stagepact_domain::values::{
    CompanyId, CompanyName, Crebo, Level, Pathway, Reason, Region, SchoolId, Sector, StudentNumber,
};
use stagepact_store::reactions::{self, Dispatcher, PlacementReactions};
use stagepact_store::testing::fresh_pool;
use stagepact_store::{CommandBus, EventLog, Projections};
use uuid::Uuid;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

fn crebo() -> Crebo {
    Crebo::parse("25180").expect("valid")
}

async fn event_types(log: &EventLog, id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
        .bind(id)
        .fetch_all(log.pool())
        .await
        .expect("events")
}

#[tokio::test]
async fn s1_d5_a_proposal_recorded_just_after_a_suspension_still_notices_it() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool).await.expect("log");
    let workers = log.spawn();
    let bus = CommandBus::new(Arc::clone(&log));
    let projections = Projections::new(Arc::clone(&log), vec![Arc::new(PlacementReactions)]);
    let dispatcher = Dispatcher::new(Arc::clone(&log), bus.clone());
    let run = |id: &'static str, command: CompanyCommand| {
        let bus = bus.clone();
        async move {
            bus.execute::<Company>(id, command, None, HashMap::new())
                .await
                .expect("company command")
        }
    };
    run(
        "lb-1",
        CompanyCommand::RegisterCompany(CompanyRegistered {
            company_id: CompanyId::parse("lb-1").expect("valid"),
            name: CompanyName::parse("De Werkplaats").expect("valid"),
            sector: Sector::parse("Techniek").expect("valid"),
            region: Region::parse("Utrecht").expect("valid"),
            location: None,
        }),
    )
    .await;
    run(
        "lb-1",
        CompanyCommand::GrantRecognition(RecognitionGranted {
            qualification: crebo(),
            granted_on: day(2026, 9, 1),
            valid_until: day(2029, 8, 31),
        }),
    )
    .await;
    // The school looked at the company while it was recognised ...
    let company_may_host = true;
    // ... SBB suspends it ...
    run(
        "lb-1",
        CompanyCommand::SuspendRecognition(RecognitionSuspended {
            reason: Reason::parse("investigation").expect("valid"),
            investigation_id: None,
        }),
    )
    .await;
    // ... and then the proposal decided on that look is recorded.
    let placement = Uuid::new_v4();
    let proposal = PlacementCommand::ProposeSelfFound {
        placement_id: placement,
        student: StudentFacts {
            student: PlacementStudent {
                school: SchoolId::parse("25XX").expect("valid"),
                student_id: StudentNumber::parse("s-1").expect("valid"),
                level: Level::parse(2).expect("valid"),
                pathway: Pathway::Bol,
            },
            qualification: crebo(),
        },
        company_id: CompanyId::parse("lb-1").expect("valid"),
        qualification: crebo(),
        company_may_host,
        note: None,
        proposed_by: Participant::Student,
        replaces: None,
    };
    bus.execute::<Placement>(&placement.to_string(), proposal, None, HashMap::new())
        .await
        .expect("proposal");

    for _ in 0..2 {
        projections.catch_up(reactions::NAME).await.expect("catch up");
        dispatcher.round().await.expect("dispatch");
    }
    let id = placement.to_string();
    assert_eq!(
        event_types(&log, &id).await,
        ["SelfFoundPlacementProposed", "RecognitionSuspensionNoticed"]
    );
    let (state, _) = bus.load::<Placement>(&id).await.expect("load");
    assert_eq!(state.record().and_then(|r| r.risk), Some(RecognitionChange::Suspended));

    // A rebuild decides the same reaction again, and it records nothing new.
    projections.rebuild(reactions::NAME).await.expect("rebuild");
    dispatcher.round().await.expect("dispatch");
    assert_eq!(event_types(&log, &id).await.len(), 2);
    for worker in workers {
        worker.abort();
    }
}
