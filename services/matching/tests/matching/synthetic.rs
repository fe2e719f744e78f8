//! The generator: the same scenario and seed always give the same round, and
//! its rounds are what the engine expects.

use stagepact_matching::synthetic::{Area, Scenario, generate};
use stagepact_matching::{Instance, Method};

fn tiny(seed: u64) -> Scenario {
    Scenario { students: 400, offers: 250, slots: 450, area: Area::School, seed }
}

#[test]
fn the_generator_is_seeded_and_deterministic() {
    assert_eq!(generate(&tiny(7)), generate(&tiny(7)));
    assert_ne!(generate(&tiny(7)), generate(&tiny(8)));
}

#[test]
fn generated_rounds_have_the_asked_size_and_are_valid() {
    let input = generate(&tiny(1));
    assert_eq!(input.students.len(), 400);
    assert_eq!(input.offers.len(), 250);
    assert_eq!(input.offers.iter().map(|o| u64::from(o.slots)).sum::<u64>(), 450);
    let instance = Instance::new(&input).expect("a valid round");
    assert!(instance.candidate_pairs() > 400, "students have choices");
    let optimal = instance.outcome(&instance.solve(Method::Optimal)).metrics;
    let greedy = instance.outcome(&instance.solve(Method::Greedy)).metrics;
    assert!(optimal.matched_students >= greedy.matched_students);
    assert!(optimal.matched_students > 250, "{optimal:?}");
    if optimal.matched_students == greedy.matched_students {
        assert!(optimal.total_fit >= greedy.total_fit);
    }
}

#[test]
fn country_rounds_spread_over_the_country() {
    let input = generate(&Scenario {
        students: 300,
        offers: 200,
        slots: 400,
        area: Area::Country,
        seed: 3,
    });
    let regions: std::collections::BTreeSet<&str> =
        input.students.iter().map(|s| s.region.as_str()).collect();
    assert!(regions.len() > 20, "{regions:?}");
}

#[test]
fn the_outcome_does_not_depend_on_the_number_of_threads() {
    // More students than one unit of candidate work, many components.
    let input = generate(&Scenario {
        students: 2_500,
        offers: 1_500,
        slots: 2_800,
        area: Area::School,
        seed: 5,
    });
    let outcome = |threads| {
        let instance = Instance::with_threads(&input, threads).expect("a valid round");
        instance.outcome(&instance.solve(Method::Optimal))
    };
    let one = outcome(1);
    assert_eq!(one, outcome(2));
    assert_eq!(one, outcome(3));
}
