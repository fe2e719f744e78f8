//! Builders for hand-written rounds and a strategy for small random ones.

use proptest::prelude::*;
use stagepact_matching::{
    CompanyId, Location, MatchingInput, Offer, OfferId, Settings, Student, StudentId,
};

pub const UTRECHT: Location = Location { lat: 52.0907, lon: 5.1214 };
pub const AMERSFOORT: Location = Location { lat: 52.1561, lon: 5.3878 };
pub const ROTTERDAM: Location = Location { lat: 51.9244, lon: 4.4777 };
pub const ARNHEM: Location = Location { lat: 51.9851, lon: 5.8987 };

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A level-3 student of qualification 25000 in Utrecht, travelling up to 30 km.
pub fn student(id: &str) -> Student {
    Student {
        id: StudentId::from(id),
        qualification: "25000".into(),
        level: 3,
        learning_goals: strings(&["programmeren", "testen"]),
        competences: strings(&["samenwerken"]),
        sectors: strings(&["softwareontwikkeling"]),
        region: "Utrecht".into(),
        location: Some(UTRECHT),
        max_travel_km: Some(30),
        excluded_companies: Vec::new(),
    }
}

/// A one-slot offer for qualification 25000 at levels 3 and 4 in Utrecht.
pub fn offer(id: &str, company: &str) -> Offer {
    Offer {
        id: OfferId::from(id),
        company: CompanyId::from(company),
        qualification: "25000".into(),
        levels: vec![3, 4],
        slots: 1,
        learning_opportunities: strings(&["programmeren", "testen", "samenwerken"]),
        sector: "softwareontwikkeling".into(),
        region: "Utrecht".into(),
        location: Some(UTRECHT),
    }
}

pub fn round(students: Vec<Student>, offers: Vec<Offer>) -> MatchingInput {
    MatchingInput { students, offers, settings: Settings::default() }
}

const TERMS: [&str; 4] = ["a", "b", "c", "d"];
const PLACES: [Location; 4] = [UTRECHT, AMERSFOORT, ROTTERDAM, ARNHEM];

fn subset(mask: u8, from: &[&str]) -> Vec<String> {
    from.iter()
        .enumerate()
        .filter(|(k, _)| mask & (1 << k) != 0)
        .map(|(_, s)| (*s).to_owned())
        .collect()
}

/// A small random round: two qualifications, four places 0-100 km apart,
/// with and without locations and travel limits, so that every eligibility
/// rule both admits and excludes pairs.
pub fn small_round(
    students: usize,
    offers: usize,
    max_slots: u32,
) -> impl Strategy<Value = MatchingInput> {
    // Dense enough that most rounds have several candidates per student and
    // compete for slots: mostly one qualification and level 3, many
    // near places.
    let student = (
        prop_oneof![9 => Just(0u8), 1 => Just(1u8)],
        prop_oneof![3 => Just(3u8), 1 => 1..=4u8],
        any::<u8>(),
        any::<u8>(),
        0..3u8,
        0..2u8,
        prop::option::weighted(0.85, prop::sample::select(vec![0usize, 0, 1, 1, 2, 3])),
        prop::option::weighted(0.8, prop::sample::select(vec![20u32, 30, 45, 80])),
    );
    let offer = (
        0..3u8,
        prop_oneof![9 => Just(0u8), 1 => Just(1u8)],
        (0..16u8, prop::bool::weighted(0.8))
            .prop_map(|(mask, three)| if three || mask == 0 { mask | 0b100 } else { mask }),
        prop_oneof![1 => Just(0), 4 => 1..=max_slots],
        any::<u8>(),
        0..2u8,
        0..2u8,
        prop::option::weighted(0.85, prop::sample::select(vec![0usize, 0, 1, 1, 2, 3])),
    );
    (
        prop::collection::vec(student, students / 2..=students),
        prop::collection::vec(offer, offers / 2..=offers),
    )
        .prop_map(|(students, offers)| MatchingInput {
            students: students
                .into_iter()
                .enumerate()
                .map(|(n, (q, level, goals, competences, sectors, region, place, travel))| {
                    Student {
                        id: StudentId(format!("s{n}")),
                        qualification: format!("q{q}"),
                        level,
                        learning_goals: subset(goals, &TERMS),
                        competences: subset(competences, &TERMS),
                        sectors: subset(sectors, &["x", "y"]),
                        region: format!("r{region}"),
                        location: place.map(|p| PLACES[p]),
                        max_travel_km: travel,
                        excluded_companies: Vec::new(),
                    }
                })
                .collect(),
            offers: offers
                .into_iter()
                .enumerate()
                .map(|(n, (company, q, levels, slots, opportunities, sector, region, place))| {
                    Offer {
                        id: OfferId(format!("o{n}")),
                        company: CompanyId(format!("c{company}")),
                        qualification: format!("q{q}"),
                        levels: (1..=4).filter(|l| levels & (1 << (l - 1)) != 0).collect(),
                        slots,
                        learning_opportunities: subset(opportunities, &TERMS),
                        sector: ["x", "y"][sector as usize].to_owned(),
                        region: format!("r{region}"),
                        location: place.map(|p| PLACES[p]),
                    }
                })
                .collect(),
            settings: Settings::default(),
        })
}
