//! Seeded synthetic rounds for tests and the benchmark: students and offers
//! drawn from fixed vocabularies (regions with coordinates, fields with
//! sectors and learning terms, qualifications with levels), with more people
//! where the cities are, popular and less popular qualifications, and supply
//! that does not quite follow demand. The same scenario and seed always give
//! the same round: a home-made SplitMix64, no clock, no platform randomness
//! (only `powf` and `cos`, for weights and map offsets, come from the
//! platform's maths library).

mod vocab;

use vocab::{FIELDS, GENERIC_TERMS, QUALIFICATIONS_PER_FIELD, REGIONS, SCHOOL_REGIONS};

use crate::model::{
    CompanyId, Location, MatchingInput, Offer, OfferId, Settings, Student, StudentId,
};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// How many students.
    pub students: usize,
    /// How many offers.
    pub offers: usize,
    /// How many slots the offers have together (at least one each).
    pub slots: u64,
    /// Where students and offers are.
    pub area: Area,
    /// The seed; the same seed gives the same round.
    pub seed: u64,
}

/// Where a scenario takes place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// One large school in Utrecht: its students and the offers around it, in
    /// the 40 qualifications it teaches.
    School,
    /// The whole country, all 120 qualifications.
    Country,
}

impl Scenario {
    /// One school: 5,000 students, 3,000 offers with 5,500 slots.
    pub fn school(seed: u64) -> Self {
        Self { students: 5_000, offers: 3_000, slots: 5_500, area: Area::School, seed }
    }

    /// The whole country: 100,000 students, 50,000 offers with 120,000 slots.
    pub fn country(seed: u64) -> Self {
        Self { students: 100_000, offers: 50_000, slots: 120_000, area: Area::Country, seed }
    }
}

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Roughly standard normal (Irwin–Hall of four uniforms: no transcendental
    /// functions, so the same bits on every platform).
    fn normal(&mut self) -> f64 {
        let sum: f64 = (0..4).map(|_| self.unit()).sum();
        (sum - 2.0) * 3f64.sqrt()
    }

    /// An index drawn with the weights whose running totals are given.
    fn pick(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        let target = self.unit() * total;
        cumulative.partition_point(|&c| c <= target).min(cumulative.len() - 1)
    }

    /// `count` distinct items of `from` (fewer if it is shorter).
    fn some<'a>(&mut self, from: &[&'a str], count: usize) -> Vec<&'a str> {
        let mut pool: Vec<&str> = from.to_vec();
        let count = count.min(pool.len());
        for at in 0..count {
            let other = at + self.below(pool.len() - at);
            pool.swap(at, other);
        }
        pool.truncate(count);
        pool
    }
}

fn running_totals(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    weights
        .scan(0.0, |total, w| {
            *total += w;
            Some(*total)
        })
        .collect()
}

/// A synthetic qualification.
struct Qualification {
    crebo: String,
    field: usize,
    levels: &'static [u8],
    terms: Vec<&'static str>,
}

/// The catalogue: ten qualifications per field, each with its own terms.
fn catalogue(rng: &mut Rng) -> Vec<Qualification> {
    const LEVELS: [&[u8]; QUALIFICATIONS_PER_FIELD] =
        [&[2], &[3], &[4], &[3, 4], &[2], &[3], &[4], &[3, 4], &[1], &[2, 3]];
    let mut all = Vec::new();
    for (field, f) in FIELDS.iter().enumerate() {
        for (k, levels) in LEVELS.iter().enumerate() {
            all.push(Qualification {
                crebo: format!("{}", 25_000 + field * 100 + k * 7),
                field,
                levels,
                terms: rng.some(f.terms, 9),
            });
        }
    }
    all
}

/// A point around a region's centre; bigger places spread wider.
fn around(rng: &mut Rng, region: &vocab::Region) -> Location {
    let spread_km = 3.0 + f64::from(region.size).sqrt() * 0.3;
    let (north, east) = (rng.normal() * spread_km, rng.normal() * spread_km);
    Location {
        lat: region.lat + north / 111.2,
        lon: region.lon + east / (111.2 * region.lat.to_radians().cos()),
    }
}

/// Generates a round.
pub fn generate(scenario: &Scenario) -> MatchingInput {
    let mut rng = Rng(scenario.seed);
    let catalogue = catalogue(&mut rng);
    // Which qualifications are in play, and how popular each is (Zipf-like).
    let mut order: Vec<usize> = (0..catalogue.len()).collect();
    for at in 0..order.len() {
        let other = at + rng.below(order.len() - at);
        order.swap(at, other);
    }
    if scenario.area == Area::School {
        order.truncate(40);
    }
    let popularity: Vec<f64> =
        (0..order.len()).map(|rank| 1.0 / ((rank + 1) as f64).powf(0.6)).collect();
    // Supply does not follow demand: some qualifications are short of offers.
    let supply: Vec<f64> = popularity.iter().map(|p| p * (0.6 + 0.9 * rng.unit())).collect();
    let demand_totals = running_totals(popularity.iter().copied());
    let supply_totals = running_totals(supply.iter().copied());

    let regions: Vec<&vocab::Region> = match scenario.area {
        Area::Country => REGIONS.iter().collect(),
        Area::School => REGIONS.iter().filter(|r| SCHOOL_REGIONS.contains(&r.name)).collect(),
    };
    let student_regions = running_totals(regions.iter().map(|r| f64::from(r.size)));
    // Companies cluster in the larger places a little more than people do.
    let offer_regions = running_totals(regions.iter().map(|r| f64::from(r.size).powf(1.1)));
    let travel_km = [15, 20, 30, 45, 60];
    let travel_totals = running_totals([10.0, 20.0, 35.0, 25.0, 10.0].into_iter());

    let mut students = Vec::with_capacity(scenario.students);
    for n in 0..scenario.students {
        let q = &catalogue[order[rng.pick(&demand_totals)]];
        let field = &FIELDS[q.field];
        let region = regions[rng.pick(&student_regions)];
        let mut own: Vec<&str> = q.terms.clone();
        own.extend_from_slice(GENERIC_TERMS);
        let sectors = match rng.below(10) {
            0 => 0,
            1..=6 => 1,
            _ => 2,
        };
        let goals = 3 + rng.below(3);
        let competences = 2 + rng.below(3);
        students.push(Student {
            id: StudentId(format!("s{n:06}")),
            qualification: q.crebo.clone(),
            level: q.levels[rng.below(q.levels.len())],
            learning_goals: rng.some(&q.terms, goals).into_iter().map(str::to_owned).collect(),
            competences: rng.some(&own, competences).into_iter().map(str::to_owned).collect(),
            sectors: rng.some(field.sectors, sectors).into_iter().map(str::to_owned).collect(),
            region: region.name.to_owned(),
            location: (!rng.chance(0.05)).then(|| around(&mut rng, region)),
            max_travel_km: (!rng.chance(0.05)).then(|| travel_km[rng.pick(&travel_totals)]),
            excluded_companies: Vec::new(),
        });
    }

    let mut offers: Vec<Offer> = Vec::with_capacity(scenario.offers);
    let mut companies = 0usize;
    for n in 0..scenario.offers {
        // A third of offers come from a company that already has one: same
        // place, same field.
        let again = n > 0 && rng.chance(0.3);
        let (company, region, location, field) = match offers.last() {
            Some(last) if again => {
                let field =
                    catalogue.iter().find(|q| q.crebo == last.qualification).map_or(0, |q| q.field);
                (last.company.clone(), last.region.clone(), last.location, Some(field))
            }
            _ => {
                companies += 1;
                let region = regions[rng.pick(&offer_regions)];
                let location = (!rng.chance(0.03)).then(|| around(&mut rng, region));
                (CompanyId(format!("c{companies:06}")), region.name.to_owned(), location, None)
            }
        };
        let q = loop {
            let q = &catalogue[order[rng.pick(&supply_totals)]];
            if field.is_none_or(|f| f == q.field) {
                break q;
            }
        };
        let levels = if q.levels.len() > 1 && rng.chance(0.3) {
            vec![q.levels[rng.below(q.levels.len())]]
        } else {
            q.levels.to_vec()
        };
        let mut offered: Vec<&str> = q.terms.clone();
        offered.extend_from_slice(&GENERIC_TERMS[..4]);
        let opportunities = 5 + rng.below(5);
        let f = &FIELDS[q.field];
        offers.push(Offer {
            id: OfferId(format!("o{n:06}")),
            company,
            qualification: q.crebo.clone(),
            levels,
            slots: 1,
            learning_opportunities: rng
                .some(&offered, opportunities)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            sector: f.sectors[rng.below(f.sectors.len())].to_owned(),
            region,
            location,
        });
    }
    // The slots beyond one each go mostly to larger companies.
    let sizes: Vec<f64> = (0..offers.len())
        .map(|_| match rng.below(100) {
            0..=54 => 1.0,
            55..=79 => 2.0,
            80..=91 => 4.0,
            _ => 10.0,
        })
        .collect();
    let size_totals = running_totals(sizes.into_iter());
    let extra = scenario.slots.saturating_sub(offers.len() as u64);
    if !offers.is_empty() {
        for _ in 0..extra {
            let at = rng.pick(&size_totals);
            offers[at].slots += 1;
        }
    }
    MatchingInput { students, offers, settings: Settings::default() }
}
