//! The stagematching engine: proposes matches between first-year students and
//! placement offers on objective criteria only (M1), placing as many students as
//! possible and then maximising fit. Pure: no I/O, no clock, no randomness;
//! the same input gives the same output, on any number of threads.
//!
//! [`run`] is the one call most callers need; [`Instance`] prepares a round
//! once to solve it by either [`Method`] and to list its candidate pairs.
//!
//! # The model
//!
//! The input ([`MatchingInput`]) holds students' learning wishes and offers, and
//! nothing else: there is no field for any D2 ground, personality, date of
//! birth or support need, so fairness holds by construction (M1, M5, DESIGN §6;
//! a test reads the input's JSON Schema to prove it).
//!
//! * **Eligible** (M1): a student and an offer share the qualification (crebo),
//!   the offer accepts the student's level, and the placement is within the
//!   student's travel limit: the great-circle distance when both have a
//!   location, the same region when either lacks one. Offers reach the engine
//!   only if their company takes part and is recognised (M4, S1): the caller
//!   filters.
//! * **Fit**, in thousandths (integers, so optimality is exact): the learning
//!   goals the offer's learning opportunities cover, the competences they build
//!   on, the sector wish, and the share of the travel limit left unused, each
//!   weighed by [`FitWeights`] (summing to 1000). Every [`Proposal`] carries its
//!   [`Explanation`]: each criterion's matches, weight and points.
//! * **Objective**: the most students placed, respecting each offer's slots;
//!   among those placements the greatest total fit. Ties are broken by id:
//!   students and offers are sorted by id before anything else, so the order of
//!   the input does not matter.
//! * **Metric**: blocking pairs, a student and an offer that would both rather
//!   have each other than what they got ([`Metrics::blocking_pairs`]).
//! * **Two and two** (M4's variant, [`Variant::TwoAndTwo`]): each student gets up
//!   to two proposals at different companies, each offer up to two per slot;
//!   the same solver with doubled capacities, over each student's best offer
//!   per company.
//!
//! # The algorithm, and why
//!
//! 1. **Interning.** The caller passes strings (ids, crebo codes, goals,
//!    competences, opportunities, sectors, regions), as the domain stores them;
//!    the engine turns each vocabulary into dense integers once, and, per
//!    qualification, the terms of its offers into the bits of a `u128`. Fit is
//!    computed for every candidate pair, some ten million nationally, and that
//!    way costs two ANDs and popcounts instead of string comparisons, while no
//!    caller has to keep a vocabulary of ids in step with the engine.
//! 2. **Sparse candidates.** Offers are indexed by qualification and a grid of
//!    map cells; a student is compared only with the offers of their
//!    qualification in the cells their travel limit reaches, never with all
//!    50,000 offers.
//! 3. **Components.** Pairs only exist within a qualification and a distance,
//!    so the graph falls apart into many small connected components; each is
//!    solved on its own, several at a time on several cores.
//! 4. **Exact solve, in two phases** (the `solver` module's notes say more).
//!    The assignment is a maximum-cardinality, maximum-weight b-matching.
//!    A maximum flow (Dinic's blocking flows: Hopcroft–Karp with capacities)
//!    fixes how many students can be placed; its minimum cut splits what is
//!    left into two problems that must each fill one side completely (on the
//!    sink side every student is placed; on the source side every slot is
//!    filled), each solved by successive shortest paths with node potentials
//!    (the Hungarian method, Dijkstra on the sparse graph, with edges sorted by
//!    cost so a search stops scanning once nothing cheaper can come).
//!
//! Why this and not the others:
//!
//! * Min-cost max-flow with successive shortest paths on the whole graph, with
//!   a big-M cost to put cardinality first, is exact too, but every search for
//!   a student who cannot be placed explores their whole over-subscribed region
//!   before giving up. After the cut there are no such searches: where
//!   students outnumber slots the offers do the choosing, and a search ends at
//!   the first free student, usually near.
//! * An auction algorithm needs ε-scaling for speed, and then reverse bidding
//!   (forward–reverse auction) to stay exact when slots are left over; under a
//!   big-M for cardinality it suffers price wars. The shortest-path method is
//!   exact by construction and simpler to check.
//! * Cost scaling or network simplex would also do, with far more code; the
//!   decomposition already keeps each solve small.
//! * Greedy ([`Method::Greedy`]) is the baseline the bench compares with: it
//!   places slightly fewer students with clearly lower fit, and leaves about
//!   six times the blocking pairs (BENCHMARKS.md, "Matching engine").

/// The version of the engine's decisions: raised whenever the same input
/// would be decided differently (a rule, a weight, a tie-break), so a caller
/// that keeps results by input digest knows an earlier result is stale.
pub const DECISION_VERSION: u32 = 1;

mod candidates;
mod fit;
mod geo;
mod instance;
mod intern;
mod model;
mod outcome;
mod solver;
pub mod synthetic;

pub use fit::{Coverage, DistanceFit, Explanation, SectorFit};
pub use geo::distance_m;
pub use instance::{Assignment, Candidate, Instance, Method, run};
pub use intern::InputError;
pub use model::{
    CompanyId, FitWeights, Location, MatchingInput, Offer, OfferId, Settings, Student, StudentId,
    Variant,
};
pub use outcome::{MatchingOutcome, Metrics, Proposal, Unmatched, UnmatchedReason};
