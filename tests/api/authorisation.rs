//! The authorisation matrix (issue 7): every operation of the spec × every
//! role × the caller's own object and another organisation's object.
//!
//! The roles an operation allows are read from the spec itself (each
//! operation's bearer requirement lists them), so the documentation third
//! parties read and what the handlers enforce cannot drift apart. For each
//! operation and role a fresh object is made; then
//! - a role the spec does not list is refused, with its own object and a
//!   foreign one;
//! - a listed role from another organisation is refused (or, on a list, does not
//!   see the object), where the object belongs to an organisation of that role;
//! - last, the listed role succeeds on its own object — which also shows the
//!   refusals before it changed nothing.
//!
//! Refused callers act under their own subject, `intruder`: every event records
//! its actor, so "a refusal records nothing" is that no event of `intruder`
//! exists — a count that reactions of earlier steps cannot disturb.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stagepact_api::auth::Role;

use crate::fixtures::*;
use crate::helpers::{TestApp, await_projections, company, grant, reason, spawn_app};

const ROLES: [Role; 5] = [Role::Student, Role::School, Role::Company, Role::Sbb, Role::Monitor];

/// A company of another organisation than any object's.
const FOREIGN_COMPANY: &str = "mx-foreign";

/// The subject of every refused call.
const INTRUDER: &str = "intruder";

/// One request, prepared against fresh objects.
struct Prepared {
    method: Method,
    path: String,
    body: Value,
    /// The objects' owners.
    student: String,
    company: String,
    /// The roles whose organisation owns the object: a caller of such a role
    /// from another organisation must not reach it. Roles that may act on any
    /// object (SBB on companies, a school reading an offer) are not listed.
    scoped: &'static [Role],
    /// On a list: the id its owner sees in it and a foreign caller does not.
    listed: Option<String>,
}

impl Prepared {
    fn get(path: impl Into<String>, student: &str, company: &str, scoped: &'static [Role]) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: Value::Null,
            student: student.to_owned(),
            company: company.to_owned(),
            scoped,
            listed: None,
        }
    }

    fn post(
        path: impl Into<String>,
        body: Value,
        student: &str,
        company: &str,
        scoped: &'static [Role],
    ) -> Self {
        Self { method: Method::POST, body, ..Self::get(path, student, company, scoped) }
    }

    fn listing(mut self, id: &str) -> Self {
        self.listed = Some(id.to_owned());
        self
    }
}

const PARTIES: &[Role] = &[Role::School, Role::Company, Role::Student];
const SCHOOL_ONLY: &[Role] = &[Role::School];
const COMPANY_ONLY: &[Role] = &[Role::Company];
const STUDENT_ONLY: &[Role] = &[Role::Student];
const SCHOOL_AND_STUDENT: &[Role] = &[Role::School, Role::Student];
const NOBODY: &[Role] = &[];

/// The roles each operation's security requirement names, from the spec.
fn allowed_roles() -> Vec<(String, Vec<String>)> {
    let spec =
        serde_json::from_str::<Value>(&stagepact_api::openapi::document_json()).expect("spec");
    let mut operations = Vec::new();
    for item in spec["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("path item").values() {
            let Some(requirements) = operation["security"].as_array() else { continue };
            let roles = requirements
                .iter()
                .flat_map(|r| r["bearer"].as_array().cloned().unwrap_or_default())
                .map(|role| role.as_str().expect("a role name").to_owned())
                .collect();
            let id = operation["operationId"].as_str().expect("an operation id");
            operations.push((id.to_owned(), roles));
        }
    }
    operations.sort();
    operations
}

impl TestApp {
    /// A token of `role` for the owners of `prepared`, as `subject`.
    fn own_token(&self, role: Role, prepared: &Prepared, subject: &str) -> String {
        match role {
            Role::School => self.token_as(subject, role, Some(SCHOOL), None),
            Role::Student => self.token_as(subject, role, Some(SCHOOL), Some(&prepared.student)),
            Role::Company => self.token_as(subject, role, Some(&prepared.company), None),
            Role::Sbb | Role::Monitor => self.token_as(subject, role, None, None),
        }
    }

    /// Tokens of `role` from other organisations: another school, another
    /// company, another student of the same school, and the same student
    /// number at another school.
    fn foreign_tokens(&self, role: Role, prepared: &Prepared) -> Vec<String> {
        match role {
            Role::School => vec![self.token_as(INTRUDER, role, Some(OTHER_SCHOOL), None)],
            Role::Student => vec![
                self.token_as(INTRUDER, role, Some(SCHOOL), Some("mx-intruder")),
                self.token_as(INTRUDER, role, Some(OTHER_SCHOOL), Some(&prepared.student)),
            ],
            Role::Company => vec![self.token_as(INTRUDER, role, Some(FOREIGN_COMPANY), None)],
            Role::Sbb | Role::Monitor => Vec::new(),
        }
    }

    async fn send(&self, prepared: &Prepared, token: &str) -> (StatusCode, String) {
        let mut request = self
            .client
            .request(prepared.method.clone(), self.url(&prepared.path))
            .bearer_auth(token);
        if prepared.method == Method::POST {
            request = request.json(&prepared.body);
        }
        let response = request.send().await.expect("request");
        (response.status(), response.text().await.unwrap_or_default())
    }

    async fn intruder_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE metadata->>'actor' = $1")
            .bind(INTRUDER)
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// A BOL student of `SCHOOL`, adult at the start.
    async fn enrolled(&self, student: &str) {
        self.enroll(student, "bol", born_years_before_start(20)).await;
    }

    /// A first-year student with a learning wish, a candidate of matching rounds.
    async fn with_wish(&self, student: &str) {
        self.enrolled(student).await;
        let wish = json!({
            "learning_goals": ["service on a live network"], "competences": ["soldering"],
            "sectors": ["Techniek"], "region": "Utrecht",
        });
        let path = format!("/v1/students/{student}/learning-wish");
        ok_json(self.post(&path, &self.school(), wish).await, StatusCode::ACCEPTED).await;
    }

    /// `student` proposed for a fresh offer of `company`; the placement id.
    async fn proposed(&self, student: &str, company: &str) -> String {
        self.enrolled(student).await;
        let offer = self.company_with_offer(company, 1).await;
        self.propose(student, &offer).await
    }

    /// An active placement of `student` at `company` with the three contact
    /// moments G2 asks for.
    async fn completable(&self, student: &str, company: &str) -> String {
        let placement = self.active_placement(student, company).await;
        for (kind, mode) in [("start", "on_site"), ("midway", "video"), ("end", "phone")] {
            let moment = json!({"kind": kind, "mode": mode, "held_on": today(), "participants": all_three()});
            self.step(&placement, "contact-moments", &self.school(), moment).await;
        }
        placement
    }

    /// A discrimination report by `student` about their active placement.
    async fn reported(&self, student: &str, company: &str) -> (String, String) {
        let placement = self.active_placement(student, company).await;
        let body = report_body(company, Some(&placement));
        let token = self.student_of(SCHOOL, student);
        let filed =
            ok_json(self.post("/v1/reports", &token, body).await, StatusCode::CREATED).await;
        (filed["report_id"].as_str().expect("report id").to_owned(), placement)
    }

    async fn created_id(&self, path: &str, token: &str, body: Value, field: &str) -> String {
        let created = ok_json(self.post(path, token, body).await, StatusCode::CREATED).await;
        created[field].as_str().expect("an id").to_owned()
    }

    /// A round of `SCHOOL` for `student` alone, run: its id and the first
    /// offer the student was introduced to.
    async fn ran_round(&self, student: &str, company: &str, variant: &str) -> (String, String) {
        self.with_wish(student).await;
        self.company_with_offer(company, 1).await;
        let body = round_body(student, variant);
        let round = self.created_id("/v1/matching-rounds", &self.school(), body, "round_id").await;
        let path = format!("/v1/matching-rounds/{round}/runs");
        let ran =
            ok_json(self.post(&path, &self.school(), json!({})).await, StatusCode::ACCEPTED).await;
        let position = ran["position"].as_i64().expect("position");
        let path = format!("/v1/matching-rounds/{round}?min_position={position}");
        let view = ok_json(self.get(&path, &self.school()).await, StatusCode::OK).await;
        let offer = view["proposals"][0]["offer_id"].as_str().expect("an introduction").to_owned();
        (round, offer)
    }

    /// Fresh objects for `operation` as `caller` will call it; `n` keeps
    /// every preparation's students and companies apart.
    async fn prepare(&self, operation: &str, caller: Role, n: usize) -> Prepared {
        let student = format!("mx-{n}");
        let company_id = format!("mc-{n}");
        let (s, c) = (student.as_str(), company_id.as_str());
        let placements = |placement: &str, step: &str, body: Value| {
            Prepared::post(format!("/v1/placements/{placement}/{step}"), body, s, c, PARTIES)
        };
        let reports = |report: &str, step: &str, body: Value| {
            Prepared::post(format!("/v1/reports/{report}/{step}"), body, s, c, SCHOOL_AND_STUDENT)
        };
        let sbb = self.sbb();
        match operation {
            // Learning companies and SBB.
            "listCompanies" => {
                self.recognised_company(c).await;
                Prepared::get("/v1/companies", s, c, COMPANY_ONLY).listing(c)
            }
            "registerCompany" => {
                Prepared::post("/v1/companies", company(c, "Utrecht"), s, c, NOBODY)
            }
            "getCompany" => {
                self.recognised_company(c).await;
                Prepared::get(format!("/v1/companies/{c}"), s, c, COMPANY_ONLY)
            }
            "setMatchingParticipation" => {
                self.recognised_company(c).await;
                let path = format!("/v1/companies/{c}/matching-participation");
                Prepared::post(path, json!({"participates": false}), s, c, COMPANY_ONLY)
            }
            "grantRecognition" => {
                ok_json(
                    self.post("/v1/companies", &sbb, company(c, "Utrecht")).await,
                    StatusCode::CREATED,
                )
                .await;
                Prepared::post(
                    format!("/v1/companies/{c}/recognitions"),
                    grant("25180"),
                    s,
                    c,
                    NOBODY,
                )
            }
            "suspendRecognition" | "revokeRecognition" => {
                self.recognised_company(c).await;
                let step = if operation == "suspendRecognition" { "suspend" } else { "revoke" };
                Prepared::post(format!("/v1/companies/{c}/{step}"), reason(), s, c, NOBODY)
            }
            "reinstateRecognition" => {
                self.recognised_company(c).await;
                let suspend =
                    self.post(&format!("/v1/companies/{c}/suspend"), &sbb, reason()).await;
                ok_json(suspend, StatusCode::ACCEPTED).await;
                Prepared::post(format!("/v1/companies/{c}/reinstate"), reason(), s, c, NOBODY)
            }
            "listComplaints" => Prepared::get("/v1/complaints", s, c, NOBODY),
            "listSignals" => Prepared::get("/v1/signals", s, c, NOBODY),
            "openInvestigation" => {
                self.recognised_company(c).await;
                Prepared::post("/v1/investigations", json!({"company_id": c}), s, c, NOBODY)
            }
            "getInvestigation" | "recordHearing" | "concludeInvestigation" => {
                self.recognised_company(c).await;
                let id = self
                    .created_id(
                        "/v1/investigations",
                        &sbb,
                        json!({"company_id": c}),
                        "investigation_id",
                    )
                    .await;
                match operation {
                    "getInvestigation" => {
                        Prepared::get(format!("/v1/investigations/{id}"), s, c, COMPANY_ONLY)
                    }
                    "recordHearing" => Prepared::post(
                        format!("/v1/investigations/{id}/hearings"),
                        json!({"party": "company", "held_on": today()}),
                        s,
                        c,
                        NOBODY,
                    ),
                    _ => {
                        // D5: both sides are heard before a conclusion.
                        for party in ["company", "school"] {
                            let path = format!("/v1/investigations/{id}/hearings");
                            let hearing = json!({"party": party, "held_on": today()});
                            ok_json(self.post(&path, &sbb, hearing).await, StatusCode::ACCEPTED)
                                .await;
                        }
                        Prepared::post(
                            format!("/v1/investigations/{id}/conclusion"),
                            json!({"outcome": "unfounded"}),
                            s,
                            c,
                            NOBODY,
                        )
                    }
                }
            }
            // Students. Enrolling is within the caller's own school by
            // construction: there is no foreign object to reach.
            "enrollStudent" => {
                let body = enrolment(s, "bol", born_years_before_start(20));
                Prepared::post("/v1/students", body, s, c, NOBODY)
            }
            "importStudents" => {
                let body = json!({"students": [enrolment(s, "bol", born_years_before_start(20))]});
                Prepared::post("/v1/students/import", body, s, c, NOBODY)
            }
            "getStudent" => {
                self.enrolled(s).await;
                Prepared::get(format!("/v1/students/{s}"), s, c, SCHOOL_AND_STUDENT)
            }
            "recordLearningWish" => {
                self.enrolled(s).await;
                let wish = json!({
                    "learning_goals": ["wiring"], "competences": ["teamwork"],
                    "sectors": ["Techniek"], "region": "Utrecht",
                });
                Prepared::post(
                    format!("/v1/students/{s}/learning-wish"),
                    wish,
                    s,
                    c,
                    SCHOOL_AND_STUDENT,
                )
            }
            "recordSupportNeed" => {
                self.enrolled(s).await;
                let need = json!({"support_need": "extra time to read instructions"});
                Prepared::post(format!("/v1/students/{s}/support-need"), need, s, c, SCHOOL_ONLY)
            }
            // An erasure is keyed by the caller's own school: another school
            // naming this number erases its own student's key, never this one
            // (reports.rs tests that), so there is no foreign object either.
            "eraseStudentData" => {
                self.enrolled(s).await;
                Prepared::post("/v1/erasures", json!({"student_id": s}), s, c, NOBODY)
            }
            "getMyOverview" | "getMyTimeline" => {
                let placement = self.proposed(s, c).await;
                let path = if operation == "getMyOverview" {
                    "/v1/me/overview".to_owned()
                } else {
                    "/v1/me/timeline".to_owned()
                };
                Prepared::get(path, s, c, STUDENT_ONLY).listing(&placement)
            }
            // Offers: schools and students read every offer; a company its own.
            "listOffers" | "getOffer" | "withdrawOffer" => {
                let offer = self.company_with_offer(c, 1).await;
                match operation {
                    "listOffers" => Prepared::get("/v1/offers", s, c, COMPANY_ONLY).listing(&offer),
                    "getOffer" => Prepared::get(format!("/v1/offers/{offer}"), s, c, COMPANY_ONLY),
                    _ => Prepared::post(
                        format!("/v1/offers/{offer}/withdraw"),
                        reason(),
                        s,
                        c,
                        COMPANY_ONLY,
                    ),
                }
            }
            "publishOffer" => {
                self.recognised_company(c).await;
                Prepared::post("/v1/offers", offer_body(1), s, c, NOBODY)
            }
            // Placements: the student's school, the company and the student
            // are its parties.
            "listPlacements" => {
                let placement = self.proposed(s, c).await;
                // A school narrows its list to the student; a company may not filter by student.
                let filter =
                    if caller == Role::School { format!("student_id={s}&") } else { String::new() };
                Prepared::get(format!("/v1/placements?{filter}"), s, c, PARTIES).listing(&placement)
            }
            "proposeMatch" => {
                self.enrolled(s).await;
                let offer = self.company_with_offer(c, 1).await;
                let body = json!({"student_id": s, "offer_id": offer});
                Prepared::post("/v1/placements", body, s, c, SCHOOL_ONLY)
            }
            // A student proposes for themselves; a school names its student.
            "proposeSelfFoundPlacement" => {
                self.enrolled(s).await;
                self.recognised_company(c).await;
                let mut body = json!({"company_id": c, "qualification": "25180"});
                if caller == Role::School {
                    body["student_id"] = json!(s);
                }
                Prepared::post("/v1/placements/self-found", body, s, c, SCHOOL_ONLY)
            }
            "getPlacement" => {
                let placement = self.proposed(s, c).await;
                Prepared::get(format!("/v1/placements/{placement}"), s, c, PARTIES)
            }
            "acceptMatch" => placements(&self.proposed(s, c).await, "accept", json!({})),
            "objectToMatch" => placements(
                &self.proposed(s, c).await,
                "object",
                json!({"reasons": ["too far to travel"]}),
            ),
            "withdrawMatch" => placements(
                &self.proposed(s, c).await,
                "withdraw",
                json!({"reason": "a better fit"}),
            ),
            "approveSelfFoundPlacement" => {
                self.enrolled(s).await;
                self.recognised_company(c).await;
                let body = json!({"company_id": c, "qualification": "25180"});
                let token = self.student_of(SCHOOL, s);
                let placement = self
                    .created_id("/v1/placements/self-found", &token, body, "placement_id")
                    .await;
                placements(&placement, "approve", json!({}))
            }
            "draftAgreement" => {
                let placement = self.proposed(s, c).await;
                self.step(&placement, "accept", &self.student_of(SCHOOL, s), json!({})).await;
                placements(&placement, "agreement", agreement_body(None))
            }
            "recordWarmHandover" => {
                let placement = self.proposed(s, c).await;
                self.step(&placement, "accept", &self.student_of(SCHOOL, s), json!({})).await;
                placements(&placement, "warm-handover", json!({"held_on": today()}))
            }
            "signAgreement" => {
                placements(&self.agreed_placement(s, c).await, "agreement/signatures", json!({}))
            }
            "startPlacement" => {
                let placement = self.agreed_placement(s, c).await;
                for token in [self.student_of(SCHOOL, s), self.school(), self.company(c)] {
                    self.step(&placement, "agreement/signatures", &token, json!({})).await;
                }
                placements(&placement, "start", json!({}))
            }
            "recordContactMoment" => {
                let moment = json!({"kind": "start", "mode": "on_site", "held_on": today(), "participants": all_three()});
                placements(&self.active_placement(s, c).await, "contact-moments", moment)
            }
            // Another party than the caller records the moment the caller confirms.
            "confirmContactMoment" => {
                let placement = self.active_placement(s, c).await;
                let recorder = if caller == Role::School { self.company(c) } else { self.school() };
                let moment = json!({"kind": "start", "mode": "on_site", "held_on": today(), "participants": all_three()});
                let recorded = self.step(&placement, "contact-moments", &recorder, moment).await;
                let id = recorded["moment_id"].as_str().expect("moment id");
                placements(&placement, &format!("contact-moments/{id}/confirm"), json!({}))
            }
            "waiveContactMomentRequirement" => placements(
                &self.active_placement(s, c).await,
                "contact-moments/waiver",
                json!({"reason": "student hospitalised; guidance by phone"}),
            ),
            "interruptPlacement" => placements(
                &self.active_placement(s, c).await,
                "interrupt",
                json!({"reason": "moved abroad"}),
            ),
            "rateGuidance" => placements(
                &self.active_placement(s, c).await,
                "rating",
                json!({"school_score": 4, "company_score": 3}),
            ),
            "completePlacement" => placements(&self.completable(s, c).await, "complete", json!({})),
            // Reports: the student's school and the student are its parties.
            "fileReport" => {
                let placement = self.active_placement(s, c).await;
                Prepared::post("/v1/reports", report_body(c, Some(&placement)), s, c, STUDENT_ONLY)
            }
            "listReports" => {
                let (report, _) = self.reported(s, c).await;
                let filter =
                    if caller == Role::School { format!("student_id={s}&") } else { String::new() };
                Prepared::get(format!("/v1/reports?{filter}"), s, c, SCHOOL_AND_STUDENT)
                    .listing(&report)
            }
            "getReport" => {
                let (report, _) = self.reported(s, c).await;
                Prepared::get(format!("/v1/reports/{report}"), s, c, SCHOOL_AND_STUDENT)
            }
            "acknowledgeReport" => reports(&self.reported(s, c).await.0, "acknowledge", json!({})),
            "recordReportConversation" => reports(
                &self.reported(s, c).await.0,
                "conversations",
                json!({"form": "school_and_company", "held_on": today(), "safe_for_student": false}),
            ),
            "setForwardingConsent" => {
                reports(&self.reported(s, c).await.0, "consent", json!({"consent": false}))
            }
            "forwardSignal" => reports(&self.reported(s, c).await.0, "signal", json!({})),
            "escalateToSbb" => reports(
                &self.reported(s, c).await.0,
                "escalation",
                json!({"summary": "Signals of discrimination in recruitment."}),
            ),
            "closeReport" => {
                let (report, _) = self.reported(s, c).await;
                // D4: closed only after a follow-up step.
                let path = format!("/v1/reports/{report}/conversations");
                let conversation = json!({
                    "form": "school_and_company", "held_on": today(), "safe_for_student": false,
                });
                ok_json(self.post(&path, &self.school(), conversation).await, StatusCode::ACCEPTED)
                    .await;
                reports(&report, "close", json!({"outcome": "resolved"}))
            }
            // The replacement is proposed elsewhere, naming what it replaces.
            "offerReplacementPlacement" => {
                let (report, reported) = self.reported(s, c).await;
                let elsewhere = format!("{c}-b");
                let offer = self.company_with_offer(&elsewhere, 1).await;
                let body = json!({"student_id": s, "offer_id": offer, "replaces": reported});
                let replacement =
                    self.created_id("/v1/placements", &self.school(), body, "placement_id").await;
                let body = json!({"placement_id": replacement});
                Prepared::post(format!("/v1/reports/{report}/replacement"), body, s, c, SCHOOL_ONLY)
            }
            // Matching rounds belong to the school that opened them.
            "openMatchingRound" => {
                self.with_wish(s).await;
                Prepared::post("/v1/matching-rounds", round_body(s, "single"), s, c, SCHOOL_ONLY)
            }
            "getMatchingRound" | "runMatchingRound" => {
                self.with_wish(s).await;
                let round = self
                    .created_id(
                        "/v1/matching-rounds",
                        &self.school(),
                        round_body(s, "single"),
                        "round_id",
                    )
                    .await;
                if operation == "runMatchingRound" {
                    Prepared::post(
                        format!("/v1/matching-rounds/{round}/runs"),
                        json!({}),
                        s,
                        c,
                        SCHOOL_ONLY,
                    )
                } else {
                    Prepared::get(format!("/v1/matching-rounds/{round}"), s, c, SCHOOL_ONLY)
                }
            }
            "publishMatchingRound" => {
                let (round, _) = self.ran_round(s, c, "single").await;
                Prepared::post(
                    format!("/v1/matching-rounds/{round}/publication"),
                    json!({}),
                    s,
                    c,
                    SCHOOL_ONLY,
                )
            }
            "settleMatchingRound" => {
                let (round, offer) = self.ran_round(s, c, "two_and_two").await;
                let path = format!("/v1/matching-rounds/{round}/publication");
                ok_json(self.post(&path, &self.school(), json!({})).await, StatusCode::ACCEPTED)
                    .await;
                let body = json!({"settlements": [{"student_id": s, "offer_id": offer}]});
                Prepared::post(
                    format!("/v1/matching-rounds/{round}/settlements"),
                    body,
                    s,
                    c,
                    SCHOOL_ONLY,
                )
            }
            // Monitoring: a school reads its own figures; supply and demand is
            // the same market for every reader.
            "getIndicators" => {
                let scope = if caller == Role::School {
                    format!("school={SCHOOL}&")
                } else {
                    String::new()
                };
                Prepared::get(format!("/v1/indicators?{scope}"), s, c, SCHOOL_ONLY)
            }
            "getSupplyDemand" => Prepared::get("/v1/supply-demand", s, c, NOBODY),
            // The feed: a school sees its students' placements, a company its own.
            // The placement's own events (ids `placement:<id>:<n>`); the offer's
            // slot reservation names the placement to every school.
            "listEvents" => {
                let after = self.stamped_head().await;
                let placement = self.proposed(s, c).await;
                Prepared::get(
                    format!("/v1/events?after={after}&limit=1000"),
                    s,
                    c,
                    &[Role::School, Role::Company],
                )
                .listing(&format!("placement:{placement}:"))
            }
            other => panic!("no preparation for {other}: add one when adding an operation"),
        }
    }

    /// Waits until every projection and reaction has applied the whole log, so
    /// that a read sees the prepared objects (a refusal cannot be a lagging read
    /// model) and no reaction to the preparation lands among the calls.
    async fn settled(&self) {
        let head = self.stamped_head().await;
        await_projections(&self.pool, head, std::time::Duration::from_secs(30)).await;
    }
}

fn report_body(company: &str, placement: Option<&str>) -> Value {
    let mut body = json!({
        "kind": "discrimination", "grounds": ["origin"], "company_id": company,
        "description": "A remark about my name at the interview.",
        "wants_replacement_placement": true, "consent_to_forward": true,
    });
    if let Some(placement) = placement {
        body["placement_id"] = json!(placement);
    }
    body
}

fn round_body(student: &str, variant: &str) -> Value {
    json!({
        "cohort": 2026, "period": {"start": start_date(), "end": end_date()},
        "variant": variant, "student_ids": [student],
    })
}

/// A foreign caller's refusal: 403 (not this caller's), 404 (not in this
/// caller's reach) or 422 (a body naming an object out of reach) — never a
/// success, never a 5xx.
fn refused(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY
    )
}

#[tokio::test]
async fn every_operation_allows_only_its_roles_on_their_own_objects() {
    let app = spawn_app().await;
    app.recognised_company(FOREIGN_COMPANY).await;
    let mut failures = Vec::new();
    let mut n = 0;
    let operations = allowed_roles();
    assert!(operations.len() >= 60, "every operation of the spec: {}", operations.len());
    for (operation, allowed) in &operations {
        assert!(!allowed.is_empty(), "{operation} names the roles that may call it");
        for role in ROLES {
            n += 1;
            let prepared = app.prepare(operation, role, n).await;
            app.settled().await;
            let may = allowed.iter().any(|r| r == role.as_str());
            let mut outsiders = app.foreign_tokens(role, &prepared);
            if !may {
                outsiders.push(app.own_token(role, &prepared, INTRUDER));
            } else if !prepared.scoped.contains(&role) {
                outsiders.clear();
            }
            let before = app.intruder_events().await;
            for token in &outsiders {
                let (status, text) = app.send(&prepared, token).await;
                let hidden = match (&prepared.listed, may) {
                    // A role the spec does not list is told so, before any lookup.
                    (_, false) => status == StatusCode::FORBIDDEN,
                    // An allowed list answers, without the foreign object.
                    (Some(id), true) => status == StatusCode::OK && !text.contains(id.as_str()),
                    (None, true) => refused(status),
                };
                if !hidden {
                    failures.push(format!(
                        "{operation} as a foreign or unlisted {role}: {status} {text}"
                    ));
                }
            }
            let recorded = app.intruder_events().await - before;
            if recorded != 0 {
                failures
                    .push(format!("{operation} as {role}: a refusal recorded {recorded} events"));
                break;
            }
            if may {
                let token = app.own_token(role, &prepared, "tester");
                let (status, text) = app.send(&prepared, &token).await;
                let shown = prepared.listed.as_ref().is_none_or(|id| {
                    !prepared.scoped.contains(&role) || text.contains(id.as_str())
                });
                if !status.is_success() || !shown {
                    failures.push(format!("{operation} as its own {role}: {status} {text}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
