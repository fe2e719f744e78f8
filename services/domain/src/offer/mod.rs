//! The placement offer (stageplaats / leerbaan aanbod) a recognised company
//! publishes: qualification, levels, slots, period, and what it offers to learn
//! and pay. Slots are reserved here, one per proposed placement, so an offer is
//! never over-matched; the placement reactions release a slot when its
//! placement ends early.
//!
//! Rules: S1 (only recognised, non-suspended companies publish and get matches)
//! and S2 (offers must be current).

mod events;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use chrono::NaiveDate;
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use events::{
    OfferEvent, OfferPublished, OfferSlotReleased, OfferSlotReserved, OfferWithdrawn,
};

use crate::Visibility;

/// A command on an offer.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferCommand {
    /// The company publishes the offer. `company_may_host` is the company's
    /// standing for the offer's qualification today, looked up by the caller.
    Publish {
        /// The offer.
        offer: OfferPublished,
        /// S1: recognised for the qualification and not suspended.
        company_may_host: bool,
    },
    /// The company withdraws the offer.
    Withdraw(OfferWithdrawn),
    /// A match takes one slot.
    ReserveSlot {
        /// The placement the slot is for.
        placement_id: Uuid,
        /// The day of the match.
        today: NaiveDate,
    },
    /// A placement that ended early gives its slot back (a reaction).
    ReleaseSlot {
        /// The placement.
        placement_id: Uuid,
    },
}

/// Why an offer command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The offer id is taken.
    #[error("the offer is already published")]
    AlreadyPublished,
    /// No such offer.
    #[error("no such offer")]
    NotPublished,
    /// S1: the company is not recognised for the qualification, or suspended.
    #[error(
        "the company is not recognised for this qualification, or its recognition is suspended or revoked"
    )]
    CompanyMayNotHost,
    /// S2: an offer's period must not have ended.
    #[error("the offer's period has already ended")]
    PeriodEnded,
    /// S2: a withdrawn offer takes no matches.
    #[error("the offer has been withdrawn")]
    Withdrawn,
    /// S2: every slot is taken.
    #[error("the offer has no free slot")]
    NoFreeSlot,
}

impl OfferError {
    /// The pact rule behind the refusal.
    pub fn rule(&self) -> Option<&'static str> {
        match self {
            Self::AlreadyPublished | Self::NotPublished => None,
            Self::CompanyMayNotHost => Some("S1"),
            Self::PeriodEnded | Self::Withdrawn | Self::NoFreeSlot => Some("S2"),
        }
    }
}

/// An offer's record: the state the aggregate decides on and the read model serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferRecord {
    /// What the company published.
    pub offer: OfferPublished,
    /// Withdrawn by the company.
    pub withdrawn: bool,
    /// The placements holding a slot.
    pub reserved: BTreeSet<Uuid>,
}

impl OfferRecord {
    /// The record an aggregate's first event starts; `None` for any other
    /// event (which `decide` never records first).
    pub fn start(event: &OfferEvent) -> Option<Self> {
        match event {
            OfferEvent::OfferPublished(started) => Some(OfferRecord::published(started.clone())),
            _ => None,
        }
    }

    /// Slots not held by a placement.
    pub fn free_slots(&self) -> u32 {
        let taken = u32::try_from(self.reserved.len()).unwrap_or(u32::MAX);
        self.offer.slots.saturating_sub(taken)
    }

    /// S2: open for new matches on `day`: not withdrawn, period not over, a slot free.
    pub fn is_open(&self, day: NaiveDate) -> bool {
        !self.withdrawn && self.offer.period.end >= day && self.free_slots() > 0
    }

    /// Folds one later event into the record.
    pub fn apply(&mut self, event: &OfferEvent) {
        match event {
            OfferEvent::OfferPublished(_) => {}
            OfferEvent::OfferWithdrawn(_) => self.withdrawn = true,
            OfferEvent::OfferSlotReserved(r) => {
                self.reserved.insert(r.placement_id);
            }
            OfferEvent::OfferSlotReleased(r) => {
                self.reserved.remove(&r.placement_id);
            }
        }
    }

    /// The record a publication starts.
    pub fn published(offer: OfferPublished) -> Self {
        Self { offer, withdrawn: false, reserved: BTreeSet::new() }
    }
}

/// The offer aggregate.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    record: Option<OfferRecord>,
}

impl Offer {
    /// The record, once published.
    pub fn record(&self) -> Option<&OfferRecord> {
        self.record.as_ref()
    }

    fn decide(&self, command: OfferCommand) -> Result<Option<OfferEvent>, OfferError> {
        let record = match (command, &self.record) {
            (OfferCommand::Publish { .. }, Some(_)) => return Err(OfferError::AlreadyPublished),
            (OfferCommand::Publish { offer, company_may_host }, None) => {
                if !company_may_host {
                    return Err(OfferError::CompanyMayNotHost);
                }
                if offer.period.end < offer.published_on {
                    return Err(OfferError::PeriodEnded);
                }
                return Ok(Some(OfferEvent::OfferPublished(offer)));
            }
            (command, Some(record)) => (command, record),
            (_, None) => return Err(OfferError::NotPublished),
        };
        match record {
            (OfferCommand::Withdraw(_), record) if record.withdrawn => Err(OfferError::Withdrawn),
            (OfferCommand::Withdraw(withdrawn), _) => {
                Ok(Some(OfferEvent::OfferWithdrawn(withdrawn)))
            }
            (OfferCommand::ReserveSlot { placement_id, .. }, record)
                if record.reserved.contains(&placement_id) =>
            {
                Ok(None)
            }
            (OfferCommand::ReserveSlot { placement_id, today }, record) => {
                if record.withdrawn {
                    Err(OfferError::Withdrawn)
                } else if record.offer.period.end < today {
                    Err(OfferError::PeriodEnded)
                } else if record.free_slots() == 0 {
                    Err(OfferError::NoFreeSlot)
                } else {
                    Ok(Some(OfferEvent::OfferSlotReserved(OfferSlotReserved { placement_id })))
                }
            }
            (OfferCommand::ReleaseSlot { placement_id }, record) => Ok(record
                .reserved
                .contains(&placement_id)
                .then_some(OfferEvent::OfferSlotReleased(OfferSlotReleased { placement_id }))),
            (OfferCommand::Publish { .. }, _) => Err(OfferError::AlreadyPublished),
        }
    }
}

impl Aggregate for Offer {
    const TYPE: &'static str = "offer";
    type Command = OfferCommand;
    type Event = OfferEvent;
    type Error = OfferError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if let Some(event) = self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        crate::fold_record(&mut self.record, &event, OfferRecord::start, OfferRecord::apply);
    }
}

impl Visibility for Offer {
    fn audience(&self) -> Vec<(&'static str, String)> {
        self.record
            .as_ref()
            .map(|r| vec![("company", r.offer.company_id.to_string())])
            .unwrap_or_default()
    }
}
