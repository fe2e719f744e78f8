//! Distances on the globe. The engine compares chord lengths between unit
//! vectors, so finding offers within reach needs no trigonometry per pair; a
//! distance is then the great-circle (haversine) distance in whole metres.

use crate::model::Location;

/// Mean earth radius in metres (IUGG).
pub(crate) const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A location as a point on the unit sphere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    x: f64,
    y: f64,
    z: f64,
}

impl Point {
    /// The point of a location (already checked to be on the globe).
    pub(crate) fn of(location: Location) -> Self {
        let (lat, lon) = (location.lat.to_radians(), location.lon.to_radians());
        Self { x: lat.cos() * lon.cos(), y: lat.cos() * lon.sin(), z: lat.sin() }
    }

    /// The squared chord between two points on the unit sphere.
    pub(crate) fn chord2(self, other: Self) -> f64 {
        let (dx, dy, dz) = (self.x - other.x, self.y - other.y, self.z - other.z);
        dx * dx + dy * dy + dz * dz
    }
}

/// The great-circle distance of a squared chord, in whole metres. The central
/// angle is `2·asin(chord / 2)`, the same angle the haversine formula gives.
pub(crate) fn chord2_to_m(chord2: f64) -> u32 {
    let half = (chord2.sqrt() / 2.0).min(1.0);
    // At most half the earth's circumference (about 20,015 km): fits in u32.
    (2.0 * EARTH_RADIUS_M * half.asin()).round() as u32
}

/// An upper bound on the squared chord of pairs whose distance, rounded to whole
/// metres, is at most `metres`: a pre-filter, widened by a metre so that it
/// never cuts a pair the exact check would keep.
pub(crate) fn m_to_chord2_bound(metres: u32) -> f64 {
    let angle = (f64::from(metres) + 1.0) / EARTH_RADIUS_M;
    if angle >= std::f64::consts::PI {
        return f64::INFINITY;
    }
    let chord = 2.0 * (angle / 2.0).sin();
    chord * chord * (1.0 + 1e-9) + 1e-12
}

/// The great-circle distance between two locations, in whole metres.
pub fn distance_m(a: Location, b: Location) -> u32 {
    chord2_to_m(Point::of(a).chord2(Point::of(b)))
}

/// Whether a location is on the globe (and not NaN).
pub(crate) fn is_valid(location: Location) -> bool {
    (-90.0..=90.0).contains(&location.lat) && (-180.0..=180.0).contains(&location.lon)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn haversine_m(a: Location, b: Location) -> f64 {
        let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
        let (dp, dl) = (p2 - p1, (b.lon - a.lon).to_radians());
        let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * h.sqrt().asin()
    }

    #[test]
    fn distance_is_the_haversine_distance() {
        let utrecht = Location { lat: 52.0907, lon: 5.1214 };
        let groningen = Location { lat: 53.2194, lon: 6.5665 };
        let d = distance_m(utrecht, groningen);
        assert!((f64::from(d) - haversine_m(utrecht, groningen)).abs() <= 1.0);
        assert!((150_000..170_000).contains(&d), "{d}");
        assert_eq!(distance_m(utrecht, utrecht), 0);
    }

    #[test]
    fn chord_bound_never_cuts_a_pair_at_the_limit() {
        let a = Location { lat: 51.5, lon: 4.0 };
        for lon in [4.1, 4.37, 4.9, 5.6] {
            let b = Location { lat: 51.9, lon };
            let d = distance_m(a, b);
            assert!(Point::of(a).chord2(Point::of(b)) <= m_to_chord2_bound(d));
        }
    }
}
