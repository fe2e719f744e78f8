//! Placement reactions through the API.
