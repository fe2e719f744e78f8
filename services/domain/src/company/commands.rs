//! What SBB can ask of a company.

use super::events::{
    CompanyRegistered, MatchingParticipationSet, RecognitionGranted, RecognitionReinstated,
    RecognitionRevoked, RecognitionSuspended,
};

/// A command on the company aggregate. Each carries the payload of the event it
/// records when the rules allow it, so a command and its event cannot drift apart.
#[derive(Debug, Clone, PartialEq)]
pub enum CompanyCommand {
    /// SBB registers a learning company.
    RegisterCompany(CompanyRegistered),
    /// SBB recognises the company for one qualification until a date (S1).
    GrantRecognition(RecognitionGranted),
    /// SBB suspends the company's recognition, e.g. during an investigation (D5).
    SuspendRecognition(RecognitionSuspended),
    /// SBB lifts a suspension (D5).
    ReinstateRecognition(RecognitionReinstated),
    /// SBB revokes one qualification's recognition, or all of them (D5).
    RevokeRecognition(RecognitionRevoked),
    /// The company opts in to or out of matching rounds (M4); no change records nothing.
    SetMatchingParticipation(MatchingParticipationSet),
}
