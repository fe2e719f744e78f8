//! The company's registry record: the state the aggregate decides on, and the
//! same fold the company-registry projection serves, so both read the history
//! the same way.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::events::{CompanyEvent, CompanyRegistered};
use crate::values::{CompanyId, CompanyName, Crebo, Location, Reason, Region, Sector};

/// A company's standing as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompanyStatus {
    /// Holds at least one recognition and is not suspended.
    Active,
    /// Under suspension: no new matches or starts (S1, D5).
    Suspended,
    /// Revoked as a whole (S1).
    Revoked,
    /// Registered but holding no recognition.
    Unrecognised,
}

impl CompanyStatus {
    /// The status as it appears in the API and the read model.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Unrecognised => "unrecognised",
        }
    }
}

/// The standing of one qualification's recognition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecognitionStatus {
    /// The company may host placements for this qualification.
    Active,
    /// The company's suspension covers this recognition too.
    Suspended,
    /// Revoked, alone or with the whole company.
    Revoked,
}

impl RecognitionStatus {
    /// The status as it appears in the API and the read model.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
        }
    }
}

/// One qualification's recognition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recognition {
    /// The qualification.
    pub qualification: Crebo,
    /// Last day without reassessment.
    pub valid_until: NaiveDate,
    /// Its standing.
    pub status: RecognitionStatus,
}

/// A running suspension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspension {
    /// SBB's reason.
    pub reason: Reason,
    /// The investigation it belongs to.
    pub investigation_id: Option<Uuid>,
}

/// The registry record of one company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompanyRecord {
    /// SBB's id.
    pub company_id: CompanyId,
    /// Trade name.
    pub name: CompanyName,
    /// Economic sector.
    pub sector: Sector,
    /// Labour-market region.
    pub region: Region,
    /// Where it is, when known.
    pub location: Option<Location>,
    /// Recognitions by qualification, in code order.
    pub recognitions: BTreeMap<Crebo, Recognition>,
    /// The running suspension, if any.
    pub suspension: Option<Suspension>,
    /// Revoked as a whole.
    pub revoked: bool,
    /// Opted out of matching rounds (M4). Companies take part unless they say not.
    #[serde(default)]
    pub opted_out_of_matching: bool,
}

impl CompanyRecord {
    /// The record an aggregate's first event starts; `None` for any other
    /// event (which `decide` never records first).
    pub fn start(event: &CompanyEvent) -> Option<Self> {
        match event {
            CompanyEvent::CompanyRegistered(started) => {
                Some(CompanyRecord::registered(started.clone()))
            }
            _ => None,
        }
    }

    /// The record a registration starts.
    pub fn registered(event: CompanyRegistered) -> Self {
        Self {
            company_id: event.company_id,
            name: event.name,
            sector: event.sector,
            region: event.region,
            location: event.location,
            recognitions: BTreeMap::new(),
            suspension: None,
            revoked: false,
            opted_out_of_matching: false,
        }
    }

    /// Folds one later event into the record.
    pub fn apply(&mut self, event: &CompanyEvent) {
        match event {
            // A second registration is refused by the aggregate.
            CompanyEvent::CompanyRegistered(_) => {}
            CompanyEvent::RecognitionGranted(grant) => {
                let status = if self.suspension.is_some() {
                    RecognitionStatus::Suspended
                } else {
                    RecognitionStatus::Active
                };
                self.recognitions.insert(
                    grant.qualification,
                    Recognition {
                        qualification: grant.qualification,
                        valid_until: grant.valid_until,
                        status,
                    },
                );
            }
            CompanyEvent::RecognitionSuspended(suspended) => {
                self.suspension = Some(Suspension {
                    reason: suspended.reason.clone(),
                    investigation_id: suspended.investigation_id,
                });
                self.set_live_recognitions(RecognitionStatus::Suspended);
            }
            CompanyEvent::RecognitionReinstated(_) => {
                self.suspension = None;
                self.set_live_recognitions(RecognitionStatus::Active);
            }
            CompanyEvent::MatchingParticipationSet(set) => {
                self.opted_out_of_matching = !set.participates;
            }
            CompanyEvent::RecognitionRevoked(revoked) => match revoked.qualification {
                Some(qualification) => {
                    if let Some(recognition) = self.recognitions.get_mut(&qualification) {
                        recognition.status = RecognitionStatus::Revoked;
                    }
                }
                None => {
                    self.revoked = true;
                    self.suspension = None;
                    for recognition in self.recognitions.values_mut() {
                        recognition.status = RecognitionStatus::Revoked;
                    }
                }
            },
        }
    }

    /// Sets every recognition that is not revoked to `status`.
    fn set_live_recognitions(&mut self, status: RecognitionStatus) {
        for recognition in self.recognitions.values_mut() {
            if recognition.status != RecognitionStatus::Revoked {
                recognition.status = status;
            }
        }
    }

    /// The company's standing as a whole.
    pub fn status(&self) -> CompanyStatus {
        if self.revoked {
            CompanyStatus::Revoked
        } else if self.suspension.is_some() {
            CompanyStatus::Suspended
        } else if self.recognitions.values().any(|r| r.status == RecognitionStatus::Active) {
            CompanyStatus::Active
        } else {
            CompanyStatus::Unrecognised
        }
    }

    /// S1: may this company host a new placement for `qualification` on `day`?
    pub fn may_host(&self, qualification: Crebo, day: NaiveDate) -> bool {
        self.recognitions
            .get(&qualification)
            .is_some_and(|r| r.status == RecognitionStatus::Active && r.valid_until >= day)
    }
}
