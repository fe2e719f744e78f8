//! The placement reactions against real PostgreSQL, for the orderings the API
//! cannot stage on demand: a proposal decided on the company's standing just
//! before SBB suspended it, but recorded just after; and many placement events
//! decided in one round.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use stagepact_domain::company::{
    Company, CompanyCommand, CompanyRegistered, RecognitionGranted, RecognitionSuspended,
};
use stagepact_domain::placement::{
    MatchObjected, MatchWithdrawn, OfferFacts, Participant, Placement, PlacementCommand,
    PlacementStudent, RecognitionChange, StudentFacts,
};
use stagepact_domain::values::{
    CompanyId, CompanyName, Crebo, Level, Pathway, Period, Reason, Region, SchoolId, Sector,
    StudentNumber,
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

fn student(number: &str) -> StudentFacts {
    StudentFacts {
        student: PlacementStudent {
            school: SchoolId::parse("25XX").expect("valid"),
            student_id: StudentNumber::parse(number).expect("valid"),
            level: Level::parse(2).expect("valid"),
            pathway: Pathway::Bol,
        },
        qualification: crebo(),
    }
}

async fn company_at(bus: &CommandBus, id: &str, suspended: bool) {
    let mut commands = vec![
        CompanyCommand::RegisterCompany(CompanyRegistered {
            company_id: CompanyId::parse(id).expect("valid"),
            name: CompanyName::parse("De Werkplaats").expect("valid"),
            sector: Sector::parse("Techniek").expect("valid"),
            region: Region::parse("Utrecht").expect("valid"),
            location: None,
        }),
        CompanyCommand::GrantRecognition(RecognitionGranted {
            qualification: crebo(),
            granted_on: day(2026, 9, 1),
            valid_until: day(2029, 8, 31),
        }),
    ];
    if suspended {
        commands.push(CompanyCommand::SuspendRecognition(RecognitionSuspended {
            reason: Reason::parse("investigation").expect("valid"),
            investigation_id: None,
        }));
    }
    for command in commands {
        bus.execute::<Company>(id, command, None, HashMap::new()).await.expect("company command");
    }
}

async fn propose_match(bus: &CommandBus, number: &str, company: &str, offer: Uuid) -> String {
    let placement = Uuid::new_v4();
    let proposal = PlacementCommand::ProposeMatch {
        placement_id: placement,
        student: student(number),
        offer: OfferFacts {
            offer_id: offer,
            company_id: CompanyId::parse(company).expect("valid"),
            qualification: crebo(),
            levels: vec![Level::parse(2).expect("valid")],
            period: Period::parse(day(2027, 2, 1), day(2027, 6, 30)).expect("valid"),
        },
        company_may_host: true,
        explanation: None,
        replaces: None,
        matching_round_id: None,
    };
    let id = placement.to_string();
    bus.execute::<Placement>(&id, proposal, None, HashMap::new()).await.expect("proposal");
    id
}

/// The placement events between two company events are decided as one run:
/// their rows change with a statement for all of them, and each still decides
/// what it decided alone (an early end gives its slot back, a proposal
/// recorded after its company's suspension notices it), keyed by its own
/// event, once.
#[tokio::test]
async fn s2_s1_placement_events_in_one_round_decide_each_its_own_reactions() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool).await.expect("log");
    let workers = log.spawn();
    let bus = CommandBus::new(Arc::clone(&log));
    let projections = Projections::new(Arc::clone(&log), vec![Arc::new(PlacementReactions)]);
    company_at(&bus, "lb-1", false).await;
    company_at(&bus, "lb-2", true).await;
    let (offer_a, offer_c) = (Uuid::new_v4(), Uuid::new_v4());

    // Proposed and objected to, proposed (on an earlier look) at the
    // suspended company, proposed and withdrawn: one run of five events.
    let a = propose_match(&bus, "s-a", "lb-1", offer_a).await;
    let objection = PlacementCommand::Object(MatchObjected {
        by: Participant::Student,
        reasons: vec![Reason::parse("too far").expect("valid")],
    });
    bus.execute::<Placement>(&a, objection, None, HashMap::new()).await.expect("objection");
    let b = propose_match(&bus, "s-b", "lb-2", Uuid::new_v4()).await;
    let c = propose_match(&bus, "s-c", "lb-1", offer_c).await;
    let withdrawal = PlacementCommand::Withdraw(MatchWithdrawn {
        reason: Reason::parse("other plans").expect("valid"),
    });
    bus.execute::<Placement>(&c, withdrawal, None, HashMap::new()).await.expect("withdrawal");

    let outbox = || async {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT reaction_to, aggregate_id, command->>'reaction' FROM reaction_outbox ORDER BY id",
        )
        .fetch_all(log.pool())
        .await
        .expect("outbox");
        rows
    };
    projections.catch_up(reactions::NAME).await.expect("one round");
    let expected = vec![
        (format!("placement:{a}:2"), offer_a.to_string(), "release_slot".to_owned()),
        (format!("placement:{b}:1"), b.clone(), "recognition_changed".to_owned()),
        (format!("placement:{c}:2"), offer_c.to_string(), "release_slot".to_owned()),
    ];
    assert_eq!(outbox().await, expected);
    let open: Vec<String> =
        sqlx::query_scalar("SELECT placement_id::text FROM reaction_placements")
            .fetch_all(log.pool())
            .await
            .expect("open placements");
    assert_eq!(open, vec![b.clone()], "only the placement still open is kept");

    // A rebuild decides the same again, and the outbox keeps each once.
    projections.rebuild(reactions::NAME).await.expect("rebuild");
    assert_eq!(outbox().await, expected);
    for worker in workers {
        worker.abort();
    }
}
