//! A prepared round: the input checked and interned and its candidate pairs
//! built, ready to be solved by either method and turned into an outcome.

use crate::candidates::{self, Candidates};
use crate::fit;
use crate::geo;
use crate::intern::{self, InputError, Interned};
use crate::model::{MatchingInput, OfferId, StudentId, Variant};
use crate::outcome::{MatchingOutcome, Metrics, Proposal, Unmatched, UnmatchedReason};
use crate::solver::{self, Graph};

/// Runs a round with the exact method: the engine's one call for callers that
/// need nothing else.
pub fn run(input: &MatchingInput) -> Result<MatchingOutcome, InputError> {
    let instance = Instance::new(input)?;
    Ok(instance.outcome(&instance.solve(Method::Optimal)))
}

/// How to choose among the candidate pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The most students placed, then the greatest total fit (exact).
    Optimal,
    /// The baseline: students with the fewest options first (then by id), each
    /// taking their best offer with a free slot.
    Greedy,
}

/// A round ready to solve: checked, interned, with its candidate pairs.
#[derive(Debug)]
pub struct Instance {
    data: Interned,
    candidates: Candidates,
    threads: usize,
}

/// The pairs a method chose, as indices into the instance's candidate pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pairs: Vec<u32>,
}

impl Assignment {
    /// How many pairs were chosen.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// An eligible student–offer pair and its fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The student.
    pub student: &'a StudentId,
    /// The offer.
    pub offer: &'a OfferId,
    /// The fit in thousandths.
    pub fit: u16,
}

impl Instance {
    /// Checks and interns the input and builds its candidate pairs, using as
    /// many threads as the machine has cores.
    pub fn new(input: &MatchingInput) -> Result<Self, InputError> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_threads(input, threads)
    }

    /// As [`Instance::new`], on at most `threads` threads (at least one). The
    /// outcome is the same for any number.
    pub fn with_threads(input: &MatchingInput, threads: usize) -> Result<Self, InputError> {
        let threads = threads.max(1);
        let data = intern::intern(input)?;
        let candidates = candidates::build(&data, threads)?;
        Ok(Self { data, candidates, threads })
    }

    /// How many eligible pairs there are.
    pub fn candidate_pairs(&self) -> usize {
        self.candidates.offer.len()
    }

    /// Every eligible pair, by student id and then offer id.
    pub fn candidates(&self) -> impl Iterator<Item = Candidate<'_>> {
        (0..self.data.students.len()).flat_map(move |student| {
            self.candidates.of(student).map(move |pair| Candidate {
                student: &self.data.students.ids[student],
                offer: &self.data.offers.ids[self.candidates.offer[pair] as usize],
                fit: self.candidates.fit[pair],
            })
        })
    }

    /// How many proposals a student and an offer slot may each take.
    fn per_student_and_slot(&self) -> u32 {
        match self.data.settings.variant {
            Variant::Single => 1,
            Variant::TwoAndTwo => 2,
        }
    }

    pub(crate) fn graph(&self) -> Graph<'_> {
        let per = self.per_student_and_slot();
        Graph {
            left_cap: vec![per; self.data.students.len()],
            right_cap: self.data.offers.slots.iter().map(|&slots| slots * per).collect(),
            start: &self.candidates.start,
            right: &self.candidates.offer,
            weight: &self.candidates.fit,
        }
    }

    /// Chooses pairs by a method.
    pub fn solve(&self, method: Method) -> Assignment {
        let graph = self.graph();
        let pairs = match method {
            Method::Optimal => solver::optimal(&graph, self.threads),
            Method::Greedy => solver::greedy(&graph),
        };
        Assignment { pairs }
    }

    /// The outcome of an assignment: proposals with explanations, the unmatched
    /// students with reasons, and the metrics.
    pub fn outcome(&self, assignment: &Assignment) -> MatchingOutcome {
        let (s, o, c) = (&self.data.students, &self.data.offers, &self.candidates);
        let student_of = pair_students(c);
        let mut proposals = Vec::with_capacity(assignment.pairs.len());
        let mut student_load = vec![0u32; s.len()];
        let mut offer_load = vec![0u32; o.len()];
        let mut total_fit = 0u64;
        for &pair in &assignment.pairs {
            let (student, offer) =
                (student_of[pair as usize] as usize, c.offer[pair as usize] as usize);
            student_load[student] += 1;
            offer_load[offer] += 1;
            let fit = u32::from(c.fit[pair as usize]);
            total_fit += u64::from(fit);
            let distance = match (s.point[student], o.point[offer]) {
                (Some(a), Some(b)) => Some(geo::chord2_to_m(a.chord2(b))),
                _ => None,
            };
            proposals.push(Proposal {
                student: s.ids[student].clone(),
                offer: o.ids[offer].clone(),
                company: o.company_ids[offer].clone(),
                fit,
                explanation: fit::explain(&self.data, student, offer, distance),
            });
        }
        let unmatched: Vec<Unmatched> = (0..s.len())
            .filter(|&student| student_load[student] == 0)
            .map(|student| Unmatched {
                student: s.ids[student].clone(),
                reason: c.none[student].unwrap_or(UnmatchedReason::SlotsTaken),
            })
            .collect();
        let matched = s.len() - unmatched.len();
        let slots: u64 = o.slots.iter().map(|&n| u64::from(n)).sum();
        let taken: u64 =
            o.slots.iter().zip(&offer_load).map(|(&n, &load)| u64::from(n.min(load))).sum();
        let metrics = Metrics {
            students: s.len() as u32,
            offers: o.len() as u32,
            slots,
            candidate_pairs: c.offer.len() as u64,
            proposals: proposals.len() as u32,
            matched_students: matched as u32,
            matched_share: if s.len() == 0 { 0.0 } else { matched as f64 / s.len() as f64 },
            total_fit,
            mean_fit: if proposals.is_empty() {
                0.0
            } else {
                total_fit as f64 / proposals.len() as f64
            },
            slots_left: slots - taken,
            blocking_pairs: self.blocking_pairs(assignment, &student_of),
        };
        MatchingOutcome { proposals, unmatched, metrics }
    }

    /// Counts the pairs whose student and offer both prefer each other to a
    /// proposal they got, or have room for one more.
    fn blocking_pairs(&self, assignment: &Assignment, student_of: &[u32]) -> u64 {
        let c = &self.candidates;
        let graph = self.graph();
        let mut chosen = vec![false; c.offer.len()];
        // A node with room accepts any fit; a full one only beats its worst.
        let mut student_worst: Vec<i32> = vec![i32::MAX; self.data.students.len()];
        let mut offer_worst: Vec<i32> = vec![i32::MAX; self.data.offers.len()];
        let mut student_load = vec![0u32; self.data.students.len()];
        let mut offer_load = vec![0u32; self.data.offers.len()];
        for &pair in &assignment.pairs {
            let pair = pair as usize;
            chosen[pair] = true;
            let (student, offer) = (student_of[pair] as usize, c.offer[pair] as usize);
            let fit = i32::from(c.fit[pair]);
            student_worst[student] = student_worst[student].min(fit);
            offer_worst[offer] = offer_worst[offer].min(fit);
            student_load[student] += 1;
            offer_load[offer] += 1;
        }
        let bar = |worst: i32, load: u32, cap: u32| if load < cap { -1 } else { worst };
        (0..c.offer.len())
            .filter(|&pair| {
                let (student, offer) = (student_of[pair] as usize, c.offer[pair] as usize);
                let fit = i32::from(c.fit[pair]);
                !chosen[pair]
                    && fit
                        > bar(
                            student_worst[student],
                            student_load[student],
                            graph.left_cap[student],
                        )
                    && fit > bar(offer_worst[offer], offer_load[offer], graph.right_cap[offer])
            })
            .count() as u64
    }
}

/// The student of every candidate pair.
fn pair_students(c: &Candidates) -> Vec<u32> {
    let mut students = Vec::with_capacity(c.offer.len());
    for student in 0..c.start.len().saturating_sub(1) {
        students.extend(c.of(student).map(|_| student as u32));
    }
    students
}
