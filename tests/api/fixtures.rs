//! Building blocks for placement tests: students, offers and placements at
//! every stage of the lifecycle, made through the API itself.

use chrono::{Days, NaiveDate, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagepact_api::auth::Role;

use crate::helpers::TestApp;

/// The default school of `TestApp::school()` and `TestApp::student()`.
pub const SCHOOL: &str = "25XX";
/// Another school.
pub const OTHER_SCHOOL: &str = "30YY";

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// A birth date that makes a student `years` old at an agreement's start.
pub fn born_years_before_start(years: u64) -> NaiveDate {
    start_date() - Days::new(years * 366)
}

/// The first day of test offers and agreements: a month ahead.
pub fn start_date() -> NaiveDate {
    today() + Days::new(30)
}

/// The last day of test offers and agreements.
pub fn end_date() -> NaiveDate {
    today() + Days::new(150)
}

pub fn enrolment(student_id: &str, pathway: &str, born: NaiveDate) -> Value {
    json!({
        "student_id": student_id, "qualification": "25180", "level": 2, "pathway": pathway,
        "cohort": 2026, "first_year": true, "date_of_birth": born,
    })
}

pub fn offer_body(slots: u32) -> Value {
    json!({
        "qualification": "25180", "levels": [2, 3], "slots": slots,
        "period": {"start": start_date(), "end": end_date()},
        "hours_per_week": 32, "region": "Utrecht",
        "learning_opportunities": ["service on a live network"],
        "internship_allowance": {"amount_eur": 250.0, "per": "month"},
        "open_for_matching": true,
    })
}

/// An agreement with costs of 81.00 covered by the expense allowance (C1).
pub fn agreement_body(hourly_wage_eur: Option<f64>) -> Value {
    let mut body = json!({
        "start_date": start_date(), "end_date": end_date(), "hours_per_week": 32,
        "learning_goals": ["install a heat pump"],
        "school_contact": "BPV-017", "company_trainer": "PO-3",
        "compensation": {
            "costs": [{"kind": "travel", "amount_eur": 40.0}, {"kind": "vog", "amount_eur": 41.0}],
            "expense_allowance_eur": 81.0,
            "internship_allowance": {"amount_eur": 300.0, "per": "month"},
        },
    });
    if let Some(wage) = hourly_wage_eur {
        body["compensation"]["hourly_wage_eur"] = json!(wage);
    }
    body
}

pub fn all_three() -> Value {
    json!(["student", "school", "company"])
}

/// The JSON body of a successful response (panics with the body otherwise).
pub async fn ok_json(response: reqwest::Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).expect("json body")
}

impl TestApp {
    pub fn school_of(&self, school: &str) -> String {
        self.token(Role::School, Some(school), None)
    }

    pub fn student_of(&self, school: &str, student_id: &str) -> String {
        self.token(Role::Student, Some(school), Some(student_id))
    }

    /// Enrols a student at `SCHOOL` (BOL unless said otherwise).
    pub async fn enroll(&self, student_id: &str, pathway: &str, born: NaiveDate) -> Value {
        let response =
            self.post("/v1/students", &self.school(), enrolment(student_id, pathway, born)).await;
        ok_json(response, StatusCode::CREATED).await
    }

    /// A company recognised for 25180 with an offer of `slots` slots; the offer id.
    pub async fn company_with_offer(&self, company_id: &str, slots: u32) -> String {
        self.recognised_company(company_id).await;
        let response = self.post("/v1/offers", &self.company(company_id), offer_body(slots)).await;
        let body = ok_json(response, StatusCode::CREATED).await;
        body["offer_id"].as_str().expect("offer id").to_owned()
    }

    /// A match of `student_id` (of `SCHOOL`) with `offer_id`; the placement id.
    pub async fn propose(&self, student_id: &str, offer_id: &str) -> String {
        let response = self
            .post(
                "/v1/placements",
                &self.school(),
                json!({"student_id": student_id, "offer_id": offer_id}),
            )
            .await;
        let body = ok_json(response, StatusCode::CREATED).await;
        body["placement_id"].as_str().expect("placement id").to_owned()
    }

    /// POSTs a placement step and checks it is accepted; returns the body.
    pub async fn step(&self, placement: &str, step: &str, token: &str, body: Value) -> Value {
        let response = self.post(&format!("/v1/placements/{placement}/{step}"), token, body).await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{step}: {status} {text}");
        serde_json::from_str(&text).expect("json body")
    }

    /// A BOL student `student_id` (adult), a company with a one-slot offer,
    /// and their placement, accepted and with a drafted agreement.
    pub async fn agreed_placement(&self, student_id: &str, company_id: &str) -> String {
        self.enroll(student_id, "bol", born_years_before_start(20)).await;
        let offer = self.company_with_offer(company_id, 1).await;
        let placement = self.propose(student_id, &offer).await;
        let student = self.student_of(SCHOOL, student_id);
        self.step(&placement, "accept", &student, json!({})).await;
        self.step(&placement, "agreement", &self.school(), agreement_body(None)).await;
        placement
    }

    /// `agreed_placement`, signed by all three and started.
    pub async fn active_placement(&self, student_id: &str, company_id: &str) -> String {
        let placement = self.agreed_placement(student_id, company_id).await;
        let student = self.student_of(SCHOOL, student_id);
        for token in [student, self.school(), self.company(company_id)] {
            self.step(&placement, "agreement/signatures", &token, json!({})).await;
        }
        self.step(&placement, "start", &self.school(), json!({})).await;
        placement
    }

    /// A placement as `token` sees it once it reflects `position`.
    pub async fn placement_at(&self, placement: &str, position: i64, token: &str) -> Value {
        let response =
            self.get(&format!("/v1/placements/{placement}?min_position={position}"), token).await;
        ok_json(response, StatusCode::OK).await
    }

    /// The events of one aggregate, by type, in order.
    pub async fn event_types_of(&self, aggregate_id: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence",
        )
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await
        .expect("events")
    }
}
