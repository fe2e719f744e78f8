//! Fairness by construction (M1, M5, DESIGN §6): the input has no place for
//! anything personal, and refuses anything it has no place for.

use schemars::JsonSchema;
use serde_json::Value;
use stagepact_matching::MatchingInput;

use crate::support::{offer, round, student};

/// Words naming a D2 ground (religion, belief, political opinion, race or
/// origin, sex, gender identity, nationality, sexual orientation, civil status,
/// disability or chronic illness, age), personality, date of birth, support
/// need (M5), or identity (DESIGN §6: no names needed).
const DENIED: &[&str] = &[
    "religion",
    "religious",
    "faith",
    "belief",
    "political",
    "opinion",
    "race",
    "racial",
    "origin",
    "ethnic",
    "ethnicity",
    "migration",
    "nationality",
    "citizenship",
    "sex",
    "gender",
    "orientation",
    "lgbt",
    "civil",
    "marital",
    "married",
    "partner",
    "disability",
    "disabled",
    "handicap",
    "illness",
    "chronic",
    "health",
    "medical",
    "age",
    "birth",
    "born",
    "dob",
    "personality",
    "character",
    "temperament",
    "support",
    "need",
    "name",
    "photo",
    "picture",
    "face",
    "address",
    "email",
    "phone",
    "bsn",
];

/// The words of a property name: split at `_`, `-` and lower-to-upper case.
fn words(name: &str) -> Vec<String> {
    let mut words = vec![String::new()];
    let mut previous_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' || (c.is_uppercase() && previous_lower) {
            words.push(String::new());
        }
        if c.is_alphanumeric() {
            words.last_mut().into_iter().for_each(|w| w.extend(c.to_lowercase()));
        }
        previous_lower = c.is_lowercase();
    }
    words.retain(|w| !w.is_empty());
    words
}

/// Whether a property name names something denied: a word that is (or, for
/// longer terms, begins with) a denied term, or a longer term anywhere in it.
fn denied(name: &str) -> Option<&'static str> {
    let joined: String = words(name).concat();
    DENIED.iter().copied().find(|term| {
        words(name).iter().any(|w| w == term || (w.starts_with(term) && term.len() >= 4))
            || (term.len() >= 5 && joined.contains(term))
    })
}

/// Every property name anywhere in a schema, with the objects that must refuse
/// unknown fields.
fn properties(schema: &Value, names: &mut Vec<String>, open_objects: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                names.extend(props.keys().cloned());
                if map.get("additionalProperties") != Some(&Value::Bool(false)) {
                    open_objects.push(props.keys().cloned().collect::<Vec<_>>().join(","));
                }
            }
            map.values().for_each(|v| properties(v, names, open_objects));
        }
        Value::Array(items) => items.iter().for_each(|v| properties(v, names, open_objects)),
        _ => {}
    }
}

fn schema_of<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).as_value().clone()
}

#[test]
fn m1_input_schema_names_no_personal_characteristic() {
    let (mut names, mut open) = (Vec::new(), Vec::new());
    properties(&schema_of::<MatchingInput>(), &mut names, &mut open);
    assert!(names.iter().any(|n| n == "learning_goals"), "the walk reaches the student: {names:?}");
    assert!(names.iter().any(|n| n == "lat"), "and nested definitions: {names:?}");
    let flagged: Vec<(&String, &str)> =
        names.iter().filter_map(|n| denied(n).map(|term| (n, term))).collect();
    assert!(flagged.is_empty(), "personal fields in the matching input: {flagged:?}");
    assert!(open.is_empty(), "objects that accept unknown fields: {open:?}");
}

#[test]
fn the_deny_list_catches_personal_fields() {
    #[derive(JsonSchema)]
    #[expect(dead_code, reason = "only its schema is read")]
    struct Leaky {
        date_of_birth: String,
        gender: String,
        #[schemars(rename = "supportNeed")]
        support_need: bool,
        first_name: String,
        #[schemars(rename = "ethnicOrigin")]
        ethnic_origin: String,
        age: u8,
    }
    let (mut names, mut open) = (Vec::new(), Vec::new());
    properties(&schema_of::<Leaky>(), &mut names, &mut open);
    assert_eq!(names.len(), 6);
    for name in &names {
        assert!(denied(name).is_some(), "{name} slipped through");
    }
    for harmless in
        ["max_travel_km", "learning_opportunities", "competences", "sectors", "region", "levels"]
    {
        assert_eq!(denied(harmless), None, "{harmless} is not personal");
    }
}

#[test]
fn m5_a_personal_field_is_refused_not_ignored() {
    let mut input = serde_json::to_value(round(vec![student("s1")], vec![offer("o1", "c1")]))
        .expect("serialisable");
    input["students"][0]["date_of_birth"] = "2009-05-01".into();
    assert!(serde_json::from_value::<MatchingInput>(input.clone()).is_err());
    input["students"][0].as_object_mut().expect("an object").remove("date_of_birth");
    input["students"][0]["support_need"] = true.into();
    assert!(serde_json::from_value::<MatchingInput>(input.clone()).is_err());
    input["students"][0].as_object_mut().expect("an object").remove("support_need");
    assert!(serde_json::from_value::<MatchingInput>(input).is_ok());
}
