//! The operations, one module per resource.

pub mod companies;
pub mod events;
pub mod health;

use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder, ResponsesBuilder};

use crate::problem::Problem;

/// Documents the problem responses an operation can give, so every operation
/// lists them without repeating them by hand.
fn problems(
    statuses: &[(u16, &str)],
) -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let mut responses = ResponsesBuilder::new();
    for (status, description) in statuses {
        let content = ContentBuilder::new()
            .schema(Some(utoipa::openapi::schema::Ref::from_schema_name("Problem")))
            .build();
        responses = responses.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(*description)
                .content("application/problem+json", content),
        );
    }
    let _ = std::any::type_name::<Problem>();
    responses.build().responses.into_iter().collect()
}

/// Problems of every authenticated operation.
const AUTH: [(u16, &str); 3] = [
    (400, "The request could not be read"),
    (401, "Missing, expired or invalid token"),
    (403, "The caller's role or organisation may not do this"),
];

/// Problem responses of commands.
pub struct CommandProblems;

impl utoipa::IntoResponses for CommandProblems {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut statuses = AUTH.to_vec();
        statuses.extend([
            (404, "No such company"),
            (409, "Refused by the pact's rules in the current state, or a concurrent update, or an idempotent request still in progress"),
            (412, "If-Match does not match the current version"),
            (413, "Request body too large"),
            (415, "The body is not JSON"),
            (422, "Invalid fields, or an Idempotency-Key reused for another request"),
            (503, "Temporarily unavailable; retry after the Retry-After delay"),
        ]);
        problems(&statuses)
    }
}

/// Problem responses of reads.
pub struct ReadProblems;

impl utoipa::IntoResponses for ReadProblems {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut statuses = AUTH.to_vec();
        statuses.extend([
            (404, "Not found"),
            (
                503,
                "Read models have not reached min_position in time, or the database is unavailable",
            ),
        ]);
        problems(&statuses)
    }
}
