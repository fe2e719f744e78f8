//! The callers of the scenarios' timed phases, made in their untimed setups:
//! schools and students with their tokens (minted in-process), and the
//! students' enrolment through the API's `importStudents`.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagepact_api::auth::Role;

use crate::http_load::expect;
use crate::setup::Env;

/// Most students per `importStudents` request (the API's maximum).
const IMPORT_BATCH: usize = 1_000;
/// How many setup requests run at once.
pub const SETUP_CONCURRENCY: usize = 16;

/// A caller: its id and its bearer token.
#[derive(Debug, Clone)]
pub struct Party {
    /// The school code, company id or student number.
    pub id: String,
    /// Its token.
    pub token: String,
}

/// A student and the school (an index into the scenario's schools) that enrolled them.
#[derive(Debug, Clone)]
pub struct Student {
    /// The student number and the student's own token.
    pub party: Party,
    /// Index of the school.
    pub school: usize,
}

/// A school code.
fn school_id(index: usize) -> String {
    format!("bench-s{index:02}")
}

/// A student number, unique over all schools.
fn student_id(index: usize) -> String {
    format!("bs-{index:06}")
}

/// `count` schools with their tokens.
pub fn schools(env: &Env, count: usize) -> anyhow::Result<Vec<Party>> {
    (0..count)
        .map(|index| {
            let id = school_id(index);
            let token = env.mint(Role::School, Some(&id), None)?;
            Ok(Party { id, token })
        })
        .collect()
}

/// Students `0..count` with their tokens; student `i` is of school `i % schools.len()`.
pub fn students(env: &Env, schools: &[Party], count: usize) -> anyhow::Result<Vec<Student>> {
    anyhow::ensure!(!schools.is_empty(), "students need a school");
    (0..count)
        .map(|index| {
            let school = index % schools.len();
            let id = student_id(index);
            let token = env.mint(Role::Student, Some(&schools[school].id), Some(&id))?;
            Ok(Student { party: Party { id, token }, school })
        })
        .collect()
}

/// Each school enrols its own `students` with `importStudents`, in batches of
/// up to 1,000, [`SETUP_CONCURRENCY`] batches at a time: BOL students of
/// 25180, level 2, born on `born`.
pub async fn enrol(
    env: &Env,
    schools: &[Party],
    students: &[Student],
    born: NaiveDate,
) -> anyhow::Result<()> {
    let mut batches = Vec::new();
    for (index, school) in schools.iter().enumerate() {
        let own: Vec<&Student> = students.iter().filter(|s| s.school == index).collect();
        for batch in own.chunks(IMPORT_BATCH) {
            let items: Vec<Value> = batch.iter().map(|s| enrolment(&s.party.id, born)).collect();
            batches.push((school.token.clone(), items));
        }
    }
    for chunk in batches.chunks(SETUP_CONCURRENCY) {
        let mut tasks = Vec::new();
        for (token, items) in chunk.iter().cloned() {
            let (http, url) = (env.http.clone(), format!("{}/v1/students/import", env.base));
            tasks.push(tokio::spawn(async move {
                let count = items.len();
                let response = http
                    .post(url)
                    .bearer_auth(token)
                    .timeout(Duration::from_secs(600))
                    .json(&json!({"students": items}))
                    .send()
                    .await?;
                let body = expect(response, StatusCode::OK, "importStudents").await?;
                if body["created"].as_u64() != Some(count as u64) {
                    bail!("importStudents: expected {count} created, got {body}");
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await.context("an import task failed")??;
        }
    }
    Ok(())
}

/// One item of `importStudents`: a BOL student of 25180, level 2.
fn enrolment(student_id: &str, born: NaiveDate) -> Value {
    json!({
        "student_id": student_id, "qualification": "25180", "level": 2, "pathway": "bol",
        "cohort": 2026, "first_year": true, "date_of_birth": born.to_string(),
    })
}
