//! Hand-made rounds: what is proposed, the explanation of each proposal, the
//! reasons for the unmatched, the metrics, the two-and-two variant, refusals.

use stagepact_matching::{
    FitWeights, InputError, Instance, Location, Method, OfferId, StudentId, UnmatchedReason,
    Variant, distance_m, run,
};

use crate::support::{AMERSFOORT, UTRECHT, offer, round, student};

fn pairs(outcome: &stagepact_matching::MatchingOutcome) -> Vec<(&str, &str)> {
    outcome.proposals.iter().map(|p| (p.student.0.as_str(), p.offer.0.as_str())).collect()
}

#[test]
fn placing_more_students_comes_before_a_better_fit() {
    // s1 fits o1 best but can also go to o2 in Amersfoort; s2 reaches only o1.
    let mut far = offer("o2", "c2");
    far.location = Some(AMERSFOORT);
    far.learning_opportunities = vec![];
    let mut s2 = student("s2");
    s2.max_travel_km = Some(10);
    let input = round(vec![student("s1"), s2], vec![offer("o1", "c1"), far]);
    let outcome = run(&input).expect("a valid round");
    assert_eq!(pairs(&outcome), [("s1", "o2"), ("s2", "o1")]);
    assert_eq!(outcome.metrics.matched_students, 2);
    assert_eq!(outcome.metrics.matched_share, 1.0);
}

#[test]
fn an_over_subscribed_offer_goes_to_the_best_fit() {
    let mut weaker = student("s1");
    weaker.learning_goals = vec!["boekhouden".into()];
    let outcome =
        run(&round(vec![weaker, student("s2")], vec![offer("o1", "c1")])).expect("a valid round");
    assert_eq!(pairs(&outcome), [("s2", "o1")]);
    assert_eq!(outcome.unmatched.len(), 1);
    assert_eq!(outcome.unmatched[0].student, StudentId::from("s1"));
    assert_eq!(outcome.unmatched[0].reason, UnmatchedReason::SlotsTaken);
    assert_eq!(outcome.metrics.slots_left, 0);
}

#[test]
fn ties_are_broken_by_id() {
    // Two identical students, one slot: the lower id. One student, two
    // identical offers: the lower id.
    let outcome = run(&round(vec![student("s2"), student("s1")], vec![offer("o1", "c1")]))
        .expect("a valid round");
    assert_eq!(pairs(&outcome), [("s1", "o1")]);
    let outcome = run(&round(vec![student("s1")], vec![offer("o2", "c2"), offer("o1", "c1")]))
        .expect("a valid round");
    assert_eq!(pairs(&outcome), [("s1", "o1")]);
}

#[test]
fn m1_the_explanation_gives_each_criterion_and_its_points() {
    let mut amersfoort = offer("o1", "c1");
    amersfoort.location = Some(AMERSFOORT);
    amersfoort.learning_opportunities = vec!["programmeren".into(), "samenwerken".into()];
    let outcome = run(&round(vec![student("s1")], vec![amersfoort])).expect("a valid round");
    let proposal = &outcome.proposals[0];
    let e = &proposal.explanation;
    assert_eq!((e.qualification.as_str(), e.level), ("25000", 3));
    assert_eq!(e.learning_goals.matched, ["programmeren"]);
    assert_eq!(
        (e.learning_goals.of, e.learning_goals.weight, e.learning_goals.points),
        (2, 400, 200)
    );
    assert_eq!(e.competences.matched, ["samenwerken"]);
    assert_eq!((e.competences.of, e.competences.points), (1, 200));
    assert!(e.sector.wished);
    assert_eq!(e.sector.points, 200);
    let d = distance_m(UTRECHT, AMERSFOORT);
    assert_eq!(e.distance.distance_m, Some(d));
    assert_eq!(e.distance.limit_m, 30_000);
    assert_eq!(u32::from(e.distance.points), 200 * (30_000 - d) / 30_000);
    assert_eq!(proposal.fit, 600 + u32::from(e.distance.points));
    assert_eq!(proposal.fit, e.fit());
    assert_eq!(proposal.company.0, "c1");
}

#[test]
fn m1_weights_are_the_rounds_choice() {
    let mut input = round(vec![student("s1")], vec![offer("o1", "c1")]);
    input.settings.weights =
        FitWeights { learning_goals: 1000, competences: 0, sector: 0, distance: 0 };
    let outcome = run(&input).expect("a valid round");
    assert_eq!(outcome.proposals[0].fit, 1000);
    assert_eq!(outcome.metrics.mean_fit, 1000.0);
}

#[test]
fn blocking_pairs_count_a_student_and_offer_that_prefer_each_other() {
    // As in the first test, but s2 fits o1 worse than s1 does: placing both
    // leaves s1 and o1 preferring each other.
    let mut far = offer("o2", "c2");
    far.location = Some(AMERSFOORT);
    far.learning_opportunities = vec![];
    let mut s2 = student("s2");
    s2.max_travel_km = Some(10);
    s2.learning_goals = vec!["boekhouden".into()];
    let instance = Instance::new(&round(vec![student("s1"), s2], vec![offer("o1", "c1"), far]))
        .expect("a valid round");
    let outcome = instance.outcome(&instance.solve(Method::Optimal));
    assert_eq!(outcome.metrics.matched_students, 2);
    assert_eq!(outcome.metrics.blocking_pairs, 1);
}

#[test]
fn greedy_lets_students_with_fewest_options_choose_first() {
    let mut far = offer("o2", "c2");
    far.location = Some(AMERSFOORT);
    let mut s2 = student("s2");
    s2.max_travel_km = Some(10);
    let instance = Instance::new(&round(vec![student("s1"), s2], vec![offer("o1", "c1"), far]))
        .expect("a valid round");
    let greedy = instance.outcome(&instance.solve(Method::Greedy));
    assert_eq!(pairs(&greedy), [("s1", "o2"), ("s2", "o1")]);
}

#[test]
fn m4_two_and_two_proposes_two_companies_per_student() {
    let mut worse = offer("o2", "c1");
    worse.learning_opportunities = vec![];
    let mut input = round(vec![student("s1")], vec![offer("o1", "c1"), worse, offer("o3", "c2")]);
    input.settings.variant = Variant::TwoAndTwo;
    let outcome = run(&input).expect("a valid round");
    assert_eq!(pairs(&outcome), [("s1", "o1"), ("s1", "o3")]);
}

#[test]
fn m4_two_and_two_proposes_two_students_per_slot() {
    let mut input =
        round(vec![student("s1"), student("s2"), student("s3")], vec![offer("o1", "c1")]);
    input.settings.variant = Variant::TwoAndTwo;
    let outcome = run(&input).expect("a valid round");
    assert_eq!(pairs(&outcome), [("s1", "o1"), ("s2", "o1")]);
    assert_eq!(outcome.metrics.slots_left, 0);
}

#[test]
fn refusals_name_what_is_wrong() {
    let twice = round(vec![student("s1"), student("s1")], vec![]);
    assert_eq!(run(&twice).err(), Some(InputError::DuplicateStudent(StudentId::from("s1"))));
    let twice = round(vec![], vec![offer("o1", "c1"), offer("o1", "c2")]);
    assert_eq!(run(&twice).err(), Some(InputError::DuplicateOffer(OfferId::from("o1"))));
    let mut s = student("s1");
    s.level = 5;
    assert_eq!(
        run(&round(vec![s], vec![])).err(),
        Some(InputError::StudentLevel(StudentId::from("s1")))
    );
    let mut o = offer("o1", "c1");
    o.levels = vec![0];
    assert_eq!(
        run(&round(vec![], vec![o])).err(),
        Some(InputError::OfferLevel(OfferId::from("o1")))
    );
    let mut s = student("s1");
    s.location = Some(Location { lat: 91.0, lon: 0.0 });
    assert!(matches!(run(&round(vec![s], vec![])), Err(InputError::StudentLocation(_))));
    let mut o = offer("o1", "c1");
    o.location = Some(Location { lat: 0.0, lon: f64::NAN });
    assert!(matches!(run(&round(vec![], vec![o])), Err(InputError::OfferLocation(_))));
    let mut input = round(vec![], vec![]);
    input.settings.weights.distance = 0;
    assert_eq!(run(&input).err(), Some(InputError::Weights(800)));
}

#[test]
fn an_empty_round_has_empty_metrics() {
    let outcome = run(&round(vec![], vec![])).expect("a valid round");
    assert!(outcome.proposals.is_empty() && outcome.unmatched.is_empty());
    assert_eq!((outcome.metrics.matched_share, outcome.metrics.mean_fit), (0.0, 0.0));
}
