//! Every event type and version the log can hold: the feed maps them to
//! CloudEvents types, `schemas/` is generated from it.

use schemars::{JsonSchema, Schema};

use crate::company::{
    CompanyRegistered, MatchingParticipationSet, RecognitionGranted, RecognitionReinstated,
    RecognitionRevoked, RecognitionSuspended,
};
use crate::complaint::ComplaintReceived;
use crate::investigation::{HearingRecorded, InvestigationConcluded, InvestigationOpened};
use crate::matching_round::{
    MatchingRoundCarriedOut, MatchingRoundOpened, MatchingRoundPublished, MatchingRoundRun,
    MatchingRoundSettled,
};
use crate::offer::{OfferPublished, OfferSlotReleased, OfferSlotReserved, OfferWithdrawn};
use crate::placement::*;
use crate::report::{
    ForwardingConsentSet, ReplacementPlacementOffered, ReportAcknowledged, ReportClosed,
    ReportConversationRecorded, ReportEscalated, ReportFiled, SignalForwarded,
};
use crate::shortage::ShortageFlagged;
use crate::signal::SignalReceived;
use crate::student::{
    LearningWishRecorded, StudentEnrolled, StudentEnrolmentUpdated, SupportNeedRecorded,
};

/// One event type at one version.
#[derive(Debug, Clone, Copy)]
pub struct EventKind {
    /// The aggregate type as stored (`Aggregate::TYPE`).
    pub aggregate: &'static str,
    /// The event type as stored (`DomainEvent::event_type`), in PascalCase.
    pub name: &'static str,
    /// The event version as stored (`DomainEvent::event_version`).
    pub version: &'static str,
    /// The JSON Schema of the payload at this version.
    pub schema: fn() -> Schema,
}

fn schema_of<T: JsonSchema>() -> Schema {
    schemars::schema_for!(T)
}

/// One catalog entry per (aggregate, event type) at version 1.
macro_rules! v1 {
    ($aggregate:literal: $($event:ident),+ $(,)?) => {
        [$(EventKind {
            aggregate: $aggregate,
            name: stringify!($event),
            version: "1",
            schema: schema_of::<$event>,
        }),+]
    };
}

const COMPANY: [EventKind; 6] = v1!("company":
    CompanyRegistered, RecognitionGranted, RecognitionSuspended, RecognitionReinstated,
    RecognitionRevoked, MatchingParticipationSet);
const STUDENT: [EventKind; 4] = v1!("student":
    StudentEnrolled, StudentEnrolmentUpdated, LearningWishRecorded, SupportNeedRecorded);
const OFFER: [EventKind; 4] =
    v1!("offer": OfferPublished, OfferWithdrawn, OfferSlotReserved, OfferSlotReleased);
const PLACEMENT: [EventKind; 19] = v1!("placement":
    MatchProposed, SelfFoundPlacementProposed, SelfFoundPlacementApproved, MatchAccepted,
    MatchObjected, MatchWithdrawn, AgreementDrafted, AgreementSigned, PlacementStarted,
    WarmHandoverHeld, ContactMomentHeld, ContactMomentConfirmed, ContactMomentRequirementWaived,
    PlacementCompleted, PlacementInterrupted, GuidanceRated, RecognitionSuspensionNoticed,
    RecognitionReinstatementNoticed, AlternativePlacementOffered);

const REPORT: [EventKind; 8] = v1!("report":
    ReportFiled, ReportAcknowledged, ReportConversationRecorded, ReplacementPlacementOffered,
    ForwardingConsentSet, SignalForwarded, ReportEscalated, ReportClosed);
const SIGNAL: [EventKind; 1] = v1!("signal": SignalReceived);
const COMPLAINT: [EventKind; 1] = v1!("complaint": ComplaintReceived);
const INVESTIGATION: [EventKind; 3] =
    v1!("investigation": InvestigationOpened, HearingRecorded, InvestigationConcluded);
const MATCHING_ROUND: [EventKind; 5] = v1!("matching_round":
    MatchingRoundOpened, MatchingRoundRun, MatchingRoundPublished, MatchingRoundSettled,
    MatchingRoundCarriedOut);
const SHORTAGE: [EventKind; 1] = v1!("shortage": ShortageFlagged);

const fn concat<const N: usize>(parts: [&[EventKind]; 10]) -> [EventKind; N] {
    let mut out = [COMPANY[0]; N];
    let mut i = 0;
    let mut part = 0;
    while part < parts.len() {
        let mut j = 0;
        while j < parts[part].len() {
            out[i] = parts[part][j];
            i += 1;
            j += 1;
        }
        part += 1;
    }
    out
}

/// All event kinds, current versions last for each type.
pub static EVENT_CATALOG: &[EventKind] = &concat::<52>([
    &COMPANY,
    &STUDENT,
    &OFFER,
    &PLACEMENT,
    &REPORT,
    &SIGNAL,
    &COMPLAINT,
    &INVESTIGATION,
    &MATCHING_ROUND,
    &SHORTAGE,
]);

impl EventKind {
    /// The CloudEvents `type`: `nl.stagepact.<aggregate>.<event_in_snake_case>`.
    pub fn cloud_type(&self) -> String {
        cloud_type(self.aggregate, self.name)
    }

    /// Where the schema lives under `schemas/`, e.g. `company/recognition_granted.v1.json`.
    pub fn schema_path(&self) -> String {
        format!("{}/{}.v{}.json", self.aggregate, snake_case(self.name), self.version)
    }
}

/// The CloudEvents type of a stored event.
pub fn cloud_type(aggregate: &str, event_type: &str) -> String {
    format!("nl.stagepact.{aggregate}.{}", snake_case(event_type))
}

/// The stored (aggregate, event type) of a CloudEvents type, if it is one of ours.
pub fn stored_type(cloud_type: &str) -> Option<(&'static str, &'static str)> {
    EVENT_CATALOG
        .iter()
        .find(|kind| kind.cloud_type() == cloud_type)
        .map(|kind| (kind.aggregate, kind.name))
}

fn snake_case(pascal: &str) -> String {
    let mut out = String::with_capacity(pascal.len() + 4);
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_types_follow_the_naming_contract() {
        assert_eq!(
            cloud_type("company", "RecognitionSuspended"),
            "nl.stagepact.company.recognition_suspended"
        );
        assert_eq!(
            stored_type("nl.stagepact.company.company_registered"),
            Some(("company", "CompanyRegistered"))
        );
        assert_eq!(stored_type("nl.stagepact.company.nope"), None);
    }

    #[test]
    fn every_placement_event_is_in_the_catalog() {
        for name in PLACEMENT_EVENT_TYPES {
            assert!(
                EVENT_CATALOG.iter().any(|k| k.aggregate == "placement" && k.name == name),
                "{name} is missing"
            );
        }
        let mut names: Vec<_> = EVENT_CATALOG.iter().map(|k| (k.aggregate, k.name)).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EVENT_CATALOG.len(), "no kind is listed twice");
    }

    #[test]
    fn every_kind_has_an_object_schema() {
        for kind in EVENT_CATALOG {
            let schema = (kind.schema)();
            assert_eq!(
                schema.get("type").and_then(|t| t.as_str()),
                Some("object"),
                "{}",
                kind.name
            );
        }
    }
}
