//! Students and offers through the API: enrolment (one by one and in bulk), the
//! learning wish (M1), placement offers (S1, S2), and who may do and see what.

use chrono::Days;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::helpers::{TestApp, company, grant, position_of, problem, reason, spawn_app};

// ---------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------

/// A well-formed offer id that no offer has.
const UNKNOWN_OFFER: &str = "00000000-0000-4000-8000-000000000000";

fn born() -> chrono::NaiveDate {
    born_years_before_start(20)
}

fn wish(region: &str) -> Value {
    json!({
        "learning_goals": ["install a heat pump"], "competences": ["soldering"],
        "sectors": ["Techniek"], "region": region, "max_travel_km": 25,
    })
}

/// The field names of a validation problem, sorted.
fn fields(problem: &Value) -> Vec<String> {
    let mut names: Vec<String> = problem["errors"]
        .as_array()
        .expect("an errors list")
        .iter()
        .map(|e| e["field"].as_str().expect("a field name").to_owned())
        .collect();
    names.sort();
    names
}

/// The ids of a page of offers, in order.
fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["offer_id"].as_str().expect("offer id").to_owned())
        .collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

impl TestApp {
    /// A student's record as `token` sees it once it reflects `position`.
    async fn student_at(&self, student_id: &str, position: i64, token: &str) -> Response {
        self.get(&format!("/v1/students/{student_id}?min_position={position}"), token).await
    }

    /// Publishes `body` as `company_id`; the offer id and the log position.
    async fn publish(&self, company_id: &str, body: Value) -> (String, i64) {
        let response = self.post("/v1/offers", &self.company(company_id), body).await;
        let body = ok_json(response, StatusCode::CREATED).await;
        let id = body["offer_id"].as_str().expect("offer id").to_owned();
        (id, body["position"].as_i64().expect("a position"))
    }

    /// An offer as `token` sees it once it reflects `position`.
    async fn offer_at(&self, offer_id: &str, position: i64, token: &str) -> Value {
        let response =
            self.get(&format!("/v1/offers/{offer_id}?min_position={position}"), token).await;
        ok_json(response, StatusCode::OK).await
    }

    /// A page of `listOffers` with `query` (which may be empty).
    async fn offers(&self, query: &str, token: &str) -> Value {
        ok_json(self.get(&format!("/v1/offers?{query}"), token).await, StatusCode::OK).await
    }

    async fn import(&self, token: &str, students: Value) -> Value {
        let response =
            self.post("/v1/students/import", token, json!({ "students": students })).await;
        ok_json(response, StatusCode::OK).await
    }
}

fn enrolment_at_level(student_id: &str, level: i64) -> Value {
    let mut body = enrolment(student_id, "bol", born());
    body["level"] = json!(level);
    body
}

fn offer_with(qualification: &str, region: &str, levels: Value) -> Value {
    let mut body = offer_body(1);
    body["qualification"] = json!(qualification);
    body["region"] = json!(region);
    body["levels"] = levels;
    body
}

// ---------------------------------------------------------------------------
// enrollStudent, getStudent
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_enrolled_student_reads_back_with_version_and_etag() {
    let app = spawn_app().await;
    let school = app.school();
    let response = app.post("/v1/students", &school, enrolment("s-1", "bol", born())).await;
    assert_eq!(response.headers()["location"], "/v1/students/s-1");
    assert_eq!(response.headers()["etag"], "\"1\"");
    let logged = response.headers()["x-log-position"].to_str().expect("header").to_owned();
    let accepted = ok_json(response, StatusCode::CREATED).await;
    assert_eq!(accepted["student_id"], "s-1");
    assert_eq!(accepted["version"], 1);
    let position = accepted["position"].as_i64().expect("a position");
    assert_eq!(logged, position.to_string());

    let read = app.student_at("s-1", position, &school).await;
    assert_eq!(read.headers()["etag"], "\"1\"");
    let view = ok_json(read, StatusCode::OK).await;
    assert_eq!(
        view,
        json!({
            "school": "25XX", "student_id": "s-1", "qualification": "25180", "level": 2,
            "pathway": "bol", "cohort": 2026, "first_year": true, "date_of_birth": born(),
            "version": 1, "position": position,
        })
    );

    // A client holding version 1 gets 304.
    let again = app
        .client
        .get(app.url("/v1/students/s-1"))
        .bearer_auth(&school)
        .header("if-none-match", "\"1\"")
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn enrolling_a_taken_number_is_refused_and_records_nothing() {
    let app = spawn_app().await;
    let enrolled = app.enroll("s-1", "bol", born()).await;
    let position = enrolled["position"].as_i64().expect("a position");
    let before = app.event_count().await;
    let again = app.post("/v1/students", &app.school(), enrolment_at_level("s-1", 3)).await;
    let refused = problem(again, StatusCode::CONFLICT).await;
    assert_eq!(refused["type"], "urn:stagepact:problem:already-enrolled");
    assert_eq!(app.event_count().await, before, "a refusal records nothing");
    let view = ok_json(app.student_at("s-1", position, &app.school()).await, StatusCode::OK).await;
    assert_eq!((view["level"].as_i64(), view["version"].as_i64()), (Some(2), Some(1)));
}

#[tokio::test]
async fn a_student_number_is_unique_only_within_its_school() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born()).await;
    let other_school = app.school_of(OTHER_SCHOOL);
    let response = app.post("/v1/students", &other_school, enrolment_at_level("s-1", 3)).await;
    let accepted = ok_json(response, StatusCode::CREATED).await;
    assert_eq!(accepted["version"], 1, "a new student, not a second enrolment");
    let position = accepted["position"].as_i64().expect("a position");

    let theirs =
        ok_json(app.student_at("s-1", position, &other_school).await, StatusCode::OK).await;
    assert_eq!((theirs["school"].as_str(), theirs["level"].as_i64()), (Some("30YY"), Some(3)));
    let ours = ok_json(app.student_at("s-1", position, &app.school()).await, StatusCode::OK).await;
    assert_eq!((ours["school"].as_str(), ours["level"].as_i64()), (Some("25XX"), Some(2)));
}

#[tokio::test]
async fn an_enrolment_with_bad_fields_lists_each_field_and_records_nothing() {
    let app = spawn_app().await;
    let before = app.event_count().await;
    let future = today() + Days::new(1);
    let body = json!({
        "student_id": "-s", "qualification": "123", "level": 7, "pathway": "bol",
        "cohort": 1999, "first_year": true, "date_of_birth": future,
    });
    let refused = problem(
        app.post("/v1/students", &app.school(), body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        fields(&refused),
        ["cohort", "date_of_birth", "level", "qualification", "student_id"],
        "{refused}"
    );

    let mut wrong_pathway = enrolment("s-1", "bol", born());
    wrong_pathway["pathway"] = json!("evening");
    let refused = problem(
        app.post("/v1/students", &app.school(), wrong_pathway).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&refused), ["pathway"], "{refused}");
    assert_eq!(app.event_count().await, before, "invalid enrolments record nothing");
}

#[tokio::test]
async fn only_a_school_enrols_and_imports_students() {
    let app = spawn_app().await;
    let before = app.event_count().await;
    for token in [app.student(), app.company("lb-1"), app.sbb(), app.monitor()] {
        let enrol = app.post("/v1/students", &token, enrolment("s-9", "bol", born())).await;
        problem(enrol, StatusCode::FORBIDDEN).await;
        let import = app
            .post(
                "/v1/students/import",
                &token,
                json!({"students": [enrolment("s-9", "bol", born())]}),
            )
            .await;
        problem(import, StatusCode::FORBIDDEN).await;
    }
    assert_eq!(app.event_count().await, before, "a refused caller records nothing");
}

#[tokio::test]
async fn a_student_is_read_by_their_school_and_by_themselves() {
    let app = spawn_app().await;
    let enrolled = app.enroll("s-1", "bbl", born()).await;
    let position = enrolled["position"].as_i64().expect("a position");
    for token in [app.school(), app.student()] {
        let view = ok_json(app.student_at("s-1", position, &token).await, StatusCode::OK).await;
        assert_eq!(
            (view["student_id"].as_str(), view["pathway"].as_str()),
            (Some("s-1"), Some("bbl"))
        );
        assert_eq!(view["date_of_birth"], json!(born()), "school and student see the birth date");
    }
}

#[tokio::test]
async fn a_student_is_hidden_from_everyone_else() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born()).await;
    let enrolled = app.enroll("s-2", "bol", born()).await;
    let position = enrolled["position"].as_i64().expect("a position");

    let classmate = app.student_of(SCHOOL, "s-2");
    problem(app.student_at("s-1", position, &classmate).await, StatusCode::FORBIDDEN).await;
    // Another school asking for "s-1" asks in its own namespace, where there is none.
    let other_school = app.school_of(OTHER_SCHOOL);
    problem(app.student_at("s-1", position, &other_school).await, StatusCode::NOT_FOUND).await;
    let other_schools_student = app.student_of(OTHER_SCHOOL, "s-1");
    problem(app.student_at("s-1", position, &other_schools_student).await, StatusCode::NOT_FOUND)
        .await;
    for token in [app.company("lb-1"), app.sbb(), app.monitor()] {
        problem(app.student_at("s-1", position, &token).await, StatusCode::FORBIDDEN).await;
    }
    problem(app.get("/v1/students/nobody", &app.school()).await, StatusCode::NOT_FOUND).await;
}

/// M1: matching and companies see no personal characteristics; the date of
/// birth is only for G1 and C3.
#[tokio::test]
async fn m1_a_company_never_sees_a_students_date_of_birth() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born()).await;
    let offer = app.company_with_offer("lb-1", 1).await;
    let placement = app.propose("s-1", &offer).await;
    app.step(&placement, "accept", &app.student(), json!({})).await;
    // The agreement is drafted with the birth date in view (G1, C3).
    let drafted = app.step(&placement, "agreement", &app.school(), agreement_body(None)).await;
    let position = drafted["position"].as_i64().expect("a position");
    let company = app.company("lb-1");
    let birth_date = born().to_string();

    problem(app.get("/v1/students/s-1", &company).await, StatusCode::FORBIDDEN).await;
    for path in [
        format!("/v1/placements/{placement}?min_position={position}"),
        format!("/v1/placements?min_position={position}"),
        "/v1/events".to_owned(),
    ] {
        let response = app.get(&path, &company).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let text = response.text().await.expect("body");
        assert!(text.contains(&placement), "{path} shows the company its placement: {text}");
        assert!(!text.contains("date_of_birth") && !text.contains(&birth_date), "{path}: {text}");
    }
}

// ---------------------------------------------------------------------------
// importStudents
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_import_is_idempotent() {
    let app = spawn_app().await;
    let school = app.school();
    let students = json!([enrolment("s-1", "bol", born()), enrolment("s-2", "bbl", born())]);

    let first = app.import(&school, students.clone()).await;
    assert_eq!(
        (&first["created"], &first["updated"], &first["unchanged"], &first["invalid"]),
        (&json!(2), &json!(0), &json!(0), &json!(0)),
        "{first}"
    );
    assert_eq!(first["results"][0]["outcome"], "created");
    assert_eq!(first["results"][1]["student_id"], "s-2");
    assert_eq!(first["results"][1]["version"], 1);
    let position = first["results"][1]["position"].as_i64().expect("a position");

    let before = app.event_count().await;
    let second = app.import(&school, students).await;
    assert_eq!((&second["created"], &second["unchanged"]), (&json!(0), &json!(2)), "{second}");
    for result in second["results"].as_array().expect("results") {
        assert_eq!(result["outcome"], "unchanged");
        assert_eq!(result["version"], 1);
        assert!(result.get("position").is_none(), "nothing recorded: {result}");
    }
    assert_eq!(app.event_count().await, before, "a repeated import records nothing");

    let view = ok_json(app.student_at("s-2", position, &school).await, StatusCode::OK).await;
    assert_eq!((view["pathway"].as_str(), view["version"].as_i64()), (Some("bbl"), Some(1)));
}

#[tokio::test]
async fn an_import_updates_a_changed_enrolment() {
    let app = spawn_app().await;
    let school = app.school();
    app.import(&school, json!([enrolment_at_level("s-1", 2), enrolment_at_level("s-2", 2)])).await;

    let before = app.event_count().await;
    let result = app
        .import(&school, json!([enrolment_at_level("s-1", 3), enrolment_at_level("s-2", 2)]))
        .await;
    assert_eq!((&result["updated"], &result["unchanged"]), (&json!(1), &json!(1)), "{result}");
    assert_eq!(result["results"][0]["outcome"], "updated");
    assert_eq!(result["results"][0]["version"], 2);
    assert_eq!(result["results"][1]["outcome"], "unchanged");
    assert_eq!(app.event_count().await, before + 1, "one update, one event");
    assert_eq!(
        app.event_types_of("25XX:s-1").await,
        ["StudentEnrolled", "StudentEnrolmentUpdated"]
    );

    let position = result["results"][0]["position"].as_i64().expect("a position");
    let view = ok_json(app.student_at("s-1", position, &school).await, StatusCode::OK).await;
    assert_eq!((view["level"].as_i64(), view["version"].as_i64()), (Some(3), Some(2)));
}

#[tokio::test]
async fn an_import_refuses_bad_items_and_imports_the_good_ones() {
    let app = spawn_app().await;
    let mut missing = enrolment("s-3", "bol", born());
    missing.as_object_mut().expect("object").remove("date_of_birth");
    let mut mistyped = enrolment("s-4", "bol", born());
    mistyped["level"] = json!("two");
    let students = json!([
        enrolment("s-1", "bol", born()),
        enrolment_at_level("s-2", 7),
        missing,
        mistyped,
        enrolment("s-5", "bol", born()),
    ]);
    let before = app.event_count().await;
    let result = app.import(&app.school(), students).await;
    assert_eq!((&result["created"], &result["invalid"]), (&json!(2), &json!(3)), "{result}");
    let outcomes: Vec<&str> = result["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes, ["created", "invalid", "invalid", "invalid", "created"]);
    let bad_level = &result["results"][1];
    assert_eq!(
        (bad_level["index"].as_i64(), bad_level["student_id"].as_str()),
        (Some(1), Some("s-2"))
    );
    assert_eq!(fields(bad_level), ["level"], "{bad_level}");
    assert!(bad_level.get("version").is_none() && bad_level.get("position").is_none());
    let missing = &result["results"][2]["errors"][0]["message"];
    assert!(missing.as_str().is_some_and(|m| m.contains("date_of_birth")), "{missing}");
    assert!(!result["results"][3]["errors"].as_array().expect("errors").is_empty());
    assert_eq!(app.event_count().await, before + 2, "only the good items are recorded");

    let position = result["results"][4]["position"].as_i64().expect("a position");
    ok_json(app.student_at("s-5", position, &app.school()).await, StatusCode::OK).await;
    problem(app.student_at("s-2", position, &app.school()).await, StatusCode::NOT_FOUND).await;
}

/// DESIGN §5: a validation problem names each field. An import item that is
/// missing a field or has one of the wrong type must name it, as
/// `enrollStudent` does for the same body.
#[tokio::test]
async fn an_import_names_the_missing_or_mistyped_field_of_an_item() {
    let app = spawn_app().await;
    let mut missing = enrolment("s-1", "bol", born());
    missing.as_object_mut().expect("object").remove("date_of_birth");
    let mut mistyped = enrolment("s-2", "bol", born());
    mistyped["level"] = json!("two");
    let result = app.import(&app.school(), json!([missing, mistyped])).await;
    assert_eq!(fields(&result["results"][0]), ["date_of_birth"], "{result}");
    assert_eq!(fields(&result["results"][1]), ["level"], "{result}");
}

#[tokio::test]
async fn an_import_of_more_than_1000_students_is_refused_and_records_nothing() {
    let app = spawn_app().await;
    let before = app.event_count().await;
    // The size check comes before any item is read, so empty items keep the
    // body under the test app's body limit.
    let students = vec![json!({}); 1001];
    let refused = problem(
        app.post("/v1/students/import", &app.school(), json!({ "students": students })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&refused), ["students"], "{refused}");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn an_import_by_another_school_never_touches_ours() {
    let app = spawn_app().await;
    let enrolled = app.enroll("s-1", "bol", born()).await;
    let result =
        app.import(&app.school_of(OTHER_SCHOOL), json!([enrolment_at_level("s-1", 4)])).await;
    assert_eq!(
        result["results"][0]["outcome"], "created",
        "its own student, not an update of ours"
    );
    assert_eq!(app.event_types_of("25XX:s-1").await, ["StudentEnrolled"]);
    let position = result["results"][0]["position"].as_i64().expect("a position");
    assert!(position > enrolled["position"].as_i64().expect("a position"));
    let ours = ok_json(app.student_at("s-1", position, &app.school()).await, StatusCode::OK).await;
    assert_eq!((ours["level"].as_i64(), ours["version"].as_i64()), (Some(2), Some(1)));
}

// ---------------------------------------------------------------------------
// recordLearningWish
// ---------------------------------------------------------------------------

#[tokio::test]
async fn m1_the_student_and_their_school_record_the_learning_wish() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born()).await;

    let by_student =
        app.post("/v1/students/s-1/learning-wish", &app.student(), wish("Utrecht")).await;
    let accepted = ok_json(by_student, StatusCode::ACCEPTED).await;
    assert_eq!(
        (accepted["student_id"].as_str(), accepted["version"].as_i64()),
        (Some("s-1"), Some(2))
    );
    let position = accepted["position"].as_i64().expect("a position");
    let read = app.student_at("s-1", position, &app.student()).await;
    assert_eq!(read.headers()["etag"], "\"2\"");
    let view = ok_json(read, StatusCode::OK).await;
    assert_eq!(
        view["learning_wish"],
        json!({
            "learning_goals": ["install a heat pump"], "competences": ["soldering"],
            "sectors": ["Techniek"], "region": "Utrecht", "max_travel_km": 25,
        })
    );

    let by_school =
        app.post("/v1/students/s-1/learning-wish", &app.school(), wish("Rotterdam")).await;
    let position = position_of(by_school).await;
    let view = ok_json(app.student_at("s-1", position, &app.school()).await, StatusCode::OK).await;
    assert_eq!(view["learning_wish"]["region"], "Rotterdam", "the latest wish counts");
    assert_eq!(view["version"], 3);
    assert_eq!(
        app.event_types_of("25XX:s-1").await,
        ["StudentEnrolled", "LearningWishRecorded", "LearningWishRecorded"]
    );
}

#[tokio::test]
async fn m1_a_learning_wish_with_bad_fields_is_refused_and_records_nothing() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born()).await;
    let before = app.event_count().await;

    let refused = problem(
        app.post("/v1/students/s-1/learning-wish", &app.student(), wish("")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&refused), ["region"], "{refused}");

    let mut body = wish("Utrecht");
    body["max_travel_km"] = json!(0);
    body["learning_goals"] = json!([""]);
    body["sectors"] = json!(vec!["Techniek"; 11]);
    let refused = problem(
        app.post("/v1/students/s-1/learning-wish", &app.school(), body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&refused), ["learning_goals", "max_travel_km", "sectors"], "{refused}");

    let mut body = wish("Utrecht");
    body.as_object_mut().expect("object").remove("region");
    let refused = problem(
        app.post("/v1/students/s-1/learning-wish", &app.school(), body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        refused["errors"][0]["message"].as_str().is_some_and(|m| m.contains("region")),
        "{refused}"
    );
    assert_eq!(app.event_count().await, before, "invalid wishes record nothing");
}

#[tokio::test]
async fn m1_only_the_student_or_their_school_records_the_learning_wish() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born()).await;
    app.enroll("s-2", "bol", born()).await;
    let before = app.event_count().await;
    let path = "/v1/students/s-1/learning-wish";

    let classmate = app.student_of(SCHOOL, "s-2");
    let refused =
        problem(app.post(path, &classmate, wish("Utrecht")).await, StatusCode::FORBIDDEN).await;
    assert!(refused["detail"].as_str().is_some_and(|d| d.contains("own")), "{refused}");
    for token in [app.company("lb-1"), app.sbb(), app.monitor()] {
        problem(app.post(path, &token, wish("Utrecht")).await, StatusCode::FORBIDDEN).await;
    }
    // Another school's "s-1" is another student, and that one does not exist.
    problem(
        app.post(path, &app.school_of(OTHER_SCHOOL), wish("Utrecht")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(app.event_count().await, before, "a refused caller records nothing");
    assert_eq!(app.event_types_of("25XX:s-1").await, ["StudentEnrolled"]);
}

#[tokio::test]
async fn m1_a_learning_wish_for_an_unknown_student_is_not_found() {
    let app = spawn_app().await;
    let before = app.event_count().await;
    let unknown =
        app.post("/v1/students/s-404/learning-wish", &app.school(), wish("Utrecht")).await;
    problem(unknown, StatusCode::NOT_FOUND).await;
    // The student themselves, not yet enrolled.
    let unenrolled =
        app.post("/v1/students/s-1/learning-wish", &app.student(), wish("Utrecht")).await;
    problem(unenrolled, StatusCode::NOT_FOUND).await;
    let malformed =
        app.post("/v1/students/-x-/learning-wish", &app.school(), wish("Utrecht")).await;
    problem(malformed, StatusCode::NOT_FOUND).await;
    assert_eq!(app.event_count().await, before);
}

// ---------------------------------------------------------------------------
// publishOffer
// ---------------------------------------------------------------------------

#[tokio::test]
async fn s1_a_recognised_company_publishes_an_offer_and_reads_it_back() {
    let app = spawn_app().await;
    app.recognised_company("lb-1").await;
    let company = app.company("lb-1");
    let response = app.post("/v1/offers", &company, offer_body(2)).await;
    assert_eq!(response.headers()["etag"], "\"1\"");
    let location = response.headers()["location"].to_str().expect("header").to_owned();
    let accepted = ok_json(response, StatusCode::CREATED).await;
    let offer = accepted["offer_id"].as_str().expect("offer id").to_owned();
    assert_eq!(location, format!("/v1/offers/{offer}"));
    let position = accepted["position"].as_i64().expect("a position");

    let read = app.get(&format!("/v1/offers/{offer}?min_position={position}"), &company).await;
    // `open` changes with the day and the company's standing, not only with the
    // offer's version: the tag is a hash of the body.
    let tag = read.headers()["etag"].to_str().expect("header").to_owned();
    assert!(tag.starts_with("W/\""), "{tag}");
    let view = ok_json(read, StatusCode::OK).await;
    assert_eq!(
        view,
        json!({
            "offer_id": offer, "company_id": "lb-1", "qualification": "25180", "levels": [2, 3],
            "slots": 2, "free_slots": 2, "period": {"start": start_date(), "end": end_date()},
            "hours_per_week": 32, "region": "Utrecht",
            "learning_opportunities": ["service on a live network"],
            "internship_allowance": {"amount_eur": 250.0, "per": "month"},
            "open_for_matching": true, "withdrawn": false, "open": true,
            "published_on": today(), "version": 1, "position": position,
        })
    );
}

#[tokio::test]
async fn s1_a_company_that_may_not_host_cannot_publish() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    // Registered, never recognised.
    app.post("/v1/companies", &sbb, company("lb-new", "Utrecht")).await;
    // Recognised, then suspended.
    app.recognised_company("lb-suspended").await;
    let suspended = app.post("/v1/companies/lb-suspended/suspend", &sbb, reason()).await;
    assert_eq!(suspended.status(), StatusCode::ACCEPTED);
    // Recognised, then revoked.
    app.recognised_company("lb-revoked").await;
    let revoked = app.post("/v1/companies/lb-revoked/revoke", &sbb, reason()).await;
    assert_eq!(revoked.status(), StatusCode::ACCEPTED);
    // Recognised for 25180 only.
    app.recognised_company("lb-other").await;

    let cases = [
        ("unregistered", offer_body(1)),
        ("lb-new", offer_body(1)),
        ("lb-suspended", offer_body(1)),
        ("lb-revoked", offer_body(1)),
        ("lb-other", offer_with("25655", "Utrecht", json!([2]))),
    ];
    let before = app.event_count().await;
    for (company_id, body) in cases {
        let response = app.post("/v1/offers", &app.company(company_id), body).await;
        let refused = problem(response, StatusCode::CONFLICT).await;
        assert_eq!(refused["rule"], "S1", "{company_id}: {refused}");
        assert_eq!(refused["type"], "urn:stagepact:problem:company-may-not-host", "{company_id}");
    }
    assert_eq!(app.event_count().await, before, "a refused offer records nothing");
}

#[tokio::test]
async fn s2_an_offer_whose_period_has_ended_is_refused() {
    let app = spawn_app().await;
    app.recognised_company("lb-1").await;
    let before = app.event_count().await;
    let mut body = offer_body(1);
    body["period"] = json!({"start": today() - Days::new(60), "end": today() - Days::new(1)});
    let refused = problem(
        app.post("/v1/offers", &app.company("lb-1"), body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["rule"], "S2", "{refused}");
    assert_eq!(fields(&refused), ["period.end"]);
    assert_eq!(app.event_count().await, before);

    // Ending today is still current.
    let mut body = offer_body(1);
    body["period"] = json!({"start": today() - Days::new(60), "end": today()});
    app.publish("lb-1", body).await;
}

#[tokio::test]
async fn an_offer_with_bad_fields_lists_each_field_and_records_nothing() {
    let app = spawn_app().await;
    app.recognised_company("lb-1").await;
    let before = app.event_count().await;
    let mut body = offer_body(1);
    body["qualification"] = json!("123");
    body["levels"] = json!([0]);
    body["slots"] = json!(0);
    body["hours_per_week"] = json!(0);
    body["region"] = json!("");
    body["period"] = json!({"start": end_date(), "end": start_date()});
    body["location"] = json!({"lat": 91.0, "lon": 5.0});
    body["internship_allowance"] = json!({"amount_eur": -1.0, "per": "month"});
    let refused = problem(
        app.post("/v1/offers", &app.company("lb-1"), body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        fields(&refused),
        [
            "hours_per_week",
            "internship_allowance.amount_eur",
            "levels",
            "location",
            "period.end",
            "qualification",
            "region",
            "slots",
        ],
        "{refused}"
    );

    for levels in [json!([]), json!([1, 2, 3, 4, 5]), json!([5])] {
        let mut body = offer_body(1);
        body["levels"] = levels.clone();
        let refused = problem(
            app.post("/v1/offers", &app.company("lb-1"), body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(fields(&refused), ["levels"], "{levels}: {refused}");
    }
    let mut body = offer_body(1);
    body["slots"] = json!("two");
    let refused = problem(
        app.post("/v1/offers", &app.company("lb-1"), body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&refused), ["slots"], "{refused}");
    assert_eq!(app.event_count().await, before, "invalid offers record nothing");
}

#[tokio::test]
async fn only_a_company_publishes_offers() {
    let app = spawn_app().await;
    let before = app.event_count().await;
    for token in [app.school(), app.student(), app.sbb(), app.monitor()] {
        problem(app.post("/v1/offers", &token, offer_body(1)).await, StatusCode::FORBIDDEN).await;
    }
    assert_eq!(app.event_count().await, before);
}

// ---------------------------------------------------------------------------
// withdrawOffer
// ---------------------------------------------------------------------------

#[tokio::test]
async fn s2_a_withdrawn_offer_is_closed_and_cannot_be_withdrawn_again() {
    let app = spawn_app().await;
    let offer = app.company_with_offer("lb-1", 2).await;
    let company = app.company("lb-1");
    let path = format!("/v1/offers/{offer}/withdraw");

    let withdrawn = app.post(&path, &company, json!({"reason": "the trainer left"})).await;
    let accepted = ok_json(withdrawn, StatusCode::ACCEPTED).await;
    assert_eq!(
        (accepted["offer_id"].as_str(), accepted["version"].as_i64()),
        (Some(offer.as_str()), Some(2))
    );
    let position = accepted["position"].as_i64().expect("a position");
    for token in [company.clone(), app.school(), app.student()] {
        let view = app.offer_at(&offer, position, &token).await;
        assert_eq!(
            (view["withdrawn"].as_bool(), view["open"].as_bool()),
            (Some(true), Some(false))
        );
        assert_eq!(view["version"], 2);
    }

    let before = app.event_count().await;
    let again = problem(app.post(&path, &company, json!({})).await, StatusCode::CONFLICT).await;
    assert_eq!(again["rule"], "S2", "{again}");
    assert_eq!(again["type"], "urn:stagepact:problem:offer-not-current");
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.event_types_of(&offer).await, ["OfferPublished", "OfferWithdrawn"]);
}

#[tokio::test]
async fn an_offer_is_withdrawn_only_by_its_company() {
    let app = spawn_app().await;
    let offer = app.company_with_offer("lb-1", 1).await;
    app.recognised_company("lb-2").await;
    let path = format!("/v1/offers/{offer}/withdraw");
    let before = app.event_count().await;

    let refused =
        problem(app.post(&path, &app.company("lb-2"), json!({})).await, StatusCode::FORBIDDEN)
            .await;
    assert!(refused["detail"].as_str().is_some_and(|d| d.contains("own")), "{refused}");
    for token in [app.school(), app.student(), app.sbb(), app.monitor()] {
        problem(app.post(&path, &token, json!({})).await, StatusCode::FORBIDDEN).await;
    }
    let company = app.company("lb-1");
    let unknown = format!("/v1/offers/{}/withdraw", UNKNOWN_OFFER);
    problem(app.post(&unknown, &company, json!({})).await, StatusCode::NOT_FOUND).await;
    problem(
        app.post("/v1/offers/not-a-uuid/withdraw", &company, json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let empty_reason = problem(
        app.post(&path, &company, json!({"reason": ""})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&empty_reason), ["reason"]);
    assert_eq!(app.event_count().await, before, "refusals record nothing");
    assert_eq!(app.event_types_of(&offer).await, ["OfferPublished"]);
}

// ---------------------------------------------------------------------------
// getOffer, listOffers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_offer_is_read_by_schools_and_students_and_only_its_own_company() {
    let app = spawn_app().await;
    app.recognised_company("lb-1").await;
    app.recognised_company("lb-2").await;
    let (offer, position) = app.publish("lb-1", offer_body(1)).await;
    let path = format!("/v1/offers/{offer}?min_position={position}");

    let readers = [
        app.school(),
        app.school_of(OTHER_SCHOOL),
        app.student(),
        app.student_of(OTHER_SCHOOL, "s-7"),
        app.company("lb-1"),
    ];
    for token in readers {
        let view = ok_json(app.get(&path, &token).await, StatusCode::OK).await;
        assert_eq!(view["offer_id"], json!(offer));
    }
    let refused = problem(app.get(&path, &app.company("lb-2")).await, StatusCode::FORBIDDEN).await;
    assert!(refused["detail"].as_str().is_some_and(|d| d.contains("own")), "{refused}");
    for token in [app.sbb(), app.monitor()] {
        problem(app.get(&path, &token).await, StatusCode::FORBIDDEN).await;
        problem(app.get("/v1/offers", &token).await, StatusCode::FORBIDDEN).await;
    }
    let unknown = format!("/v1/offers/{}?min_position={position}", UNKNOWN_OFFER);
    problem(app.get(&unknown, &app.school()).await, StatusCode::NOT_FOUND).await;
    problem(app.get("/v1/offers/not-a-uuid", &app.school()).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_company_lists_only_its_own_offers() {
    let app = spawn_app().await;
    app.recognised_company("lb-1").await;
    app.recognised_company("lb-2").await;
    let (a, _) = app.publish("lb-1", offer_body(1)).await;
    let (b, _) = app.publish("lb-1", offer_body(1)).await;
    let (c, position) = app.publish("lb-2", offer_body(1)).await;
    let query = format!("min_position={position}");

    let own = app.offers(&query, &app.company("lb-1")).await;
    assert_eq!(ids(&own), sorted(vec![a.clone(), b.clone()]));
    let own = app.offers(&query, &app.company("lb-2")).await;
    assert_eq!(ids(&own), [c.as_str()]);
    let everyone = app.offers(&query, &app.student()).await;
    assert_eq!(ids(&everyone), sorted(vec![a, b, c]));
}

#[tokio::test]
async fn s2_offers_are_filtered_by_qualification_region_and_level() {
    let app = spawn_app().await;
    app.recognised_company("lb-1").await;
    let granted = app.post("/v1/companies/lb-1/recognitions", &app.sbb(), grant("25655")).await;
    assert_eq!(granted.status(), StatusCode::ACCEPTED);
    let (utrecht, _) = app.publish("lb-1", offer_with("25180", "Utrecht", json!([2, 3]))).await;
    let (groningen, _) = app.publish("lb-1", offer_with("25180", "Groningen", json!([1]))).await;
    let (other, position) = app.publish("lb-1", offer_with("25655", "Utrecht", json!([4]))).await;
    let school = app.school();
    let list = |filter: &'static str| {
        let school = school.clone();
        let app = &app;
        async move { ids(&app.offers(&format!("min_position={position}&{filter}"), &school).await) }
    };

    assert_eq!(list("qualification=25180").await, sorted(vec![utrecht.clone(), groningen.clone()]));
    assert_eq!(list("qualification=25655").await, [other.as_str()]);
    assert_eq!(list("region=Utrecht").await, sorted(vec![utrecht.clone(), other.clone()]));
    assert_eq!(list("region=Groningen").await, [groningen.as_str()]);
    assert_eq!(list("level=3").await, [utrecht.as_str()]);
    assert_eq!(list("level=4").await, [other.as_str()]);
    assert_eq!(list("qualification=25180&region=Utrecht&level=2").await, [utrecht.as_str()]);
    assert!(list("qualification=25180&level=4").await.is_empty());
    assert!(list("region=Limburg").await.is_empty());
}

#[tokio::test]
async fn s1_s2_open_offers_exclude_withdrawn_ones_and_suspended_companies() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("lb-1").await;
    app.recognised_company("lb-2").await;
    let (open, _) = app.publish("lb-1", offer_body(1)).await;
    let (withdrawn, _) = app.publish("lb-1", offer_body(1)).await;
    let (suspended_company, published) = app.publish("lb-2", offer_body(1)).await;
    let school = app.school();

    let before = app.offers(&format!("min_position={published}&open=true"), &school).await;
    assert_eq!(ids(&before).len(), 3);

    let withdrawal = app
        .post(&format!("/v1/offers/{withdrawn}/withdraw"), &app.company("lb-1"), json!({}))
        .await;
    assert_eq!(withdrawal.status(), StatusCode::ACCEPTED);
    let suspension = app.post("/v1/companies/lb-2/suspend", &sbb, reason()).await;
    // `open` reads the company registry too: min_position waits for both.
    let position = position_of(suspension).await;

    let query = format!("min_position={position}&open=true");
    assert_eq!(ids(&app.offers(&query, &school).await), [open.as_str()]);
    let query = format!("min_position={position}&open=false");
    assert_eq!(
        ids(&app.offers(&query, &school).await),
        sorted(vec![withdrawn, suspended_company.clone()])
    );
    let view = app.offer_at(&suspended_company, position, &school).await;
    assert_eq!((view["open"].as_bool(), view["withdrawn"].as_bool()), (Some(false), Some(false)));
    let view = app.offer_at(&open, position, &school).await;
    assert_eq!(view["open"], true);
}

/// S1 holds per qualification: revoking one recognition closes that
/// qualification's offers and leaves the others open.
#[tokio::test]
async fn s1_revoking_one_qualification_closes_only_its_offers() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("lb-1").await;
    let granted = app.post("/v1/companies/lb-1/recognitions", &sbb, grant("25655")).await;
    assert_eq!(granted.status(), StatusCode::ACCEPTED);
    let (kept, _) = app.publish("lb-1", offer_with("25180", "Utrecht", json!([2]))).await;
    let (closed, _) = app.publish("lb-1", offer_with("25655", "Utrecht", json!([2]))).await;
    let revoked = app
        .post(
            "/v1/companies/lb-1/revoke",
            &sbb,
            json!({"reason": "no trainer", "qualification": "25655"}),
        )
        .await;
    let position = position_of(revoked).await;

    let school = app.school();
    assert_eq!(app.offer_at(&kept, position, &school).await["open"], true);
    assert_eq!(app.offer_at(&closed, position, &school).await["open"], false);
    let query = format!("min_position={position}&open=true");
    assert_eq!(ids(&app.offers(&query, &school).await), [kept]);
    assert_eq!(app.company_at("lb-1", position, &sbb).await["status"], "active");
}

#[tokio::test]
async fn offers_are_paged_with_a_cursor() {
    let app = spawn_app().await;
    app.recognised_company("lb-1").await;
    let mut published = Vec::new();
    let mut position = 0;
    for _ in 0..3 {
        let (id, at) = app.publish("lb-1", offer_body(1)).await;
        published.push(id);
        position = at;
    }
    let student = app.student();
    let mut seen = Vec::new();
    let mut query = format!("limit=1&min_position={position}");
    for page_number in 1..=3 {
        let page = app.offers(&query, &student).await;
        let items = ids(&page);
        assert_eq!(items.len(), 1, "page {page_number}: {page}");
        seen.extend(items.clone());
        if page_number < 3 {
            assert_eq!(page["next"], json!(items[0]), "next is the last id of the page");
            query = format!("limit=1&after={}", items[0]);
        } else {
            assert!(page.get("next").is_none(), "the last page has no next: {page}");
        }
    }
    assert_eq!(seen, sorted(published.clone()), "every offer once, in id order");
    let whole = app.offers("limit=3", &student).await;
    assert_eq!(ids(&whole), sorted(published));
    assert!(whole.get("next").is_none());
}

#[tokio::test]
async fn offers_with_bad_filters_are_a_problem() {
    let app = spawn_app().await;
    let school = app.school();
    for (query, field) in [
        ("level=9", "level"),
        ("level=0", "level"),
        ("qualification=12", "qualification"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("min_position=-1", "min_position"),
    ] {
        let refused = problem(
            app.get(&format!("/v1/offers?{query}"), &school).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(fields(&refused), [field], "{query}: {refused}");
    }
    let both = problem(
        app.get("/v1/offers?level=9&qualification=12", &school).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&both), ["level", "qualification"]);
    for query in ["level=two", "open=maybe", "after=not-a-uuid", "colour=red"] {
        problem(app.get(&format!("/v1/offers?{query}"), &school).await, StatusCode::BAD_REQUEST)
            .await;
    }
}

#[tokio::test]
async fn an_import_of_1000_students_is_one_request_above_the_usual_body_limit() {
    let app = spawn_app().await;
    let students: Vec<Value> =
        (0..1000).map(|i| enrolment_at_level(&format!("s-{i}"), 2)).collect();
    let body = json!({ "students": students });
    // The test app's usual limit is 16 KiB; a bulk import may be larger.
    assert!(body.to_string().len() > 16 * 1024);
    let result = app.import(&app.school(), body["students"].clone()).await;
    assert_eq!(result["created"], 1000, "{}", result["invalid"]);
    // Other operations keep the usual limit.
    let mut big = enrolment("s-big", "bol", born());
    big["padding"] = json!("x".repeat(20 * 1024));
    problem(app.post("/v1/students", &app.school(), big).await, StatusCode::PAYLOAD_TOO_LARGE)
        .await;
}
