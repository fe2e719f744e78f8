//! The engine through its public API: fairness by construction, eligibility,
//! optimality against exhaustive search, outcomes, and the generator.

mod eligibility;
mod fairness;
mod optimality;
mod outcome;
mod support;
mod synthetic;
