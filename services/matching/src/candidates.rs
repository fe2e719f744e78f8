//! Eligibility (M1's objective criteria: same qualification, level accepted,
//! within the student's travel limit) and the sparse candidate graph: offers are
//! indexed by qualification and a grid of cells on the map, so a student is only
//! ever compared with the offers of their qualification near them, never with
//! the whole country.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fit;
use crate::geo::{self, Point};
use crate::intern::{InputError, Interned};
use crate::model::Variant;
use crate::outcome::UnmatchedReason;

/// Grid cell size in degrees: about 14 km north-south, 8.5 km east-west in the
/// Netherlands, so a 30 km reach spans some 6 × 9 cells, a box not much
/// larger than the circle it holds.
const CELL_DEG: f64 = 0.125;
const LAT_CELLS: u32 = (180.0 / CELL_DEG) as u32;
const LON_CELLS: u32 = (360.0 / CELL_DEG) as u32;
/// Metres per degree of latitude (and of longitude at the equator).
const M_PER_DEG: f64 = geo::EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

/// Every eligible pair with its fit, by student (sorted by offer).
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    /// Where each student's candidates start in `offer` and `fit`.
    pub start: Vec<u32>,
    /// The offer of each pair.
    pub offer: Vec<u32>,
    /// The fit of each pair, in thousandths.
    pub fit: Vec<u16>,
    /// For students without any candidate, why.
    pub none: Vec<Option<UnmatchedReason>>,
}

impl Candidates {
    /// The pairs of a student, as a range of pair indices.
    pub(crate) fn of(&self, student: usize) -> Range<usize> {
        self.start[student] as usize..self.start[student + 1] as usize
    }
}

fn cell_of(degrees: f64, offset: f64, cells: u32) -> u32 {
    // Clamped into the grid: the float-to-int cast saturates and NaN is refused earlier.
    (((degrees + offset) / CELL_DEG).floor() as u32).min(cells - 1)
}

fn grid_key(qualification: u32, row: u32, column: u32) -> u64 {
    (u64::from(qualification) << 32) | (u64::from(row) << 16) | u64::from(column)
}

fn region_key(qualification: u32, region: u32) -> u64 {
    (u64::from(qualification) << 32) | u64::from(region)
}

/// The entries of a sorted index whose keys lie in `lo..=hi`.
fn entries(index: &[(u64, u32)], lo: u64, hi: u64) -> &[(u64, u32)] {
    let from = index.partition_point(|&(key, _)| key < lo);
    let to = index.partition_point(|&(key, _)| key <= hi);
    &index[from..to.max(from)]
}

/// A located offer as the grid holds it: what the eligibility check reads,
/// side by side, so scanning a cell reads memory in order.
#[derive(Debug, Clone, Copy)]
struct Located {
    point: Point,
    offer: u32,
    levels: u8,
}

/// Offers with free slots, indexed for lookups by student.
struct Index {
    /// The (qualification, grid row, grid column) key of each `grid` entry, sorted.
    grid_keys: Vec<u64>,
    /// Offers with a location, in key order.
    grid: Vec<Located>,
    /// Offers without a location, by (qualification, region).
    unlocated: Vec<(u64, u32)>,
    /// All offers, by (qualification, region).
    by_region: Vec<(u64, u32)>,
    /// Per qualification: which levels any offer accepts (bit 0: there is an offer).
    levels: Vec<u8>,
}

impl Index {
    fn new(data: &Interned) -> Self {
        let o = &data.offers;
        let mut grid: Vec<(u64, Located)> = Vec::new();
        let mut index = Index {
            grid_keys: Vec::new(),
            grid: Vec::new(),
            unlocated: Vec::new(),
            by_region: Vec::new(),
            levels: vec![0; data.vocabulary.qualifications.len()],
        };
        for offer in 0..o.len() {
            if o.slots[offer] == 0 {
                continue;
            }
            let (q, id) = (o.qualification[offer], offer as u32);
            index.levels[q as usize] |= o.levels[offer] | 1;
            index.by_region.push((region_key(q, o.region[offer]), id));
            match (o.location[offer], o.point[offer]) {
                (Some(location), Some(point)) => {
                    let row = cell_of(location.lat, 90.0, LAT_CELLS);
                    let column = cell_of(location.lon, 180.0, LON_CELLS);
                    let entry = Located { point, offer: id, levels: o.levels[offer] };
                    grid.push((grid_key(q, row, column), entry));
                }
                _ => index.unlocated.push((region_key(q, o.region[offer]), id)),
            }
        }
        grid.sort_unstable_by_key(|&(key, entry)| (key, entry.offer));
        index.grid_keys = grid.iter().map(|&(key, _)| key).collect();
        index.grid = grid.into_iter().map(|(_, entry)| entry).collect();
        for list in [&mut index.unlocated, &mut index.by_region] {
            list.sort_unstable();
        }
        index
    }

    /// The `grid` range of keys `lo..=hi`.
    fn cells(&self, lo: u64, hi: u64) -> Range<usize> {
        let from = self.grid_keys.partition_point(|&key| key < lo);
        let to = self.grid_keys.partition_point(|&key| key <= hi);
        from..to.max(from)
    }

    /// The ranges of `grid` holding the located offers of a qualification in
    /// cells that may lie within `limit_m` of `(lat, lon)`: a box of cells, or
    /// every cell of the qualification where a box would wrap around a pole
    /// or the antimeridian.
    fn near(&self, q: u32, lat: f64, lon: f64, limit_m: u32, out: &mut Vec<Range<usize>>) {
        // 1% wider than the exact bound: the cells are only a pre-filter.
        let dlat = f64::from(limit_m) / M_PER_DEG * 1.01 + 1e-9;
        let widest = lat.abs() + dlat;
        let dlon = if widest < 89.0 { dlat / widest.to_radians().cos() } else { 360.0 };
        if lon - dlon < -180.0 || lon + dlon > 180.0 {
            out.push(self.cells(grid_key(q, 0, 0), grid_key(q, u32::MAX >> 16, u32::MAX >> 16)));
            return;
        }
        let (row_lo, row_hi) =
            (cell_of(lat - dlat, 90.0, LAT_CELLS), cell_of(lat + dlat, 90.0, LAT_CELLS));
        let (col_lo, col_hi) =
            (cell_of(lon - dlon, 180.0, LON_CELLS), cell_of(lon + dlon, 180.0, LON_CELLS));
        for row in row_lo..=row_hi {
            out.push(self.cells(grid_key(q, row, col_lo), grid_key(q, row, col_hi)));
        }
    }
}

/// Learning terms as bits, per qualification: when the offers of a
/// qualification list at most 128 distinct terms, each gets a bit, and
/// matching a student's goals and competences against an offer is an AND and a
/// popcount each instead of two list merges, on every one of millions of pairs.
struct TermBits {
    /// Per qualification, the sorted terms its offers list, if at most 128.
    terms: Vec<Option<Vec<u32>>>,
    /// Per offer, its learning opportunities as bits (0 if its qualification
    /// has too many terms).
    offer: Vec<u128>,
}

impl TermBits {
    fn new(data: &Interned) -> Self {
        let o = &data.offers;
        let mut terms: Vec<Vec<u32>> = vec![Vec::new(); data.vocabulary.qualifications.len()];
        for offer in 0..o.len() {
            terms[o.qualification[offer] as usize].extend_from_slice(o.opportunities.get(offer));
        }
        let terms: Vec<Option<Vec<u32>>> = terms
            .into_iter()
            .map(|mut list| {
                list.sort_unstable();
                list.dedup();
                (list.len() <= 128).then_some(list)
            })
            .collect();
        let mut bits = TermBits { offer: vec![0; o.len()], terms };
        for offer in 0..o.len() {
            let q = o.qualification[offer] as usize;
            bits.offer[offer] = bits.of(q, o.opportunities.get(offer)).unwrap_or(0);
        }
        bits
    }

    /// The bits of a list of terms in a qualification's space; None if the
    /// qualification has too many terms. Terms no offer lists get no bit.
    fn of(&self, qualification: usize, list: &[u32]) -> Option<u128> {
        let terms = self.terms.get(qualification)?.as_ref()?;
        Some(list.iter().filter_map(|t| terms.binary_search(t).ok()).fold(0, |b, at| b | 1 << at))
    }
}

/// What the per-student work shares.
struct Context<'a> {
    data: &'a Interned,
    index: Index,
    bits: TermBits,
}

/// The candidates of a run of students.
#[derive(Default)]
struct Chunk {
    count: Vec<u32>,
    offer: Vec<u32>,
    fit: Vec<u16>,
    none: Vec<Option<UnmatchedReason>>,
}

impl Context<'_> {
    /// Appends a student's eligible offers with their fits to `pairs`, sorted
    /// by offer; if there are none, says why.
    fn student(
        &self,
        student: usize,
        near: &mut Vec<Range<usize>>,
        pairs: &mut Vec<(u32, u16)>,
    ) -> Option<UnmatchedReason> {
        let (data, index, bits) = (self.data, &self.index, &self.bits);
        let (s, o) = (&data.students, &data.offers);
        let (q, level) = (s.qualification[student], 1u8 << s.level[student]);
        let accepts = |offer: u32| o.levels[offer as usize] & level != 0;
        let same_region = region_key(q, s.region[student]);
        let (goals, competences) = (s.goals.get(student), s.competences.get(student));
        let fast = bits.of(q as usize, goals).zip(bits.of(q as usize, competences));
        let limit_m = s.limit_m[student];
        let score = |offer: u32, distance: Option<u32>| -> u16 {
            let at = offer as usize;
            let (goals_matched, competences_matched) = match fast {
                Some((g, c)) => {
                    ((g & bits.offer[at]).count_ones(), (c & bits.offer[at]).count_ones())
                }
                None => return fit::fit(data, student, at, distance),
            };
            let m = fit::Matches {
                goals: (goals_matched, goals.len() as u32),
                competences: (competences_matched, competences.len() as u32),
                sector: s.sectors.get(student).binary_search(&o.sector[at]).is_ok(),
            };
            fit::points(&data.settings.weights, &m, distance, limit_m)
        };
        pairs.clear();
        match (s.point[student], s.location[student]) {
            (Some(point), Some(location)) => {
                let bound = geo::m_to_chord2_bound(limit_m);
                near.clear();
                index.near(q, location.lat, location.lon, limit_m, near);
                for entry in near.iter().flat_map(|cells| &index.grid[cells.clone()]) {
                    if entry.levels & level == 0 {
                        continue;
                    }
                    let chord2 = point.chord2(entry.point);
                    if chord2 > bound {
                        continue;
                    }
                    let distance = geo::chord2_to_m(chord2);
                    if distance <= limit_m {
                        pairs.push((entry.offer, score(entry.offer, Some(distance))));
                    }
                }
                for &(_, offer) in entries(&index.unlocated, same_region, same_region) {
                    if accepts(offer) {
                        pairs.push((offer, score(offer, None)));
                    }
                }
            }
            _ => {
                for &(_, offer) in entries(&index.by_region, same_region, same_region) {
                    if accepts(offer) {
                        pairs.push((offer, score(offer, None)));
                    }
                }
            }
        }
        let excluded = s.excluded.get(student);
        let eligible = pairs.len();
        if !excluded.is_empty() {
            pairs.retain(|&(offer, _)| excluded.binary_search(&o.company[offer as usize]).is_err());
        }
        if data.settings.variant == Variant::TwoAndTwo {
            // M4: two proposals go to two different companies; keep each
            // company's best offer for the student (ties: the lowest offer id).
            pairs.sort_unstable_by_key(|&(offer, fit)| {
                (o.company[offer as usize], u16::MAX - fit, offer)
            });
            pairs.dedup_by_key(|&mut (offer, _)| o.company[offer as usize]);
        }
        pairs.sort_unstable();
        if !pairs.is_empty() {
            return None;
        }
        if eligible > 0 {
            return Some(UnmatchedReason::OnlyObjectedCompanies);
        }
        let levels = index.levels.get(q as usize).copied().unwrap_or(0);
        Some(if levels == 0 {
            UnmatchedReason::NoOfferForQualification
        } else if levels & level == 0 {
            UnmatchedReason::NoOfferAtLevel
        } else {
            UnmatchedReason::NoOfferWithinReach
        })
    }

    fn chunk(&self, students: Range<usize>) -> Chunk {
        let mut chunk = Chunk::default();
        let (mut near, mut pairs) = (Vec::new(), Vec::new());
        for student in students {
            chunk.none.push(self.student(student, &mut near, &mut pairs));
            chunk.count.push(pairs.len() as u32);
            chunk.offer.extend(pairs.iter().map(|&(offer, _)| offer));
            chunk.fit.extend(pairs.iter().map(|&(_, fit)| fit));
        }
        chunk
    }
}

/// Students per unit of work when building on several threads.
const CHUNK: usize = 2048;

/// Builds the candidate graph on up to `threads` threads; the result does not
/// depend on their number.
pub(crate) fn build(data: &Interned, threads: usize) -> Result<Candidates, InputError> {
    let context = Context { data, index: Index::new(data), bits: TermBits::new(data) };
    let students = data.students.len();
    let chunks = students.div_ceil(CHUNK);
    let done: Vec<Mutex<Option<Chunk>>> = (0..chunks).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let at = next.fetch_add(1, Ordering::Relaxed);
            if at >= chunks {
                break;
            }
            let chunk = context.chunk(at * CHUNK..((at + 1) * CHUNK).min(students));
            // Each slot is written once, by the one worker that took its index.
            if let Ok(mut slot) = done[at].lock() {
                *slot = Some(chunk);
            }
        }
    };
    let threads = threads.clamp(1, chunks.max(1));
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
    }
    let mut graph = Candidates { start: Vec::with_capacity(students + 1), ..Candidates::default() };
    graph.start.push(0);
    let mut total = 0u64;
    for slot in done {
        let chunk =
            slot.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()).unwrap_or_default();
        for count in chunk.count {
            total += u64::from(count);
            graph
                .start
                .push(u32::try_from(total).map_err(|_| InputError::TooLarge("candidate pairs"))?);
        }
        graph.offer.extend(chunk.offer);
        graph.fit.extend(chunk.fit);
        graph.none.extend(chunk.none);
    }
    Ok(graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        CompanyId, Location, MatchingInput, Offer, OfferId, Settings, Student, StudentId,
    };

    fn terms(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|n| format!("{prefix}{n}")).collect()
    }

    #[test]
    fn fits_by_bits_equal_fits_by_lists_with_few_or_many_terms() {
        // Qualification "few" lists 20 terms over its offers; "many" lists 300,
        // beyond the 128 bits, so its fits take the list-merging path.
        let here = Location { lat: 52.09, lon: 5.12 };
        let mut students = Vec::new();
        let mut offers = Vec::new();
        for (q, width) in [("few", 20), ("many", 300)] {
            for n in 0..6 {
                let from = n * width / 8;
                students.push(Student {
                    id: StudentId(format!("{q}-s{n}")),
                    qualification: q.into(),
                    level: 3,
                    learning_goals: terms("t", from..from + 4),
                    competences: terms("t", from + 2..from + 5),
                    sectors: vec!["x".into()],
                    region: "r".into(),
                    location: Some(Location { lat: here.lat + 0.01 * n as f64, lon: here.lon }),
                    max_travel_km: Some(30),
                    excluded_companies: Vec::new(),
                });
                offers.push(Offer {
                    id: OfferId(format!("{q}-o{n}")),
                    company: CompanyId(format!("c{n}")),
                    qualification: q.into(),
                    levels: vec![3],
                    slots: 1,
                    learning_opportunities: terms("t", from + 1..from + width / 6),
                    sector: if n % 2 == 0 { "x" } else { "y" }.into(),
                    region: "r".into(),
                    location: (n != 5).then_some(here),
                });
            }
        }
        let data = crate::intern::intern(&MatchingInput {
            students,
            offers,
            settings: Settings::default(),
        })
        .expect("a valid round");
        assert!(
            TermBits::new(&data).terms.iter().any(Option::is_none),
            "one qualification overflows"
        );
        let candidates = build(&data, 1).expect("small");
        assert_eq!(candidates.offer.len(), 72, "every pair of the same qualification");
        let mut nonzero = 0;
        for student in 0..data.students.len() {
            for pair in candidates.of(student) {
                let offer = candidates.offer[pair] as usize;
                let distance = match (data.students.point[student], data.offers.point[offer]) {
                    (Some(a), Some(b)) => Some(geo::chord2_to_m(a.chord2(b))),
                    _ => None,
                };
                assert_eq!(candidates.fit[pair], fit::fit(&data, student, offer, distance));
                nonzero += usize::from(candidates.fit[pair] > 0);
            }
        }
        assert!(nonzero > 36);
    }
}
