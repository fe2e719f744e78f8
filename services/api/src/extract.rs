//! Our own extractors, so that even a request that cannot be parsed gets a problem.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError};

/// A JSON body; a body that does not parse becomes a problem naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Reads one item of a bulk body as `T`, with the same field errors as a body.
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    axum::Json::<T>::from_bytes(&bytes).map(|axum::Json(value)| value).map_err(json_rejection)
}

/// A JSON body of a bulk operation: like `AppJson`, but up to the configured
/// bulk limit instead of the default one.
#[derive(Debug, Clone, Copy, Default)]
pub struct BulkJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<crate::AppState> for BulkJson<T> {
    type Rejection = ApiError;

    async fn from_request(
        request: Request,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        if !is_json {
            return Err(json_rejection(JsonRejection::MissingJsonContentType(Default::default())));
        }
        let limit = state.config.bulk_body_limit;
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        axum::Json::<T>::from_bytes(&bytes)
            .map(|axum::Json(value)| Self(value))
            .map_err(json_rejection)
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(error) => {
            // serde's message names the path, e.g. "name: invalid type: ...".
            let text = std::error::Error::source(&error)
                .map_or_else(|| error.body_text(), ToString::to_string);
            let (mut field, message) = match text.split_once(": ") {
                Some((field, message)) if !field.contains(' ') => {
                    (field.to_owned(), message.to_owned())
                }
                _ => (String::new(), text),
            };
            // serde names a missing field in its message, not in the path.
            if let Some(missing) = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(name, _)| name)
            {
                field = match field.as_str() {
                    "" | "." => missing.to_owned(),
                    parent => format!("{parent}.{missing}"),
                };
            }
            ApiError::Validation(vec![FieldError::new(field, message)], None)
        }
        JsonRejection::JsonSyntaxError(error) => {
            ApiError::BadRequest(format!("malformed JSON: {}", source_text(&error)))
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("send the body as Content-Type: application/json".into())
        }
        JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

fn source_text(error: &dyn std::error::Error) -> String {
    error.source().map_or_else(|| error.to_string(), ToString::to_string)
}

/// Query parameters; unknown or malformed ones become a problem.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(error)) => {
                Err(ApiError::BadRequest(format!("invalid query: {}", source_text(&error))))
            }
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// The `If-Match` header as an aggregate version: an entity tag, `"3"` or
/// `W/"3"`, or `*`. A bare `3` is tolerated, as clients often drop the quotes;
/// a half-quoted tag is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(Self(None));
        };
        let text = value.to_str().unwrap_or_default().trim();
        // `*`: any current version (commands other than a registration need an
        // existing aggregate anyway).
        if text == "*" {
            return Ok(Self(None));
        }
        match entity_version(text) {
            Some(version) => Ok(Self(Some(version))),
            None => Err(ApiError::BadRequest(format!(
                "If-Match must be the aggregate version as an entity tag, e.g. \"3\"; got {text:?}"
            ))),
        }
    }
}

/// The version in an entity tag, as the spec's pattern allows it: `"3"`,
/// `W/"3"` or a bare `3`; 1 to 18 digits, no sign.
fn entity_version(text: &str) -> Option<i64> {
    let bare = match text.strip_prefix("W/").unwrap_or(text).strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None if text.starts_with("W/") => return None,
        None => text,
    };
    let digits = (1..=18).contains(&bare.len()) && bare.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| bare.parse().ok()).flatten()
}

/// Collects field errors while parsing a request into domain values.
#[derive(Debug, Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    /// Parses one field; on failure records it and yields `None`.
    pub fn parse<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(FieldError::new(field, error.to_string()));
                None
            }
        }
    }

    /// The parsed value, or every field error found.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(ApiError::Validation(self.0, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::entity_version;

    #[test]
    fn if_match_takes_exactly_the_entity_tags_the_spec_allows() {
        for (text, version) in [("\"3\"", 3), ("W/\"3\"", 3), ("3", 3), ("\"0\"", 0)] {
            assert_eq!(entity_version(text), Some(version), "{text}");
        }
        let too_long = "1".repeat(19);
        for text in [
            "\"3",
            "3\"",
            "W/3",
            "\"+3\"",
            "\"-0\"",
            "\"\"3\"\"",
            "",
            "\"\"",
            "soon",
            too_long.as_str(),
        ] {
            assert_eq!(entity_version(text), None, "{text}");
        }
    }
}
