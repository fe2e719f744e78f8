//! Tokens: every way a token can be wrong is a 401 problem and records nothing.

use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagepact_api::{JwtConfig, JwtKey};

use crate::helpers::{SECRET, company, now, problem, sbb_claims, sign, spawn_app, spawn_app_with};

const PUBLIC_PEM: &[u8] = include_bytes!("keys/rs256-public.pem");
const PRIVATE_PEM: &[u8] = include_bytes!("keys/rs256-private.pem");

fn spoiled(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = sbb_claims();
    if let Some(object) = claims.as_object_mut() {
        change(object);
    }
    claims
}

#[tokio::test]
async fn bad_tokens_are_refused_and_record_nothing() {
    let app = spawn_app().await;
    let key = EncodingKey::from_secret(SECRET);
    let hs = |claims: &Value| sign(claims, Algorithm::HS256, &key);
    let unsigned = {
        // alg "none": header and claims, no signature.
        use base64_like::encode;
        format!(
            "{}.{}.",
            encode(br#"{"alg":"none","typ":"JWT"}"#),
            encode(sbb_claims().to_string().as_bytes())
        )
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing token", None),
        ("not a JWT", Some("not-a-token".into())),
        ("alg none", Some(unsigned)),
        (
            "expired",
            Some(hs(&spoiled(|c| {
                c.insert("exp".into(), json!(now() - 3600));
            }))),
        ),
        (
            "not yet valid",
            Some(hs(&spoiled(|c| {
                c.insert("nbf".into(), json!(now() + 3600));
            }))),
        ),
        (
            "wrong issuer",
            Some(hs(&spoiled(|c| {
                c.insert("iss".into(), json!("somebody-else"));
            }))),
        ),
        (
            "wrong audience",
            Some(hs(&spoiled(|c| {
                c.insert("aud".into(), json!("another-api"));
            }))),
        ),
        (
            "no exp",
            Some(hs(&spoiled(|c| {
                c.remove("exp");
            }))),
        ),
        (
            "no sub",
            Some(hs(&spoiled(|c| {
                c.remove("sub");
            }))),
        ),
        (
            "no role",
            Some(hs(&spoiled(|c| {
                c.remove("role");
            }))),
        ),
        (
            "unknown role",
            Some(hs(&spoiled(|c| {
                c.insert("role".into(), json!("admin"));
            }))),
        ),
        (
            "school without org",
            Some(hs(&spoiled(|c| {
                c.insert("role".into(), json!("school"));
            }))),
        ),
        (
            "student without student",
            Some(hs(&spoiled(|c| {
                c.insert("role".into(), json!("student"));
            }))),
        ),
        (
            "student without org",
            Some(hs(&spoiled(|c| {
                c.insert("role".into(), json!("student"));
                c.insert("student".into(), json!("s-1"));
            }))),
        ),
        (
            "wrong secret",
            Some(sign(
                &sbb_claims(),
                Algorithm::HS256,
                &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!"),
            )),
        ),
    ];
    let before = app.event_count().await;
    for (case, token) in cases {
        let mut request =
            app.client.post(app.url("/v1/companies")).json(&company("x-1", "Utrecht"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
        problem(response, StatusCode::UNAUTHORIZED).await;
    }
    let wrong_scheme = app
        .client
        .get(app.url("/v1/companies"))
        .header("authorization", format!("Basic {}", app.sbb()))
        .send()
        .await
        .expect("send");
    problem(wrong_scheme, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn rs256_accepts_its_key_and_refuses_hs256_signed_with_the_public_key() {
    let jwt = JwtConfig {
        key: JwtKey::Rs256(PUBLIC_PEM.to_vec()),
        issuer: "stagepact-dev".into(),
        audience: "stagepact".into(),
    };
    let app = spawn_app_with(jwt).await;
    let private = EncodingKey::from_rsa_pem(PRIVATE_PEM).expect("private key");
    let good = sign(&sbb_claims(), Algorithm::RS256, &private);
    let registered = app
        .client
        .post(app.url("/v1/companies"))
        .bearer_auth(&good)
        .json(&company("rs-1", "Utrecht"))
        .send()
        .await
        .expect("send");
    assert_eq!(registered.status(), StatusCode::CREATED);

    let before = app.event_count().await;
    // The classic confusion attack: HMAC keyed with the (public) RSA key.
    let confused = sign(&sbb_claims(), Algorithm::HS256, &EncodingKey::from_secret(PUBLIC_PEM));
    let response = app
        .client
        .post(app.url("/v1/companies"))
        .bearer_auth(&confused)
        .json(&company("rs-2", "Utrecht"))
        .send()
        .await
        .expect("send");
    problem(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.event_count().await, before);
}

/// Base64url without padding, enough to build an unsigned token.
mod base64_like {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }
}

#[tokio::test]
async fn es256_accepts_its_key_and_refuses_other_algorithms() {
    const ES_PUBLIC: &[u8] = include_bytes!("keys/es256-public.pem");
    const ES_PRIVATE: &[u8] = include_bytes!("keys/es256-private.pem");
    let jwt = JwtConfig {
        key: JwtKey::Es256(ES_PUBLIC.to_vec()),
        issuer: "stagepact-dev".into(),
        audience: "stagepact".into(),
    };
    let app = spawn_app_with(jwt).await;
    let good =
        sign(&sbb_claims(), Algorithm::ES256, &EncodingKey::from_ec_pem(ES_PRIVATE).expect("key"));
    let registered = app.post("/v1/companies", &good, company("es-1", "Utrecht")).await;
    assert_eq!(registered.status(), StatusCode::CREATED);

    let before = app.event_count().await;
    let rsa = sign(
        &sbb_claims(),
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(PRIVATE_PEM).expect("key"),
    );
    let hmac = sign(&sbb_claims(), Algorithm::HS256, &EncodingKey::from_secret(ES_PUBLIC));
    for token in [rsa, hmac] {
        problem(
            app.post("/v1/companies", &token, company("es-2", "Utrecht")).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn an_audience_list_is_accepted_when_it_names_us() {
    let app = spawn_app().await;
    let key = EncodingKey::from_secret(SECRET);
    let listed = sign(
        &spoiled(|c| {
            c.insert("aud".into(), json!(["other-api", "stagepact"]));
        }),
        Algorithm::HS256,
        &key,
    );
    assert_eq!(
        app.post("/v1/companies", &listed, company("aud-1", "Utrecht")).await.status(),
        StatusCode::CREATED
    );
    let foreign = sign(
        &spoiled(|c| {
            c.insert("aud".into(), json!(["other-api"]));
        }),
        Algorithm::HS256,
        &key,
    );
    problem(
        app.post("/v1/companies", &foreign, company("aud-2", "Utrecht")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}
