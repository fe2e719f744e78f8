//! The input, checked and interned: ids sorted (ties are broken by them), every
//! vocabulary item (goal, competence, opportunity, sector, qualification,
//! region, company) replaced by a dense integer, lists sorted and deduplicated.
//! Fit is computed on every candidate pair, millions of them nationally:
//! comparing small integers there instead of strings is what makes that cheap,
//! and interning here spares every caller from keeping a vocabulary of its own.

use std::collections::HashMap;

use crate::geo::{self, Point};
use crate::model::{CompanyId, Location, MatchingInput, OfferId, Settings, StudentId};

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Two students share an id.
    #[error("student {0} appears twice")]
    DuplicateStudent(StudentId),
    /// Two offers share an id.
    #[error("offer {0} appears twice")]
    DuplicateOffer(OfferId),
    /// A student's level is not 1-4.
    #[error("student {0}: the level must be 1-4")]
    StudentLevel(StudentId),
    /// An offer accepts a level that is not 1-4.
    #[error("offer {0}: every accepted level must be 1-4")]
    OfferLevel(OfferId),
    /// A student's location is off the globe.
    #[error("student {0}: the location must have lat -90..90 and lon -180..180")]
    StudentLocation(StudentId),
    /// An offer's location is off the globe.
    #[error("offer {0}: the location must have lat -90..90 and lon -180..180")]
    OfferLocation(OfferId),
    /// The fit weights do not add up to 1000.
    #[error("the fit weights must add up to 1000, not {0}")]
    Weights(u32),
    /// More students, offers, slots or candidate pairs than the engine indexes.
    #[error("the round is too large for one run: {0}")]
    TooLarge(&'static str),
}

/// Strings to dense ids, in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    /// The id of a name, new if not seen before.
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        // Fewer distinct names than input items, which are checked to fit in u32.
        let id = self.names.len() as u32;
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        id
    }

    /// The name of an id.
    pub(crate) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// How many distinct names.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// Short lists of ids, one per row, in one allocation.
#[derive(Debug, Default)]
pub(crate) struct Lists {
    start: Vec<u32>,
    items: Vec<u32>,
}

impl Lists {
    fn push(&mut self, interner: &mut Interner, names: &[String]) {
        if self.start.is_empty() {
            self.start.push(0);
        }
        let from = self.items.len();
        self.items.extend(names.iter().map(|name| interner.intern(name)));
        self.items[from..].sort_unstable();
        let mut kept = from;
        for at in from..self.items.len() {
            if kept == from || self.items[kept - 1] != self.items[at] {
                self.items[kept] = self.items[at];
                kept += 1;
            }
        }
        self.items.truncate(kept);
        // Checked against u32 by the caller's size limit on the whole input.
        self.start.push(self.items.len() as u32);
    }

    /// The sorted, deduplicated list of a row.
    pub(crate) fn get(&self, row: usize) -> &[u32] {
        &self.items[self.start[row] as usize..self.start[row + 1] as usize]
    }
}

/// The vocabularies of a round.
#[derive(Debug, Default)]
pub(crate) struct Vocabulary {
    /// Learning goals, competences and learning opportunities: one vocabulary,
    /// because an opportunity covers a goal or competence of the same name.
    pub terms: Interner,
    pub sectors: Interner,
    pub qualifications: Interner,
    pub regions: Interner,
    pub companies: Interner,
}

/// The students, sorted by id, column by column.
#[derive(Debug, Default)]
pub(crate) struct Students {
    pub ids: Vec<StudentId>,
    pub qualification: Vec<u32>,
    pub level: Vec<u8>,
    pub goals: Lists,
    pub competences: Lists,
    pub sectors: Lists,
    pub region: Vec<u32>,
    pub location: Vec<Option<Location>>,
    pub point: Vec<Option<Point>>,
    /// The travel limit, in metres.
    pub limit_m: Vec<u32>,
    /// The companies not to propose, as company ids (M3).
    pub excluded: Lists,
}

impl Students {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The offers, sorted by id, column by column.
#[derive(Debug, Default)]
pub(crate) struct Offers {
    pub ids: Vec<OfferId>,
    pub company: Vec<u32>,
    pub company_ids: Vec<CompanyId>,
    pub qualification: Vec<u32>,
    /// Bit `l` set when level `l` is accepted.
    pub levels: Vec<u8>,
    pub slots: Vec<u32>,
    pub opportunities: Lists,
    pub sector: Vec<u32>,
    pub region: Vec<u32>,
    pub location: Vec<Option<Location>>,
    pub point: Vec<Option<Point>>,
}

impl Offers {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// A checked, interned input.
#[derive(Debug)]
pub(crate) struct Interned {
    pub settings: Settings,
    pub vocabulary: Vocabulary,
    pub students: Students,
    pub offers: Offers,
}

/// The engine indexes with u32; stay well clear of it.
const MAX_ITEMS: usize = 1 << 30;

/// Checks and interns an input.
pub(crate) fn intern(input: &MatchingInput) -> Result<Interned, InputError> {
    let settings = input.settings;
    if settings.weights.total() != crate::model::FitWeights::TOTAL {
        return Err(InputError::Weights(settings.weights.total()));
    }
    if input.students.len() >= MAX_ITEMS || input.offers.len() >= MAX_ITEMS {
        return Err(InputError::TooLarge("students or offers"));
    }
    let mut vocabulary = Vocabulary::default();
    let default_limit_m = settings.default_max_travel_km.saturating_mul(1000);

    let mut order: Vec<usize> = (0..input.students.len()).collect();
    order.sort_by(|&a, &b| input.students[a].id.cmp(&input.students[b].id));
    let mut students = Students::default();
    let mut listed = 0usize;
    for (rank, &at) in order.iter().enumerate() {
        let student = &input.students[at];
        if rank > 0 && input.students[order[rank - 1]].id == student.id {
            return Err(InputError::DuplicateStudent(student.id.clone()));
        }
        if !(1..=4).contains(&student.level) {
            return Err(InputError::StudentLevel(student.id.clone()));
        }
        let point = match student.location {
            Some(location) if !geo::is_valid(location) => {
                return Err(InputError::StudentLocation(student.id.clone()));
            }
            location => location.map(Point::of),
        };
        listed += student.learning_goals.len() + student.competences.len() + student.sectors.len();
        if listed >= MAX_ITEMS {
            return Err(InputError::TooLarge("learning wishes"));
        }
        students.ids.push(student.id.clone());
        students.qualification.push(vocabulary.qualifications.intern(&student.qualification));
        students.level.push(student.level);
        students.goals.push(&mut vocabulary.terms, &student.learning_goals);
        students.competences.push(&mut vocabulary.terms, &student.competences);
        students.sectors.push(&mut vocabulary.sectors, &student.sectors);
        students.region.push(vocabulary.regions.intern(&student.region));
        students.location.push(student.location);
        students.point.push(point);
        students
            .limit_m
            .push(student.max_travel_km.map_or(default_limit_m, |km| km.saturating_mul(1000)));
        let excluded: Vec<String> =
            student.excluded_companies.iter().map(|company| company.0.clone()).collect();
        students.excluded.push(&mut vocabulary.companies, &excluded);
    }

    let mut order: Vec<usize> = (0..input.offers.len()).collect();
    order.sort_by(|&a, &b| input.offers[a].id.cmp(&input.offers[b].id));
    let mut offers = Offers::default();
    let (mut listed, mut slots) = (0usize, 0u64);
    for (rank, &at) in order.iter().enumerate() {
        let offer = &input.offers[at];
        if rank > 0 && input.offers[order[rank - 1]].id == offer.id {
            return Err(InputError::DuplicateOffer(offer.id.clone()));
        }
        let mut levels = 0u8;
        for &level in &offer.levels {
            if !(1..=4).contains(&level) {
                return Err(InputError::OfferLevel(offer.id.clone()));
            }
            levels |= 1 << level;
        }
        let point = match offer.location {
            Some(location) if !geo::is_valid(location) => {
                return Err(InputError::OfferLocation(offer.id.clone()));
            }
            location => location.map(Point::of),
        };
        listed += offer.learning_opportunities.len();
        // Two-and-two doubles the slots; keep that within u32 too.
        slots += u64::from(offer.slots);
        if listed >= MAX_ITEMS || slots >= MAX_ITEMS as u64 {
            return Err(InputError::TooLarge("learning opportunities or slots"));
        }
        offers.ids.push(offer.id.clone());
        offers.company.push(vocabulary.companies.intern(&offer.company.0));
        offers.company_ids.push(offer.company.clone());
        offers.qualification.push(vocabulary.qualifications.intern(&offer.qualification));
        offers.levels.push(levels);
        offers.slots.push(offer.slots);
        offers.opportunities.push(&mut vocabulary.terms, &offer.learning_opportunities);
        offers.sector.push(vocabulary.sectors.intern(&offer.sector));
        offers.region.push(vocabulary.regions.intern(&offer.region));
        offers.location.push(offer.location);
        offers.point.push(point);
    }
    // Empty inputs still get well-formed list tables.
    if students.goals.start.is_empty() {
        for lists in [
            &mut students.goals,
            &mut students.competences,
            &mut students.sectors,
            &mut students.excluded,
        ] {
            lists.start.push(0);
        }
    }
    if offers.opportunities.start.is_empty() {
        offers.opportunities.start.push(0);
    }
    Ok(Interned { settings, vocabulary, students, offers })
}
