//! The access-token extractor: signature, expiry, issuer and audience are all enforced.

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use gavel_common::auth::{Authenticated, JwtVerifier};
use gavel_test_support::auth::{auth_config, claims, mint};
use tower::ServiceExt;

#[derive(Clone)]
struct State {
    verifier: JwtVerifier,
}

impl FromRef<State> for JwtVerifier {
    fn from_ref(state: &State) -> Self {
        state.verifier.clone()
    }
}

fn app() -> Router {
    let verifier = JwtVerifier::from_config(&auth_config()).expect("test key is valid");
    Router::new()
        .route(
            "/me",
            get(|Authenticated(claims): Authenticated| async move { claims.wallet }),
        )
        .with_state(State { verifier })
}

async fn call(token: Option<&str>) -> (u16, String, Option<String>) {
    let mut request = axum::http::Request::get("/me");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app()
        .oneshot(request.body(axum::body::Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        content_type,
    )
}

const WALLET: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

#[tokio::test]
async fn a_valid_token_identifies_the_caller() {
    let token = mint(&claims(uuid::Uuid::new_v4(), WALLET));
    let (status, body, _) = call(Some(&token)).await;
    assert_eq!((status, body.as_str()), (200, WALLET));
}

#[tokio::test]
async fn a_missing_token_is_a_401_problem() {
    let (status, body, content_type) = call(None).await;
    assert_eq!(status, 401);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert!(body.contains("Authorization"), "{body}");
}

#[tokio::test]
async fn a_tampered_token_is_rejected() {
    // The claims of one valid token under the signature of another.
    let genuine = mint(&claims(uuid::Uuid::new_v4(), WALLET));
    let other = mint(&claims(
        uuid::Uuid::new_v4(),
        "0x0000000000000000000000000000000000000001",
    ));
    let genuine: Vec<&str> = genuine.split('.').collect();
    let other: Vec<&str> = other.split('.').collect();
    let forged = [genuine[0], other[1], genuine[2]].join(".");
    let (status, _, _) = call(Some(&forged)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    let mut expired = claims(uuid::Uuid::new_v4(), WALLET);
    expired.exp = expired.iat - 600;
    let (status, body, _) = call(Some(&mint(&expired))).await;
    assert_eq!(status, 401);
    assert!(body.contains("Expired"), "{body}");
}

#[tokio::test]
async fn a_token_for_another_audience_is_rejected() {
    let mut other = claims(uuid::Uuid::new_v4(), WALLET);
    other.aud = "someone-else".to_owned();
    let (status, _, _) = call(Some(&mint(&other))).await;
    assert_eq!(status, 401);
}
