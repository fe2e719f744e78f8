//! M1: only objective criteria decide who may be matched where: the same
//! qualification, an accepted level, and a placement within reach.

use std::collections::BTreeSet;

use proptest::prelude::*;
use stagepact_matching::{
    Instance, Location, MatchingInput, Method, OfferId, StudentId, UnmatchedReason, run,
};

use crate::support::{AMERSFOORT, ARNHEM, ROTTERDAM, offer, round, small_round, student};

/// The haversine distance in metres, written out independently of the engine.
fn haversine_m(a: Location, b: Location) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let (dp, dl) = (p2 - p1, (b.lon - a.lon).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().asin()
}

/// Every eligible pair by the rule's words, comparing all students with all offers.
fn eligible_pairs(input: &MatchingInput) -> BTreeSet<(StudentId, OfferId)> {
    let mut pairs = BTreeSet::new();
    for s in &input.students {
        for o in &input.offers {
            let limit_m =
                f64::from(s.max_travel_km.unwrap_or(input.settings.default_max_travel_km)) * 1000.0;
            let reach = match (s.location, o.location) {
                (Some(a), Some(b)) => haversine_m(a, b) <= limit_m,
                _ => s.region == o.region,
            };
            if o.slots > 0
                && s.qualification == o.qualification
                && o.levels.contains(&s.level)
                && reach
            {
                pairs.insert((s.id.clone(), o.id.clone()));
            }
        }
    }
    pairs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn m1_candidates_are_exactly_the_eligible_pairs(input in small_round(7, 6, 2)) {
        let instance = Instance::new(&input).expect("a valid round");
        let found: BTreeSet<(StudentId, OfferId)> =
            instance.candidates().map(|c| (c.student.clone(), c.offer.clone())).collect();
        prop_assert_eq!(found.len(), instance.candidate_pairs(), "no pair twice");
        prop_assert_eq!(found, eligible_pairs(&input));
    }

    #[test]
    fn m1_ineligible_pairs_are_never_proposed(input in small_round(7, 6, 2)) {
        let eligible = eligible_pairs(&input);
        let instance = Instance::new(&input).expect("a valid round");
        for method in [Method::Optimal, Method::Greedy] {
            for p in instance.outcome(&instance.solve(method)).proposals {
                prop_assert!(eligible.contains(&(p.student.clone(), p.offer.clone())), "{:?}", p);
            }
        }
    }
}

#[test]
fn m1_another_qualification_is_not_eligible() {
    let mut other = offer("o1", "c1");
    other.qualification = "25007".into();
    let outcome = run(&round(vec![student("s1")], vec![other])).expect("a valid round");
    assert!(outcome.proposals.is_empty());
    assert_eq!(outcome.unmatched[0].reason, UnmatchedReason::NoOfferForQualification);
}

#[test]
fn m1_a_level_the_offer_does_not_accept_is_not_eligible() {
    let mut higher = offer("o1", "c1");
    higher.levels = vec![4];
    let outcome = run(&round(vec![student("s1")], vec![higher])).expect("a valid round");
    assert!(outcome.proposals.is_empty());
    assert_eq!(outcome.unmatched[0].reason, UnmatchedReason::NoOfferAtLevel);
}

#[test]
fn m1_beyond_the_travel_limit_is_not_eligible() {
    // Utrecht to Amersfoort is about 20 km, to Rotterdam about 47 km.
    let (mut near, mut far) = (offer("o1", "c1"), offer("o2", "c2"));
    near.location = Some(AMERSFOORT);
    far.location = Some(ROTTERDAM);
    let mut s = student("s1");
    s.max_travel_km = Some(25);
    let instance = Instance::new(&round(vec![s.clone()], vec![near.clone(), far.clone()]))
        .expect("a valid round");
    let offers: Vec<&OfferId> = instance.candidates().map(|c| c.offer).collect();
    assert_eq!(offers, [&OfferId::from("o1")]);

    s.max_travel_km = Some(10);
    let outcome = run(&round(vec![s.clone()], vec![near, far])).expect("a valid round");
    assert_eq!(outcome.unmatched[0].reason, UnmatchedReason::NoOfferWithinReach);
}

#[test]
fn m1_without_a_travel_limit_the_round_default_applies() {
    // Utrecht to Arnhem is about 54 km; the default is 40.
    let mut far = offer("o1", "c1");
    far.location = Some(ARNHEM);
    let mut s = student("s1");
    s.max_travel_km = None;
    let mut input = round(vec![s], vec![far]);
    assert!(run(&input).expect("a valid round").proposals.is_empty());
    input.settings.default_max_travel_km = 60;
    assert_eq!(run(&input).expect("a valid round").proposals.len(), 1);
}

#[test]
fn m1_without_a_location_the_region_decides() {
    let mut s = student("s1");
    s.location = None;
    let mut same = offer("o1", "c1");
    same.location = Some(ROTTERDAM); // far, but the same region and no distance to measure
    let mut other = offer("o2", "c2");
    other.region = "Amersfoort".into();
    other.location = Some(AMERSFOORT);
    let instance = Instance::new(&round(vec![s], vec![same, other])).expect("a valid round");
    let offers: Vec<&OfferId> = instance.candidates().map(|c| c.offer).collect();
    assert_eq!(offers, [&OfferId::from("o1")]);
}

#[test]
fn s1_an_offer_without_free_slots_takes_no_one() {
    let mut full = offer("o1", "c1");
    full.slots = 0;
    let outcome = run(&round(vec![student("s1")], vec![full])).expect("a valid round");
    assert!(outcome.proposals.is_empty());
}

#[test]
fn m1_reach_is_measured_across_the_antimeridian_and_near_the_poles() {
    let at = |lat: f64, lon: f64| Some(Location { lat, lon });
    let mut s = student("s1");
    s.location = at(0.0, 179.9);
    let mut across = offer("o1", "c1");
    across.location = at(0.0, -179.9); // about 22 km away
    let mut north = student("s2");
    north.location = at(89.9, 0.0);
    let mut pole = offer("o2", "c2");
    pole.location = at(89.95, 120.0); // about 10 km away
    let input = round(vec![s, north], vec![across, pole]);
    let instance = Instance::new(&input).expect("a valid round");
    let found: BTreeSet<(StudentId, OfferId)> =
        instance.candidates().map(|c| (c.student.clone(), c.offer.clone())).collect();
    assert_eq!(found, eligible_pairs(&input));
    assert_eq!(found.len(), 2);
}

#[test]
fn m3_a_company_objected_to_before_is_not_proposed_again() {
    let (objected, other) = (offer("o1", "c1"), offer("o2", "c2"));
    let mut s = student("s1");
    s.excluded_companies = vec!["c1".into()];
    let outcome =
        run(&round(vec![s.clone()], vec![objected.clone(), other])).expect("a valid round");
    let offers: Vec<&OfferId> = outcome.proposals.iter().map(|p| &p.offer).collect();
    assert_eq!(offers, [&OfferId::from("o2")]);

    let outcome = run(&round(vec![s], vec![objected])).expect("a valid round");
    assert!(outcome.proposals.is_empty());
    assert_eq!(outcome.unmatched[0].reason, UnmatchedReason::OnlyObjectedCompanies);
}
