//! Black-box tests: the API over HTTP against real PostgreSQL, one fresh
//! database per test. One test binary for link time.

mod auth;
mod authorisation;
mod binary;
mod companies;
mod conventions;
mod dashboard;
mod faults;
mod feed;
mod fixtures;
mod generated;
mod helpers;
mod indicators;
mod limits;
mod matching;
mod placements;
mod processes;
mod projections;
mod reactions;
mod reports;
mod server;
mod students_offers;
