//! Fit: how well an eligible offer serves a student's learning wish, in
//! thousandths, and the explanation of each number (M1: only the learning wish,
//! competences and what the company offers count).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::intern::Interned;
use crate::model::FitWeights;

/// Why a proposal was made: the criteria that matched and the points each
/// earned, so a school can show the student and the company why (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explanation {
    /// The qualification (crebo) student and offer share: required.
    pub qualification: String,
    /// The student's level, which the offer accepts: required.
    pub level: u8,
    /// The student's learning goals the offer's learning opportunities cover.
    pub learning_goals: Coverage,
    /// The student's competences the offer's learning opportunities build on.
    pub competences: Coverage,
    /// Whether the offer's sector is one the student wishes.
    pub sector: SectorFit,
    /// How far the placement is, against the student's travel limit: required
    /// to be within it.
    pub distance: DistanceFit,
}

/// A criterion earned in proportion to the share of items matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Coverage {
    /// The student's items the offer matches.
    pub matched: Vec<String>,
    /// How many items the student listed.
    pub of: u32,
    /// The most points the criterion can earn.
    pub weight: u16,
    /// The points earned: `weight × matched / of`, rounded down.
    pub points: u16,
}

/// The sector criterion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SectorFit {
    /// The offer's sector.
    pub sector: String,
    /// Whether the student wishes it.
    pub wished: bool,
    /// The points it can earn.
    pub weight: u16,
    /// The points earned: the weight if wished, else 0.
    pub points: u16,
}

/// The distance criterion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistanceFit {
    /// The great-circle distance in metres; absent when a location is missing,
    /// and the pair then shares a region.
    pub distance_m: Option<u32>,
    /// The student's travel limit, in metres.
    pub limit_m: u32,
    /// The points it can earn.
    pub weight: u16,
    /// The points earned: `weight × (limit − distance) / limit`, rounded down;
    /// half the weight when the distance is unknown.
    pub points: u16,
}

/// How many items of `wanted` are in `offered` (both sorted, deduplicated).
fn matched(wanted: &[u32], offered: &[u32]) -> u32 {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < wanted.len() && j < offered.len() {
        match wanted[i].cmp(&offered[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// `weight × part / whole`, rounded down; 0 for an empty whole.
fn share(weight: u16, part: u32, whole: u32) -> u16 {
    if whole == 0 {
        return 0;
    }
    // part ≤ whole, so the result is at most the weight.
    (u64::from(weight) * u64::from(part) / u64::from(whole)) as u16
}

/// The distance points: what is left of the travel limit, as a share.
fn distance_points(weight: u16, distance_m: Option<u32>, limit_m: u32) -> u16 {
    match distance_m {
        None => weight / 2,
        Some(_) if limit_m == 0 => weight,
        Some(d) => share(weight, limit_m.saturating_sub(d), limit_m),
    }
}

/// What an offer matches of a student's learning wish.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Matches {
    /// Learning goals covered, of how many.
    pub goals: (u32, u32),
    /// Competences built on, of how many.
    pub competences: (u32, u32),
    /// Whether the offer's sector is wished.
    pub sector: bool,
}

/// The fit of matches at a distance, in thousandths (at most 1000).
pub(crate) fn points(w: &FitWeights, m: &Matches, distance_m: Option<u32>, limit_m: u32) -> u16 {
    share(w.learning_goals, m.goals.0, m.goals.1)
        + share(w.competences, m.competences.0, m.competences.1)
        + if m.sector { w.sector } else { 0 }
        + distance_points(w.distance, distance_m, limit_m)
}

/// The fit of an eligible pair, comparing the lists themselves.
pub(crate) fn fit(data: &Interned, student: usize, offer: usize, distance_m: Option<u32>) -> u16 {
    let (s, o) = (&data.students, &data.offers);
    let opportunities = o.opportunities.get(offer);
    let goals = s.goals.get(student);
    let competences = s.competences.get(student);
    let m = Matches {
        goals: (matched(goals, opportunities), goals.len() as u32),
        competences: (matched(competences, opportunities), competences.len() as u32),
        sector: s.sectors.get(student).binary_search(&o.sector[offer]).is_ok(),
    };
    points(&data.settings.weights, &m, distance_m, s.limit_m[student])
}

/// The explanation of an eligible pair's fit.
pub(crate) fn explain(
    data: &Interned,
    student: usize,
    offer: usize,
    distance_m: Option<u32>,
) -> Explanation {
    let w = data.settings.weights;
    let (s, o, v) = (&data.students, &data.offers, &data.vocabulary);
    let opportunities = o.opportunities.get(offer);
    let coverage = |wanted: &[u32], weight: u16| {
        let names: Vec<String> = wanted
            .iter()
            .filter(|term| opportunities.binary_search(term).is_ok())
            .map(|&term| v.terms.name(term).to_owned())
            .collect();
        let of = wanted.len() as u32;
        Coverage { points: share(weight, names.len() as u32, of), matched: names, of, weight }
    };
    let wished = s.sectors.get(student).binary_search(&o.sector[offer]).is_ok();
    Explanation {
        qualification: v.qualifications.name(o.qualification[offer]).to_owned(),
        level: s.level[student],
        learning_goals: coverage(s.goals.get(student), w.learning_goals),
        competences: coverage(s.competences.get(student), w.competences),
        sector: SectorFit {
            sector: v.sectors.name(o.sector[offer]).to_owned(),
            wished,
            weight: w.sector,
            points: if wished { w.sector } else { 0 },
        },
        distance: DistanceFit {
            distance_m,
            limit_m: s.limit_m[student],
            weight: w.distance,
            points: distance_points(w.distance, distance_m, s.limit_m[student]),
        },
    }
}

impl Explanation {
    /// The fit: the points of all criteria together.
    pub fn fit(&self) -> u32 {
        u32::from(self.learning_goals.points)
            + u32::from(self.competences.points)
            + u32::from(self.sector.points)
            + u32::from(self.distance.points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_down_and_never_exceed_the_weight() {
        assert_eq!(share(400, 1, 3), 133);
        assert_eq!(share(400, 3, 3), 400);
        assert_eq!(share(400, 0, 0), 0);
        assert_eq!(distance_points(200, Some(10_000), 40_000), 150);
        assert_eq!(distance_points(200, Some(40_000), 40_000), 0);
        assert_eq!(distance_points(200, None, 40_000), 100);
    }

    #[test]
    fn matched_counts_common_items() {
        assert_eq!(matched(&[1, 3, 5, 7], &[2, 3, 4, 7, 9]), 2);
        assert_eq!(matched(&[], &[1]), 0);
    }
}
