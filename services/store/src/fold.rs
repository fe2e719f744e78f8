//! What every record-per-aggregate read model shares: decode the stored
//! records a batch touches, then fold the batch into them with the domain's
//! own fold, so a read model and its aggregate read the history alike.

use std::collections::HashMap;
use std::hash::Hash;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::StoreError;
use crate::log::LoggedEvent;

/// The last event a batch applied to one record: its row's version, log
/// position and time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Touched {
    /// The aggregate's version after the event.
    pub version: i64,
    /// The event's log position.
    pub position: i64,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// A record bound as a `jsonb` parameter: serialised straight into the
/// statement's buffer, not built as a `serde_json::Value` tree first (a tree
/// per record per round, then its serialisation, was a seventh of the server's
/// CPU in the soak in the indicators alone; BENCHMARKS.md, "Soak").
pub(crate) type Document<'r, R> = sqlx::types::Json<&'r R>;

/// A read model's JSON document column, decoded straight from the row's bytes
/// into its type (not through a `serde_json::Value` tree first: a placement
/// record is read on every overview).
pub(crate) fn document<T: DeserializeOwned>(
    row: &sqlx::postgres::PgRow,
    column: &str,
) -> Result<T, StoreError> {
    use sqlx::Row;
    let sqlx::types::Json(document) = row.try_get::<sqlx::types::Json<T>, _>(column)?;
    Ok(document)
}

/// The aggregate id of an event as a uuid (offers and placements have uuid ids).
pub(crate) fn uuid_id(event: &LoggedEvent) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(&event.aggregate_id).map_err(|error| {
        StoreError::Corrupt(serde::de::Error::custom(format!(
            "{} id {:?} is not a uuid: {error}",
            event.aggregate_type, event.aggregate_id
        )))
    })
}

/// The stored records, by key. Fetch them as `Json<R>`: decoded straight
/// from the row's bytes, not through a `serde_json::Value` tree.
pub(crate) fn decode<K: Eq + Hash, R>(stored: Vec<(K, sqlx::types::Json<R>)>) -> HashMap<K, R> {
    stored.into_iter().map(|(key, sqlx::types::Json(record))| (key, record)).collect()
}

/// An event's payload as the domain's event type, read in place (no copy of
/// the payload's tree per projection).
pub(crate) fn event<E: DeserializeOwned>(event: &LoggedEvent) -> Result<E, StoreError> {
    Ok(E::deserialize(&event.payload)?)
}

/// Folds `events` (the record of `events[i]` is `keys[i]`) into `records`:
/// `start` makes a record from an aggregate's first event, `apply` folds any
/// later one. An event before its aggregate's first cannot be in the log (the
/// aggregate refuses it) and is passed over. Returns the last event applied to
/// each record.
pub(crate) fn fold<K, R, E>(
    events: &[LoggedEvent],
    keys: &[K],
    records: &mut HashMap<K, R>,
    start: impl Fn(&E) -> Option<R>,
    apply: impl Fn(&mut R, &E),
) -> Result<HashMap<K, Touched>, StoreError>
where
    K: Eq + Hash + Clone,
    E: DeserializeOwned,
{
    let mut touched = HashMap::new();
    for (event, key) in events.iter().zip(keys) {
        let decoded: E = self::event(event)?;
        match records.get_mut(key) {
            Some(record) => apply(record, &decoded),
            None => match start(&decoded) {
                Some(record) => {
                    records.insert(key.clone(), record);
                }
                None => continue,
            },
        }
        touched.insert(
            key.clone(),
            Touched { version: event.sequence, position: event.position, at: event.recorded_at },
        );
    }
    Ok(touched)
}
