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

/// A service that has just started (or a key that was just rotated) gets many requests at once
/// whose tokens name a key it has not fetched yet. Each must wait for the one JWKS fetch in
/// flight, even when the request that started it went away; before, all but the first were
/// refused as signed with an unknown key while it ran (found by the load generator's smoke
/// against a freshly started compose stack).
#[tokio::test]
async fn tokens_arriving_together_before_the_first_jwks_fetch_all_wait_for_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use gavel_test_support::auth::PRIVATE_KEY_PEM;
    use jsonwebtoken::jwk::{Jwk, JwkSet};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let key = EncodingKey::from_ed_pem(PRIVATE_KEY_PEM.as_bytes()).expect("the test key");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).expect("an Ed25519 JWK");
    jwk.common.key_id = Some("k1".to_owned());
    let body = serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("serializable");
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    // A JWKS that takes a while to answer, as a busy `wallets` would.
    let jwks = Router::new().route(
        "/jwks",
        get(move || {
            let (body, counted) = (body.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                ([("content-type", "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, jwks).await });

    let mut config = auth_config();
    config.jwt_public_key = None;
    config.jwks_url = Some(format!("http://{address}/jwks").parse().expect("url"));
    let verifier = JwtVerifier::from_config(&config).expect("config");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".to_owned());
    let token =
        jsonwebtoken::encode(&header, &claims(uuid::Uuid::new_v4(), WALLET), &key).expect("signed");

    // The request that starts the fetch goes away while it runs (its client disconnected); the
    // fetch must go on for the others.
    let first = {
        let (verifier, token) = (verifier.clone(), token.clone());
        tokio::spawn(async move { verifier.verify(&token).await.is_ok() })
    };
    gavel_test_support::wait_until(
        "the first request to start the fetch",
        std::time::Duration::from_secs(10),
        || fetches.load(Ordering::SeqCst) == 1,
    )
    .await;
    first.abort();

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (verifier, token) = (verifier.clone(), token.clone());
        requests.spawn(async move { verifier.verify(&token).await.map(|claims| claims.wallet) });
    }
    let mut verified = 0;
    while let Some(result) = requests.join_next().await {
        assert_eq!(result.expect("joined").expect("verified"), WALLET);
        verified += 1;
    }
    assert_eq!(verified, 20);
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "one fetch served them all"
    );
}
