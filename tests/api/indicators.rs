//! The pact's monitoring through the API: indicators per goal, their
//! suppression of small cells (DESIGN §6), CSV, filters, who may read them,
//! a rebuild that gives the same numbers, and supply and demand with S2's
//! once-only shortage warning in the feed.

use reqwest::StatusCode;
use serde_json::{Value, json};
use stagepact_api::auth::Role;

use crate::fixtures::*;
use crate::helpers::{TestApp, company, grant, problem, spawn_app};

const COMPANY: &str = "100012345";
const NEED: &str = "needs a quiet workplace";

fn wish(region: &str) -> Value {
    json!({
        "learning_goals": ["install a heat pump"], "competences": ["soldering"],
        "sectors": ["Techniek"], "region": region,
    })
}

impl TestApp {
    /// `getIndicators` as `token` with `query` (`&`-joined, no `?`), once the
    /// figures reflect the whole log.
    async fn indicators(&self, token: &str, query: &str) -> reqwest::Response {
        let head = self.stamped_head().await;
        self.get(&format!("/v1/indicators?min_position={head}&{query}"), token).await
    }

    /// A student of `school` with a learning wish for `region`.
    async fn seeking(&self, school: &str, student_id: &str, region: &str) {
        let token = self.school_of(school);
        let body = enrolment(student_id, "bol", born_years_before_start(20));
        ok_json(self.post("/v1/students", &token, body).await, StatusCode::CREATED).await;
        let path = format!("/v1/students/{student_id}/learning-wish");
        ok_json(self.post(&path, &token, wish(region)).await, StatusCode::ACCEPTED).await;
    }

    /// A whole placement of `student_id` at `offer`: rated as given.
    async fn completed(&self, student_id: &str, offer: &str, scores: (u8, u8), handover: bool) {
        let (school, company) = (self.school(), self.company(COMPANY));
        let student = self.student_of(SCHOOL, student_id);
        let placement = self.propose(student_id, offer).await;
        self.step(&placement, "accept", &student, json!({})).await;
        self.step(&placement, "agreement", &school, agreement_body(None)).await;
        for token in [&student, &school, &company] {
            self.step(&placement, "agreement/signatures", token, json!({})).await;
        }
        if handover {
            self.step(&placement, "warm-handover", &school, json!({"held_on": today()})).await;
        }
        self.step(&placement, "start", &school, json!({})).await;
        for (kind, mode) in [("start", "on_site"), ("midway", "video"), ("end", "phone")] {
            let moment = json!({"kind": kind, "mode": mode, "held_on": today(), "participants": all_three()});
            self.step(&placement, "contact-moments", &school, moment).await;
        }
        self.step(&placement, "complete", &school, json!({})).await;
        let rating = json!({"school_score": scores.0, "company_score": scores.1});
        self.step(&placement, "rating", &student, rating).await;
    }

    /// Six seeking students of `SCHOOL` in Utrecht; five of them complete a
    /// placement at `COMPANY` (s-1 with a support need and a warm handover);
    /// s-1 reports discrimination on two grounds, followed up at once, and s-2
    /// misuse, not followed up.
    pub(crate) async fn monitored_year(&self) {
        let offer = self.company_with_offer(COMPANY, 10).await;
        for n in 1..=6 {
            self.seeking(SCHOOL, &format!("s-{n}"), "Utrecht").await;
        }
        let need = json!({"support_need": NEED});
        let recorded = self.post("/v1/students/s-1/support-need", &self.school(), need).await;
        ok_json(recorded, StatusCode::ACCEPTED).await;
        for (n, scores) in [(1, (5, 5)), (2, (4, 2)), (3, (3, 4)), (4, (2, 1)), (5, (5, 4))] {
            self.completed(&format!("s-{n}"), &offer, scores, n == 1).await;
        }
        let report = json!({
            "kind": "discrimination", "grounds": ["origin", "religion"], "company_id": COMPANY,
            "description": "They said no to my background.", "wants_replacement_placement": false,
            "consent_to_forward": false,
        });
        let filed = self.post("/v1/reports", &self.student_of(SCHOOL, "s-1"), report).await;
        let report = ok_json(filed, StatusCode::CREATED).await["report_id"]
            .as_str()
            .expect("report id")
            .to_owned();
        let conversation =
            json!({"form": "school_and_company", "held_on": today(), "safe_for_student": false});
        let path = format!("/v1/reports/{report}/conversations");
        ok_json(self.post(&path, &self.school(), conversation).await, StatusCode::ACCEPTED).await;
        let misuse = json!({
            "kind": "misuse", "grounds": [], "company_id": COMPANY,
            "description": "I only stock shelves.", "wants_replacement_placement": false,
            "consent_to_forward": false,
        });
        let filed = self.post("/v1/reports", &self.student_of(SCHOOL, "s-2"), misuse).await;
        ok_json(filed, StatusCode::CREATED).await;
    }
}

fn share(count: Value, of: Value, share: Option<f64>) -> Value {
    match share {
        Some(share) => json!({"count": count, "of": of, "share": share}),
        None => json!({"count": count, "of": of}),
    }
}

const SUPPRESSED: &str = "suppressed";

#[tokio::test]
async fn a_school_reads_its_own_indicators_of_all_four_goals_unsuppressed() {
    let app = spawn_app().await;
    app.monitored_year().await;

    let view = ok_json(app.indicators(&app.school(), "").await, StatusCode::OK).await;

    assert_eq!(view["scope"], json!({"school": SCHOOL}), "a school's own school always");
    assert!(view.get("suppressed_below").is_none());
    let guidance = &view["guidance"];
    assert_eq!(guidance["rated"], 5);
    assert_eq!(guidance["satisfied_with_school"], share(json!(3), json!(5), Some(0.6)));
    assert_eq!(guidance["satisfied_with_company"], share(json!(3), json!(5), Some(0.6)));
    assert_eq!(guidance["contact_moments_compliant"], share(json!(5), json!(5), Some(1.0)));
    assert_eq!(guidance["warm_handover"], share(json!(1), json!(1), Some(1.0)), "G3");

    let reports = &view["discrimination"];
    assert_eq!(reports["reports"], 2);
    assert_eq!(
        reports["by_kind"],
        json!([{"key": "discrimination", "count": 1}, {"key": "misuse", "count": 1}])
    );
    assert_eq!(
        reports["by_ground"],
        json!([{"key": "origin", "count": 1}, {"key": "religion", "count": 1}]),
        "D2: counted from the sealed grounds"
    );
    assert_eq!(reports["followed_up_in_time"], share(json!(1), json!(2), Some(0.5)), "D4");
    assert_eq!(reports["follow_up_working_days"], 10);
    assert_eq!(reports["signals_forwarded"], 0);

    let placements = &view["placements"];
    assert_eq!(placements["students_seeking"], 6);
    assert_eq!(placements["without_placement"], share(json!(1), json!(6), Some(1.0 / 6.0)));
    assert_eq!(placements["first_year_bol_matched"], share(json!(0), json!(6), Some(0.0)), "M2");
    let market = share(json!(SUPPRESSED), json!(SUPPRESSED), None);
    assert_eq!(placements["companies_opted_out"], market, "M4: the market's, one company");

    let compensation = &view["compensation"];
    assert_eq!(compensation["with_internship_allowance"], share(json!(5), json!(5), Some(1.0)));
    assert_eq!(
        compensation["allowance_by_level"],
        json!([{"group": "2", "agreements": 5, "mean_eur_per_month": 300.0, "median_eur_per_month": 300.0}]),
        "C2"
    );
    assert_eq!(compensation["bbl_wage_compliant"], share(json!(0), json!(0), None), "C3");
}

#[tokio::test]
async fn monitors_and_sbb_see_counts_under_five_as_suppressed_never_as_zero() {
    let app = spawn_app().await;
    app.monitored_year().await;

    for token in [app.monitor(), app.sbb()] {
        let view = ok_json(app.indicators(&token, "").await, StatusCode::OK).await;
        assert_eq!(view["suppressed_below"], 5);
        let guidance = &view["guidance"];
        assert_eq!(guidance["rated"], 5, "five is shown");
        let hidden = share(json!(SUPPRESSED), json!(SUPPRESSED), None);
        assert_eq!(guidance["satisfied_with_school"], hidden, "3 of 5: the part is small");
        assert_eq!(guidance["contact_moments_compliant"], share(json!(5), json!(5), Some(1.0)));
        assert_eq!(guidance["warm_handover"], hidden, "1 of 1");
        let reports = &view["discrimination"];
        assert_eq!(reports["reports"], SUPPRESSED);
        assert_eq!(
            reports["by_ground"],
            json!([{"key": "origin", "count": SUPPRESSED}, {"key": "religion", "count": SUPPRESSED}])
        );
        assert_eq!(reports["signals_forwarded"], 0, "an empty cell points at nobody");
        assert_eq!(view["placements"]["students_seeking"], 6);
        assert_eq!(view["placements"]["without_placement"], hidden, "1 of 6");
        let level = &view["compensation"]["allowance_by_level"][0];
        assert_eq!(level["agreements"], 5);
        assert_eq!(level["median_eur_per_month"], 300.0);
    }
}

#[tokio::test]
async fn indicators_filter_by_school_year_school_region_qualification_and_sector() {
    let app = spawn_app().await;
    app.monitored_year().await;
    let school = app.school();
    let count = |view: &Value| view["placements"]["students_seeking"].clone();

    let this_year = stagepact_domain::monitoring::SchoolYear::of(today());
    let next_year =
        stagepact_domain::monitoring::SchoolYear::starting_in(this_year.starts_in() + 1);
    for (query, seeking, rated) in [
        (format!("school_year={this_year}"), 6, 5),
        (format!("school_year={next_year}"), 0, 0),
        ("region=Utrecht".to_owned(), 6, 5),
        ("region=Twente".to_owned(), 0, 0),
        ("qualification=25180".to_owned(), 6, 5),
        ("qualification=25655".to_owned(), 0, 0),
        ("sector=Techniek".to_owned(), 6, 5),
        ("sector=Zorg".to_owned(), 0, 0),
    ] {
        let view = ok_json(app.indicators(&school, &query).await, StatusCode::OK).await;
        assert_eq!(count(&view), seeking, "{query}");
        assert_eq!(view["guidance"]["rated"], rated, "{query}");
    }
    let monitor = app.monitor();
    // The whole market is answered from the school-year totals, a filtered
    // scope from its rows: where both cover the same placements, they agree.
    let goals = |mut view: Value| {
        view["placements"].as_object_mut().expect("goal 3").remove("supply_demand");
        [view["guidance"].take(), view["placements"].take(), view["compensation"].take()]
    };
    let whole = ok_json(app.indicators(&monitor, "").await, StatusCode::OK).await;
    let utrecht = ok_json(app.indicators(&monitor, "region=Utrecht").await, StatusCode::OK).await;
    assert_eq!(goals(utrecht), goals(whole), "every placement is in Utrecht");
    let view =
        ok_json(app.indicators(&monitor, &format!("school={OTHER_SCHOOL}")).await, StatusCode::OK)
            .await;
    assert_eq!(view["scope"]["school"], OTHER_SCHOOL);
    assert_eq!(count(&view), 0);
    assert_eq!(view["guidance"]["rated"], 0);
    let view =
        ok_json(app.indicators(&monitor, &format!("school={SCHOOL}")).await, StatusCode::OK).await;
    assert_eq!(count(&view), 6);
}

#[tokio::test]
async fn only_monitors_sbb_and_a_school_for_itself_read_indicators() {
    let app = spawn_app().await;
    for token in [app.student(), app.company(COMPANY)] {
        problem(app.get("/v1/indicators", &token).await, StatusCode::FORBIDDEN).await;
        problem(app.get("/v1/supply-demand", &token).await, StatusCode::FORBIDDEN).await;
    }
    let foreign = format!("/v1/indicators?school={OTHER_SCHOOL}");
    problem(app.get(&foreign, &app.school()).await, StatusCode::FORBIDDEN).await;
    let own = format!("/v1/indicators?school={SCHOOL}");
    ok_json(app.get(&own, &app.school()).await, StatusCode::OK).await;
    let response = app.client.get(app.url("/v1/indicators")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_filters_are_refused_with_the_fields_named() {
    let app = spawn_app().await;
    let before = app.event_count().await;
    let refused = problem(
        app.get(
            "/v1/indicators?school_year=2026-2028&qualification=251&region=&sector=%0A",
            &app.monitor(),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let mut fields: Vec<&str> = refused["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["qualification", "region", "school_year", "sector"]);
    let unknown = app.get("/v1/indicators?goal=1", &app.monitor()).await;
    assert!(unknown.status().is_client_error(), "{}", unknown.status());
    let refused = problem(
        app.get("/v1/supply-demand?qualification=x", &app.sbb()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "qualification");
    assert_eq!(app.event_count().await, before, "a read records nothing");
}

#[tokio::test]
async fn indicators_come_as_csv_when_asked() {
    let app = spawn_app().await;
    app.monitored_year().await;
    let head = app.stamped_head().await;
    let response = app
        .client
        .get(app.url(&format!("/v1/indicators?min_position={head}")))
        .bearer_auth(app.monitor())
        .header("accept", "text/csv, application/json;q=0.5")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let text = response.text().await.expect("text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "goal,indicator,group,count,of,share");
    assert!(lines.contains(&"guidance,rated,,5,,"), "{text}");
    assert!(lines.contains(&"guidance,satisfied_with_school,,suppressed,suppressed,"), "{text}");
    assert!(lines.contains(&"guidance,contact_moments_compliant,,5,5,1.0000"), "{text}");
    assert!(lines.contains(&"compensation,allowance_by_level_median_eur,2,5,,300.00"), "{text}");
    assert!(lines.contains(&"discrimination,grounds,origin,suppressed,,"), "{text}");

    let preferred = app
        .client
        .get(app.url("/v1/indicators"))
        .bearer_auth(app.monitor())
        .header("accept", "text/csv;q=0.2, application/json")
        .send()
        .await
        .expect("request");
    let content_type = preferred.headers()["content-type"].to_str().unwrap_or_default().to_owned();
    assert!(content_type.starts_with("application/json"), "JSON has the higher quality");
    let supply = app
        .client
        .get(app.url("/v1/supply-demand"))
        .bearer_auth(app.monitor())
        .header("accept", "text/csv")
        .send()
        .await
        .expect("request");
    assert_eq!(supply.headers()["content-type"], "text/csv; charset=utf-8");
    let supply = supply.text().await.expect("text");
    assert_eq!(
        supply.lines().collect::<Vec<_>>(),
        ["qualification,region,seeking,open_slots,ratio,shortage", "25180,Utrecht,suppressed,5,,"]
    );

    let json = app.get("/v1/indicators", &app.monitor()).await;
    assert!(
        json.headers()["content-type"].to_str().unwrap_or_default().starts_with("application/json")
    );
}

#[tokio::test]
async fn rebuilt_from_the_log_the_indicators_give_the_same_numbers() {
    let app = spawn_app().await;
    app.monitored_year().await;
    let figures = |view: Value| {
        let mut view = view;
        view.as_object_mut().expect("object").remove("as_of_position");
        view
    };
    let live = figures(ok_json(app.indicators(&app.school(), "").await, StatusCode::OK).await);
    let live_monitor =
        figures(ok_json(app.indicators(&app.monitor(), "").await, StatusCode::OK).await);

    let head = app.stamped_head().await;
    let reached = app.state.projections.rebuild("indicators").await.expect("rebuild");
    assert!(reached >= head);

    let rebuilt = figures(ok_json(app.indicators(&app.school(), "").await, StatusCode::OK).await);
    assert_eq!(rebuilt, live);
    let rebuilt_monitor =
        figures(ok_json(app.indicators(&app.monitor(), "").await, StatusCode::OK).await);
    assert_eq!(rebuilt_monitor, live_monitor);
    assert_eq!(live["guidance"]["rated"], 5, "the figures are not empty");
}

#[tokio::test]
async fn indicators_follow_the_live_log() {
    let app = spawn_app().await;
    app.monitored_year().await;
    let before = ok_json(app.indicators(&app.school(), "").await, StatusCode::OK).await;
    assert_eq!(before["placements"]["students_seeking"], 6);
    app.seeking(SCHOOL, "s-7", "Utrecht").await;
    let after = ok_json(app.indicators(&app.school(), "").await, StatusCode::OK).await;
    assert_eq!(after["placements"]["students_seeking"], 7);
    assert_eq!(after["placements"]["without_placement"]["count"], 2);
    assert!(after["as_of_position"].as_i64() > before["as_of_position"].as_i64());
}

#[tokio::test]
async fn sbb_decisions_count_by_the_companys_region_suppressed_for_every_reader() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    let companies: Vec<(String, &str)> = (1..=6)
        .map(|n| (format!("20000000{n}"), if n <= 5 { "Utrecht" } else { "Twente" }))
        .collect();
    for (id, region) in &companies {
        ok_json(app.post("/v1/companies", &sbb, company(id, region)).await, StatusCode::CREATED)
            .await;
        let path = format!("/v1/companies/{id}/recognitions");
        ok_json(app.post(&path, &sbb, grant("25180")).await, StatusCode::ACCEPTED).await;
        let path = format!("/v1/companies/{id}/suspend");
        let suspended = app.post(&path, &sbb, json!({"reason": "an investigation"})).await;
        ok_json(suspended, StatusCode::ACCEPTED).await;
        let path = format!("/v1/companies/{id}/matching-participation");
        let opted_out = app.post(&path, &app.company(id), json!({"participates": false})).await;
        ok_json(opted_out, StatusCode::ACCEPTED).await;
    }

    // They concern the market, not the school's own students: a school sees
    // them as a monitor does.
    for token in [app.school(), app.monitor()] {
        let view = ok_json(app.indicators(&token, "").await, StatusCode::OK).await;
        assert_eq!(view["discrimination"]["suspensions"], 6);
        assert_eq!(view["placements"]["companies_opted_out"], share(json!(6), json!(6), Some(1.0)));
        let utrecht = ok_json(app.indicators(&token, "region=Utrecht").await, StatusCode::OK).await;
        assert_eq!(utrecht["discrimination"]["suspensions"], 5, "by the company's region");
        let twente = ok_json(app.indicators(&token, "region=Twente").await, StatusCode::OK).await;
        assert_eq!(twente["discrimination"]["suspensions"], SUPPRESSED);
        assert_eq!(twente["discrimination"]["revocations"], 0);
    }
}

#[tokio::test]
async fn s2_supply_and_demand_flag_a_shortage_once_for_sbb_and_the_schools_concerned() {
    let app = spawn_app().await;
    let offer = app.company_with_offer(COMPANY, 2).await;
    for n in 1..=4 {
        app.seeking(SCHOOL, &format!("s-{n}"), "Utrecht").await;
    }
    for n in 1..=3 {
        app.seeking(OTHER_SCHOOL, &format!("t-{n}"), "Utrecht").await;
    }
    app.seeking(SCHOOL, "s-9", "Twente").await;
    // A placed student seeks no more.
    let placement = app.propose("s-4", &offer).await;
    app.step(&placement, "accept", &app.student_of(SCHOOL, "s-4"), json!({})).await;

    let head = app.stamped_head().await;
    let view = ok_json(
        app.get(&format!("/v1/supply-demand?min_position={head}"), &app.sbb()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(view["margin_percent"], 10);
    assert_eq!(view["suppressed_below"], 5);
    assert_eq!(
        view["rows"],
        json!([
            {"qualification": "25180", "region": "Twente", "seeking": SUPPRESSED, "open_slots": 0},
            {"qualification": "25180", "region": "Utrecht", "seeking": 6, "open_slots": 1, "ratio": 0.17, "shortage": true},
        ]),
        "the accepted match holds one of the two slots"
    );
    let utrecht =
        ok_json(app.get("/v1/supply-demand?region=Utrecht", &app.monitor()).await, StatusCode::OK)
            .await;
    assert_eq!(utrecht["rows"].as_array().map(Vec::len), Some(1));

    let flagged = stagepact_api::delivery::flag_shortages(&app.state).await.expect("flag");
    assert_eq!(flagged, 1, "Utrecht; Twente's one student is too few to publish");
    let again = stagepact_api::delivery::flag_shortages(&app.state).await.expect("flag");
    assert_eq!(again, 0, "once per qualification, region and school year");

    let shortages = |token: String| {
        let app = &app;
        async move {
            app.stamped_head().await;
            let page = ok_json(
                app.get(
                    "/v1/events?after=0&limit=1000&type=nl.stagepact.shortage.shortage_flagged",
                    &token,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            let events = page["events"].as_array().expect("events");
            for event in events {
                // A school is not told which other schools seek there.
                let schools = event["data"].get("schools");
                assert_eq!(schools.is_some(), token == app.sbb(), "{event}");
            }
            let mut regions: Vec<String> = events
                .iter()
                .map(|e| e["data"]["region"].as_str().unwrap_or_default().to_owned())
                .collect();
            regions.sort();
            regions
        }
    };
    assert_eq!(shortages(app.sbb()).await, ["Utrecht"]);
    assert_eq!(shortages(app.school()).await, ["Utrecht"]);
    assert_eq!(shortages(app.school_of(OTHER_SCHOOL)).await, ["Utrecht"], "seeks in Utrecht only");
    assert!(shortages(app.school_of("40ZZ")).await.is_empty(), "not concerned");
    assert!(shortages(app.token(Role::Company, Some(COMPANY), None)).await.is_empty());
}

#[tokio::test]
async fn s2_a_student_whose_match_is_withdrawn_seeks_again() {
    let app = spawn_app().await;
    let offer = app.company_with_offer(COMPANY, 3).await;
    app.seeking(SCHOOL, "s-1", "Utrecht").await;
    let placement = app.propose("s-1", &offer).await;
    app.step(&placement, "accept", &app.student_of(SCHOOL, "s-1"), json!({})).await;
    let placed = ok_json(app.indicators(&app.school(), "").await, StatusCode::OK).await;
    assert_eq!(placed["placements"]["without_placement"], share(json!(0), json!(1), Some(0.0)));

    let reason = json!({"reason": "the company closed the department"});
    app.step(&placement, "withdraw", &app.school(), reason).await;
    let again = ok_json(app.indicators(&app.school(), "").await, StatusCode::OK).await;
    assert_eq!(again["placements"]["without_placement"], share(json!(1), json!(1), Some(1.0)));
    let whole = ok_json(app.indicators(&app.monitor(), "").await, StatusCode::OK).await;
    assert_eq!(whole["placements"]["students_seeking"], SUPPRESSED, "one student");
}

#[tokio::test]
async fn s2_a_student_who_completed_a_placement_seeks_again_with_a_new_wish() {
    let app = spawn_app().await;
    let offer = app.company_with_offer(COMPANY, 3).await;
    app.seeking(SCHOOL, "s-1", "Utrecht").await;
    app.completed("s-1", &offer, (4, 4), false).await;
    let done = ok_json(app.indicators(&app.school(), "").await, StatusCode::OK).await;
    assert_eq!(done["placements"]["without_placement"], share(json!(0), json!(1), Some(0.0)));

    let path = "/v1/students/s-1/learning-wish";
    ok_json(app.post(path, &app.school(), wish("Utrecht")).await, StatusCode::ACCEPTED).await;
    let again = ok_json(app.indicators(&app.school(), "").await, StatusCode::OK).await;
    assert_eq!(again["placements"]["without_placement"], share(json!(1), json!(1), Some(1.0)));
}

#[tokio::test]
async fn g3_a_warm_handover_recorded_twice_counts_once() {
    let app = spawn_app().await;
    let offer = app.company_with_offer(COMPANY, 3).await;
    app.seeking(SCHOOL, "s-1", "Utrecht").await;
    let need = json!({"support_need": NEED});
    ok_json(
        app.post("/v1/students/s-1/support-need", &app.school(), need).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let (school, student) = (app.school(), app.student_of(SCHOOL, "s-1"));
    let placement = app.propose("s-1", &offer).await;
    app.step(&placement, "accept", &student, json!({})).await;
    app.step(&placement, "agreement", &school, agreement_body(None)).await;
    for token in [&student, &school, &app.company(COMPANY)] {
        app.step(&placement, "agreement/signatures", token, json!({})).await;
    }
    app.step(&placement, "start", &school, json!({})).await;
    for _ in 0..2 {
        app.step(&placement, "warm-handover", &school, json!({"held_on": today()})).await;
    }
    let view = ok_json(app.indicators(&school, "").await, StatusCode::OK).await;
    assert_eq!(view["guidance"]["warm_handover"], share(json!(1), json!(1), Some(1.0)));
}
