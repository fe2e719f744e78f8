//! Delivery to SBB of what schools and SBB decided, run in the background from
//! the decisions recorded on the write side, so that no crash between two
//! commands can leave a decision undelivered:
//!
//! - **Signals** (D4): each report whose school forwarded a signal becomes an
//!   anonymised signal at SBB, if the student still consents and the grounds
//!   are still readable. Signals are released in rounds, in random order, with
//!   no actor and no request id, so neither their place in the log, their time
//!   nor their metadata ties a signal to the report it came from.
//! - **Complaints** (D5): an escalation that did not reach SBB's complaint desk
//!   with its request (the handler delivers it at once) is delivered.
//! - **Conclusions** (D5): a concluded investigation whose recognition
//!   consequence was not recorded with its request gets it.
//!
//! Every step is idempotent: a signal or complaint has the id its report names,
//! and a recognition change is made only when the company is not in that state
//! yet; two API processes running this at once record each thing once.

use std::collections::HashMap;
use std::time::Duration;

use stagepact_domain::company::{
    Company, CompanyCommand, CompanyError, RecognitionReinstated, RecognitionRevoked,
};
use stagepact_domain::complaint::{Complaint, ComplaintError, ComplaintReceived};
use stagepact_domain::investigation::{Investigation, InvestigationOutcome};
use stagepact_domain::report::{Ground, Report};
use stagepact_domain::signal::{ReceiveSignal, Signal, SignalError};
use stagepact_domain::values::Reason;
use stagepact_store::{CommandError, StoreError};
use uuid::Uuid;

use crate::server::AppState;

/// Carries out the matches of published matching rounds that a failure left
/// pending; `run` calls it every minute.
pub use crate::routes::matching::carry_out_pending;

/// Flags the shortages of placements that supply and demand show (S2): an
/// early warning to SBB and the schools concerned, delivered through the
/// feed; `routes::indicators::watch_shortages` runs it on its own schedule.
pub use crate::routes::indicators::flag_shortages;

/// The data subject whose key seals SBB's signal grounds. Signals are
/// anonymised, not any student's data: they stay when a student is erased.
pub const SIGNALS_SUBJECT: &str = "sbb-signals";

/// What one round delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Signals released to SBB.
    pub signals: usize,
    /// Complaints delivered late.
    pub complaints: usize,
    /// Recognition consequences of conclusions recorded late.
    pub conclusions: usize,
}

/// The metadata of what the system records on its own: no person, no request.
fn system() -> HashMap<String, String> {
    HashMap::from([("actor_role".to_owned(), "system".to_owned())])
}

/// How often late complaints and conclusions are looked for.
const REPAIR_INTERVAL: Duration = Duration::from_secs(60);

/// Runs delivery rounds until the task is stopped: complaints and conclusions
/// every minute, signals every `signal_interval`. The same minute carries out
/// the matches of published matching rounds that a failure left pending
/// (`routes::matching::carry_out_pending`): the same repair, for schools.
pub async fn run(state: AppState, signal_interval: Duration) {
    let mut ticks = tokio::time::interval(REPAIR_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_release = tokio::time::Instant::now() + signal_interval;
    loop {
        ticks.tick().await;
        let release = tokio::time::Instant::now() >= next_release;
        if release {
            next_release += signal_interval;
        }
        match deliver(&state, release).await {
            Ok(delivered) if delivered != Delivered::default() => {
                tracing::info!(?delivered, "delivered to SBB")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "delivery round failed; retrying next round"),
        }
        match carry_out_pending(&state).await {
            Ok(0) => {}
            Ok(placed) => tracing::info!(placed, "carried out pending matches"),
            Err(error) => {
                tracing::warn!(%error, "carrying out matches failed; retrying next round")
            }
        }
    }
}

/// One delivery round; signals only when `release_signals`.
pub async fn deliver(state: &AppState, release_signals: bool) -> Result<Delivered, DeliveryError> {
    let mut delivered = Delivered::default();
    if release_signals {
        delivered.signals = release(state).await?;
    }
    let pending: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT r.case_id FROM cases r
          WHERE r.kind = 'report' AND r.record->'escalation' IS NOT NULL
            AND r.record->'escalation' <> 'null'::jsonb
            AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.kind = 'complaint'
                              AND c.case_id::text = r.record->'escalation'->>'complaint_id')",
    )
    .fetch_all(&state.pool)
    .await?;
    for (report,) in pending {
        delivered.complaints += usize::from(deliver_complaint(state, report).await?);
    }
    let concluded: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT case_id FROM cases WHERE kind = 'investigation' AND closed
            AND record->'concluded'->>'outcome' IN ('recognition_revoked', 'recognition_reinstated')",
    )
    .fetch_all(&state.pool)
    .await?;
    for (investigation,) in concluded {
        delivered.conclusions += usize::from(apply_conclusion(state, investigation).await?);
    }
    Ok(delivered)
}

/// Releases every forwarded signal not yet at SBB; how many it recorded.
async fn release(state: &AppState) -> Result<usize, DeliveryError> {
    let mut released = 0;
    // Random order: the log shows a batch of signals, not which came first.
    let pending: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT r.case_id FROM cases r
          WHERE r.kind = 'report' AND r.record->>'signal_id' IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM cases s
                             WHERE s.kind = 'signal' AND s.case_id::text = r.record->>'signal_id')
          ORDER BY random()",
    )
    .fetch_all(&state.pool)
    .await?;
    for (report,) in pending {
        released += usize::from(release_signal(state, report).await?);
    }
    Ok(released)
}

/// Releases the signal a report's school forwarded; whether it recorded one.
async fn release_signal(state: &AppState, report_id: Uuid) -> Result<bool, DeliveryError> {
    let (report, _) = state.bus.load::<Report>(&report_id.to_string()).await?;
    let Some(record) = report.record() else { return Ok(false) };
    let Some(signal_id) = record.signal_id else { return Ok(false) };
    // D4: only with consent, also when it was withdrawn after the forwarding.
    if !record.consent_to_forward {
        return Ok(false);
    }
    let opener = state.vault.opener([record.filed.grounds.sealed]).await?;
    let Some(grounds) = opener.open::<Vec<Ground>>(&record.filed.grounds).readable() else {
        return Ok(false);
    };
    let signal = ReceiveSignal {
        company_id: record.filed.company_id.clone(),
        kind: record.filed.kind,
        grounds,
        filed_on: record.filed.filed_on,
        cipher: state.vault.cipher_for(SIGNALS_SUBJECT).await?,
    };
    match state.bus.execute::<Signal>(&signal_id.to_string(), signal, None, system()).await {
        Ok(_) => Ok(true),
        Err(CommandError::Rejected(SignalError::AlreadyReceived)) => Ok(false),
        Err(error) => Err(store_error(error)),
    }
}

/// Delivers a report's escalation to SBB's complaint desk; whether it recorded one.
pub async fn deliver_complaint(state: &AppState, report_id: Uuid) -> Result<bool, DeliveryError> {
    let (report, _) = state.bus.load::<Report>(&report_id.to_string()).await?;
    let Some(record) = report.record() else { return Ok(false) };
    let Some(escalation) = &record.escalation else { return Ok(false) };
    let complaint = ComplaintReceived {
        company_id: record.filed.company_id.clone(),
        school: record.filed.school.clone(),
        kind: record.filed.kind,
        summary: escalation.summary.clone(),
        received_on: chrono::Utc::now().date_naive(),
    };
    let id = escalation.complaint_id.to_string();
    match state.bus.execute::<Complaint>(&id, complaint, None, system()).await {
        Ok(_) => Ok(true),
        Err(CommandError::Rejected(ComplaintError::AlreadyReceived)) => Ok(false),
        Err(error) => Err(store_error(error)),
    }
}

/// Brings the company's recognition to what a concluded investigation says;
/// whether it recorded a change. Already there counts as done.
pub async fn apply_conclusion(state: &AppState, id: Uuid) -> Result<bool, DeliveryError> {
    let (investigation, _) = state.bus.load::<Investigation>(&id.to_string()).await?;
    let Some(record) = investigation.record() else { return Ok(false) };
    let Some(concluded) = &record.concluded else { return Ok(false) };
    let company_id = record.opened.company_id.as_str();
    let (company, _) = state.bus.load::<Company>(company_id).await?;
    let Some(company) = company.record() else { return Ok(false) };
    // Invariant: a fixed, non-empty text within the bounds of `Reason`.
    let reason = |what: &str| {
        Reason::parse(&format!("investigation {id} concluded: {what}"))
            .unwrap_or_else(|_| unreachable!("a valid fixed reason"))
    };
    let change = match concluded.outcome {
        InvestigationOutcome::RecognitionRevoked if !company.revoked => {
            CompanyCommand::RevokeRecognition(RecognitionRevoked {
                reason: reason("recognition revoked"),
                qualification: None,
            })
        }
        InvestigationOutcome::RecognitionReinstated
            if company.suspension.as_ref().is_some_and(|s| s.investigation_id == Some(id)) =>
        {
            CompanyCommand::ReinstateRecognition(RecognitionReinstated {
                reason: reason("recognition reinstated"),
            })
        }
        _ => return Ok(false),
    };
    match state.bus.execute::<Company>(company_id, change, None, system()).await {
        Ok(_) => Ok(true),
        // A concurrent round got there first.
        Err(CommandError::Rejected(CompanyError::Revoked | CompanyError::NotSuspended)) => {
            Ok(false)
        }
        Err(error) => Err(store_error(error)),
    }
}

/// Why a delivery round stopped; the next round tries again.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A command was refused for another reason than "done already".
    #[error("delivery to SBB was refused: {0}")]
    Refused(String),
}

impl From<sqlx::Error> for DeliveryError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

fn store_error<E: std::error::Error>(error: CommandError<E>) -> DeliveryError {
    match error {
        CommandError::Store(store) => DeliveryError::Store(store),
        other => DeliveryError::Refused(other.to_string()),
    }
}
