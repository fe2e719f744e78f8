//! The committed OpenAPI document and event schemas match the code, and the
//! API serves them and its docs (with no internet).

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

#[test]
fn committed_openapi_and_schemas_match_the_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let drifted = stagepact_api::openapi::drifted(root);
    assert!(drifted.is_empty(), "regenerate with `cargo run -- generate`; drifted: {drifted:?}");
}

#[test]
fn the_document_is_openapi_3_1_with_the_contracted_operation_ids() {
    let document: Value =
        serde_json::from_str(&stagepact_api::openapi::document_json()).expect("json");
    assert!(
        document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "{}",
        document["openapi"]
    );
    let mut ids: Vec<&str> = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    ids.sort_unstable();
    for wanted in [
        "getCompany",
        "grantRecognition",
        "listCompanies",
        "listEvents",
        "registerCompany",
        "reinstateRecognition",
        "revokeRecognition",
        "suspendRecognition",
    ] {
        assert!(ids.contains(&wanted), "{wanted} missing from {ids:?}");
    }
}

#[tokio::test]
async fn the_api_serves_its_document_and_offline_docs() {
    let app = spawn_app().await;
    let spec = app.client.get(app.url("/openapi.json")).send().await.expect("send");
    assert_eq!(spec.status(), StatusCode::OK);
    let spec: Value = spec.json().await.expect("json");
    assert_eq!(spec["info"]["title"], "Stagepact API");

    let docs = app.client.get(app.url("/docs/")).send().await.expect("send");
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "docs page");
    assert!(
        !html.contains("cdn") && !html.contains("unpkg"),
        "the docs page must not load from a CDN"
    );
    for asset in
        ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/swagger-initializer.js"]
    {
        let served = app.client.get(app.url(asset)).send().await.expect("send");
        assert_eq!(served.status(), StatusCode::OK, "{asset} is served by the binary");
    }
}
