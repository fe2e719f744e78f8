//! The OpenAPI document (generated from the handlers) and the event schemas
//! (generated from the domain's event types), as committed under `openapi/`
//! and `schemas/`.

use std::path::Path;

use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    companies, events, health, indicators, matching, me, offers, placements, reports, sbb, students,
};

/// The parts of the document not derived from a route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stagepact API",
        description = "The shared backend of the Stagepact mbo: placements, recognition, reports and monitoring.\n\n\
            Errors are RFC 9457 problems (`application/problem+json`). Commands are POSTs that answer with the \
            log position they produced; reads accept `min_position` to wait until they reflect it. POSTs accept \
            `Idempotency-Key`; commands accept `If-Match` with the aggregate version.",
        license(name = "EUPL-1.2", identifier = "EUPL-1.2")
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::Problem, crate::FieldError)),
    tags(
        (name = "companies", description = "Learning companies and their recognition (SBB)"),
        (name = "students", description = "Students, enrolled by their school, and their learning wish"),
        (name = "offers", description = "Placement offers of recognised companies"),
        (name = "placements", description = "The placement lifecycle: match, agreement, start, guidance, end"),
        (name = "reports", description = "The schools' reporting points: reports of internship discrimination and misuse, their follow-up, and erasure of a student's sensitive data"),
        (name = "sbb", description = "SBB: anonymised signals, complaints and investigations"),
        (name = "matching", description = "Objective matching rounds (stagematching): a school's proposals of first placements on learning wish and offer only"),
        (name = "monitoring", description = "The pact's monitoring: indicators per goal, supply and demand of placements, shortages"),
        (name = "me", description = "A student's own overview and timeline"),
        (name = "events", description = "The CloudEvents feed of the global event log"),
        (name = "health", description = "Liveness and readiness")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

/// Each operation's security requirement lists the token roles that may call it
/// (OpenAPI 3.1 allows role names for non-OAuth schemes): third parties read who
/// may do what from the spec, and the authorisation matrix test and the
/// schemathesis run (issue 7) take it from there too, so the list cannot drift
/// from what the handlers enforce.
const ROLES_NOTE: &str = "A JWT whose `role` claim is student, school, company, sbb or monitor \
    (with `org` and `student` as the role needs). Each operation's security requirement \
    lists the roles that may call it; any other role gets 403.";

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(ROLES_NOTE))
                    .build(),
            ),
        );
    }
}

/// The router's routes with their documentation.
pub fn routes() -> utoipa_axum::router::OpenApiRouter<crate::AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(companies::register_company, companies::list_companies))
        .routes(routes!(companies::get_company))
        .routes(routes!(companies::grant_recognition))
        .routes(routes!(companies::suspend_recognition))
        .routes(routes!(companies::reinstate_recognition))
        .routes(routes!(companies::revoke_recognition))
        .routes(routes!(companies::set_matching_participation))
        .routes(routes!(students::enroll_student))
        .routes(routes!(students::import_students))
        .routes(routes!(students::get_student))
        .routes(routes!(students::record_learning_wish))
        .routes(routes!(students::record_support_need))
        .routes(routes!(indicators::get_indicators))
        .routes(routes!(indicators::get_supply_demand))
        .routes(routes!(offers::publish_offer, offers::list_offers))
        .routes(routes!(offers::get_offer))
        .routes(routes!(offers::withdraw_offer))
        .routes(routes!(placements::propose_match, placements::list_placements))
        .routes(routes!(placements::propose_self_found))
        .routes(routes!(placements::get_placement))
        .routes(routes!(placements::approve_self_found))
        .routes(routes!(placements::accept_match))
        .routes(routes!(placements::object_to_match))
        .routes(routes!(placements::withdraw_match))
        .routes(routes!(placements::draft_agreement))
        .routes(routes!(placements::sign_agreement))
        .routes(routes!(placements::start_placement))
        .routes(routes!(placements::record_contact_moment))
        .routes(routes!(placements::confirm_contact_moment))
        .routes(routes!(placements::waive_contact_moments))
        .routes(routes!(placements::record_warm_handover))
        .routes(routes!(placements::complete_placement))
        .routes(routes!(placements::interrupt_placement))
        .routes(routes!(placements::rate_guidance))
        .routes(routes!(reports::file_report, reports::list_reports))
        .routes(routes!(reports::get_report))
        .routes(routes!(reports::acknowledge_report))
        .routes(routes!(reports::record_conversation))
        .routes(routes!(reports::offer_replacement))
        .routes(routes!(reports::set_forwarding_consent))
        .routes(routes!(reports::forward_signal))
        .routes(routes!(reports::escalate_to_sbb))
        .routes(routes!(reports::close_report))
        .routes(routes!(reports::erase_student_data))
        .routes(routes!(sbb::list_signals))
        .routes(routes!(sbb::list_complaints))
        .routes(routes!(sbb::open_investigation))
        .routes(routes!(sbb::get_investigation))
        .routes(routes!(sbb::record_hearing))
        .routes(routes!(sbb::conclude_investigation))
        .routes(routes!(matching::open_matching_round))
        .routes(routes!(matching::get_matching_round))
        .routes(routes!(matching::run_matching_round))
        .routes(routes!(matching::publish_matching_round))
        .routes(routes!(matching::settle_matching_round))
        .routes(routes!(me::get_my_overview))
        .routes(routes!(me::get_my_timeline))
        .routes(routes!(events::list_events))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
}

/// The whole OpenAPI document.
pub fn document() -> Document {
    routes().into_openapi()
}

/// The document as committed: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut text = document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// Every generated file, as (path relative to the repository root, contents).
pub fn artifacts() -> Vec<(String, String)> {
    let mut files = vec![("openapi/openapi.json".to_owned(), document_json())];
    for kind in stagepact_domain::EVENT_CATALOG {
        let mut schema = (kind.schema)();
        schema.insert("$id".to_owned(), format!("/schemas/{}", kind.schema_path()).into());
        schema.insert("x-cloudevents-type".to_owned(), kind.cloud_type().into());
        let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
        text.push('\n');
        files.push((format!("schemas/{}", kind.schema_path()), text));
    }
    files
}

/// Writes every generated file under `root`.
pub fn write_artifacts(root: &Path) -> std::io::Result<()> {
    for (path, text) in artifacts() {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// The generated files under `root` that differ from what the code generates.
pub fn drifted(root: &Path) -> Vec<String> {
    artifacts()
        .into_iter()
        .filter(|(path, text)| std::fs::read_to_string(root.join(path)).ok().as_ref() != Some(text))
        .map(|(path, _)| path)
        .collect()
}
