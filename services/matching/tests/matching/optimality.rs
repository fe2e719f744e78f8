//! The objective, end to end: the most students placed, then the greatest total
//! fit, within every offer's slots, one proposal per student, the same result
//! for the same round in any order.

use std::collections::BTreeMap;

use proptest::prelude::*;
use stagepact_matching::{Instance, MatchingInput, MatchingOutcome, Method, Variant};

use crate::support::small_round;

/// The best (proposals, total fit) over every choice of up to `per` candidate
/// offers per student, within `per × slots` per offer.
fn exhaustive(input: &MatchingInput, instance: &Instance, per: u32) -> (usize, u64) {
    let mut options: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for s in &input.students {
        options.entry(s.id.0.clone()).or_default();
    }
    for c in instance.candidates() {
        options.entry(c.student.0.clone()).or_default().push((c.offer.0.clone(), u64::from(c.fit)));
    }
    let room: BTreeMap<String, u32> =
        input.offers.iter().map(|o| (o.id.0.clone(), o.slots * per)).collect();
    let lists: Vec<Vec<(String, u64)>> = options.into_values().collect();

    fn go(
        lists: &[Vec<(String, u64)>],
        per: u32,
        room: &mut BTreeMap<String, u32>,
        best: &mut (usize, u64),
        got: (usize, u64),
    ) {
        let Some((first, rest)) = lists.split_first() else {
            *best = (*best).max(got);
            return;
        };
        for mask in 0u32..(1 << first.len()) {
            if mask.count_ones() > per {
                continue;
            }
            let chosen: Vec<&(String, u64)> =
                (0..first.len()).filter(|k| mask & (1 << k) != 0).map(|k| &first[k]).collect();
            if chosen.iter().any(|(offer, _)| room[offer] == 0) {
                continue;
            }
            chosen.iter().for_each(|(offer, _)| *room.get_mut(offer).expect("a listed offer") -= 1);
            let fit: u64 = chosen.iter().map(|(_, fit)| fit).sum();
            go(rest, per, room, best, (got.0 + chosen.len(), got.1 + fit));
            chosen.iter().for_each(|(offer, _)| *room.get_mut(offer).expect("a listed offer") += 1);
        }
    }
    let mut best = (0, 0);
    go(&lists, per, &mut room.clone(), &mut best, (0, 0));
    best
}

/// Checks the outcome's feasibility and returns (proposals, total fit).
fn checked(input: &MatchingInput, outcome: &MatchingOutcome, per: u32) -> (usize, u64) {
    let mut per_student: BTreeMap<&str, u32> = BTreeMap::new();
    let mut per_offer: BTreeMap<&str, u32> = BTreeMap::new();
    let mut per_pair: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for p in &outcome.proposals {
        *per_student.entry(&p.student.0).or_default() += 1;
        *per_offer.entry(&p.offer.0).or_default() += 1;
        *per_pair.entry((&p.student.0, &p.offer.0)).or_default() += 1;
        assert_eq!(p.fit, p.explanation.fit(), "the explanation adds up to the fit");
    }
    assert!(
        per_student.values().all(|&n| n <= per),
        "a student proposed too often: {per_student:?}"
    );
    assert!(per_pair.values().all(|&n| n == 1), "a pair proposed twice");
    for o in &input.offers {
        let taken = per_offer.get(o.id.0.as_str()).copied().unwrap_or(0);
        assert!(
            taken <= o.slots * per,
            "offer {} over its slots: {taken} > {}",
            o.id,
            o.slots * per
        );
    }
    assert_eq!(outcome.unmatched.len() + per_student.len(), input.students.len());
    let total: u64 = outcome.proposals.iter().map(|p| u64::from(p.fit)).sum();
    assert_eq!(total, outcome.metrics.total_fit);
    (outcome.proposals.len(), total)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn optimal_places_the_most_students_then_maximises_fit(input in small_round(7, 5, 2)) {
        let instance = Instance::new(&input).expect("a valid round");
        let outcome = instance.outcome(&instance.solve(Method::Optimal));
        prop_assert_eq!(checked(&input, &outcome, 1), exhaustive(&input, &instance, 1));
    }

    #[test]
    fn greedy_is_feasible_and_never_beats_optimal(input in small_round(7, 5, 2)) {
        let instance = Instance::new(&input).expect("a valid round");
        let greedy = checked(&input, &instance.outcome(&instance.solve(Method::Greedy)), 1);
        let optimal = checked(&input, &instance.outcome(&instance.solve(Method::Optimal)), 1);
        prop_assert!(greedy <= optimal);
    }

    #[test]
    fn m4_two_and_two_is_optimal_within_its_capacities(mut input in small_round(4, 4, 1)) {
        input.settings.variant = Variant::TwoAndTwo;
        let instance = Instance::new(&input).expect("a valid round");
        let outcome = instance.outcome(&instance.solve(Method::Optimal));
        prop_assert_eq!(checked(&input, &outcome, 2), exhaustive(&input, &instance, 2));
        for s in &input.students {
            let companies: Vec<_> = outcome.proposals.iter().filter(|p| p.student == s.id).map(|p| &p.company).collect();
            prop_assert!(companies.len() < 2 || companies[0] != companies[1], "two proposals at one company");
        }
    }

    #[test]
    fn the_same_round_in_any_order_gives_the_same_outcome(input in small_round(7, 5, 2), seed in any::<u64>()) {
        let first = stagepact_matching::run(&input).expect("a valid round");
        prop_assert_eq!(&first, &stagepact_matching::run(&input).expect("a valid round"), "deterministic");
        // Reverse and rotate both lists by the seed.
        let mut shuffled = input.clone();
        shuffled.students.reverse();
        shuffled.offers.reverse();
        if !shuffled.students.is_empty() {
            let by = seed as usize % shuffled.students.len();
            shuffled.students.rotate_left(by);
        }
        if !shuffled.offers.is_empty() {
            let by = (seed >> 32) as usize % shuffled.offers.len();
            shuffled.offers.rotate_left(by);
        }
        prop_assert_eq!(first, stagepact_matching::run(&shuffled).expect("a valid round"));
    }
}
