//! Sign-In with Ethereum end to end, with real secp256k1 keys, Redis nonces and PostgreSQL.

mod common;

use alloy::signers::local::PrivateKeySigner;
use common::{DOMAIN, TestApp, spawn};
use gavel_common::auth::{AuthConfig, JwtVerifier};
use serde_json::json;

#[tokio::test]
async fn a_wallet_signs_in_gets_a_token_and_keeps_its_account() {
    let app = spawn().await;
    let signer = PrivateKeySigner::random();
    let (token, body) = app.sign_in(&signer).await;
    assert_eq!(body["wallet"], signer.address().to_checksum(None));
    assert_eq!(body["token_type"], "Bearer");

    // The token verifies with the published key alone.
    let jwks: serde_json::Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("served")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    // Another service verifies it with the keys the JWKS publishes.
    let verifier = JwtVerifier::from_config(&AuthConfig {
        jwks_url: Some(app.url("/.well-known/jwks.json").parse().expect("url")),
        jwt_public_key: None,
        ..AuthConfig::with_key("")
    })
    .expect("key");
    let claims = verifier.verify(&token).await.expect("a valid token");
    assert_eq!(
        claims.sub.to_string(),
        body["account_id"].as_str().expect("id")
    );

    let (_, again) = app.sign_in(&signer).await;
    assert_eq!(
        again["account_id"], body["account_id"],
        "the second sign-in finds the same account"
    );
    let (status, wallets) = app.get("/wallets", &token).await;
    assert_eq!(status, 200);
    assert_eq!(wallets.as_array().map(Vec::len), Some(1));
    app.stop().await;
}

#[tokio::test]
async fn a_second_configured_origin_signs_in_with_its_own_domain_and_uri() {
    let app = spawn().await;
    let signer = PrivateKeySigner::random();
    let address = signer.address().to_checksum(None);
    let second = gavel_wallets::testing::SECOND_ORIGIN;
    let domain = second.trim_start_matches("http://");
    let on = |domain: &str, uri: &str, nonce: &str| {
        app.message(&address, nonce, "Sign in", 31337, domain)
            .replace(&format!("URI: https://{DOMAIN}/"), &format!("URI: {uri}/"))
    };
    let message = on(domain, second, &app.nonce().await);
    let (status, body) = app
        .post(
            "/auth/sign-in",
            None,
            json!({"message": message, "signature": TestApp::sign(&signer, &message)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["wallet"], address);

    // Its domain with the first site's URI is neither site's sign-in.
    let crossed = on(domain, &format!("https://{DOMAIN}"), &app.nonce().await);
    let (status, problem) = app
        .post(
            "/auth/sign-in",
            None,
            json!({"message": crossed, "signature": TestApp::sign(&signer, &crossed)}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (401, Some("sign_in_refused")),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains(&format!("URI `https://{DOMAIN}/`"))),
        "refused for its URI: {problem}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_nonce_works_once() {
    let app = spawn().await;
    let signer = PrivateKeySigner::random();
    let nonce = app.nonce().await;
    let message = app.message(
        &signer.address().to_checksum(None),
        &nonce,
        "Sign in to Gavel",
        31337,
        DOMAIN,
    );
    let body = json!({"message": message, "signature": TestApp::sign(&signer, &message)});
    assert_eq!(app.post("/auth/sign-in", None, body.clone()).await.0, 200);
    let (status, problem) = app.post("/auth/sign-in", None, body).await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("nonce"),
        "{problem}"
    );
    app.stop().await;
}

#[tokio::test]
async fn each_bad_sign_in_is_refused_with_a_clear_problem() {
    let app = spawn().await;
    let signer = PrivateKeySigner::random();
    let address = signer.address().to_checksum(None);
    let other = PrivateKeySigner::random();

    // (message, signer, expected status, expected field, words the detail must contain)
    let nonce = app.nonce().await;
    let wrong_domain = app.message(&address, &nonce, "Sign in", 31337, "evil.test");
    let nonce = app.nonce().await;
    let wrong_chain = app.message(&address, &nonce, "Sign in", 1, DOMAIN);
    let unknown_nonce = app.message(&address, "neverissued12345", "Sign in", 31337, DOMAIN);
    let nonce = app.nonce().await;
    let expired = format!(
        "{}\nExpiration Time: 2020-01-01T00:00:00Z",
        app.message(&address, &nonce, "Sign in", 31337, DOMAIN)
    );
    let nonce = app.nonce().await;
    let signed_by_other = app.message(&address, &nonce, "Sign in", 31337, DOMAIN);
    let malformed_address = app.message("0x12345", &app.nonce().await, "Sign in", 31337, DOMAIN);

    let cases = [
        (
            wrong_domain,
            &signer,
            401,
            "message",
            "not accepted for `evil.test`: open Gavel at https://gavel.test or http://gavel-lan.test:8080",
        ),
        (wrong_chain, &signer, 401, "message", "chain"),
        (unknown_nonce, &signer, 401, "message", "nonce"),
        (expired, &signer, 401, "message", "expired"),
        (signed_by_other, &other, 401, "signature", "not made by"),
        (malformed_address, &signer, 400, "message", "EIP-4361"),
    ];
    for (message, key, status, field, words) in cases {
        let (actual, problem) = app
            .post(
                "/auth/sign-in",
                None,
                json!({"message": message, "signature": TestApp::sign(key, &message)}),
            )
            .await;
        assert_eq!(actual, status, "{words}: {problem}");
        assert_eq!(problem["field"], field, "{words}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(words),
            "{words}: {problem}"
        );
    }

    let message = app.message(&address, &app.nonce().await, "Sign in", 31337, DOMAIN);
    let (status, problem) = app
        .post(
            "/auth/sign-in",
            None,
            json!({"message": message, "signature": "0xdeadbeef"}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("signature")),
        "{problem}"
    );
    let (status, problem) = app
        .post("/auth/sign-in", None, json!({"message": message}))
        .await;
    assert_eq!(status, 400, "{problem}");
    app.stop().await;
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let app = spawn().await;
    let (token, _) = app.sign_in(&PrivateKeySigner::random()).await;
    let (_, other) = app.sign_in(&PrivateKeySigner::random()).await;
    let other = other["access_token"].as_str().expect("token");
    let forged: Vec<&str> = token.split('.').collect();
    let theirs: Vec<&str> = other.split('.').collect();
    let forged = [forged[0], theirs[1], forged[2]].join(".");
    let (status, problem) = app.get("/wallets", &forged).await;
    assert_eq!(status, 401, "{problem}");
    app.stop().await;
}

#[tokio::test]
async fn a_second_wallet_is_linked_by_signing_the_link_statement_and_can_be_unlinked() {
    let app = spawn().await;
    let first = PrivateKeySigner::random();
    let second = PrivateKeySigner::random();
    let (token, body) = app.sign_in(&first).await;
    let account = body["account_id"].as_str().expect("id").to_owned();
    let statement = format!("Link this wallet to Gavel account {account}");

    // A message with the wrong statement does not link.
    let message = app.message(
        &second.address().to_checksum(None),
        &app.nonce().await,
        "Sign in to Gavel",
        31337,
        DOMAIN,
    );
    let (status, problem) = app
        .post(
            "/wallets",
            Some(&token),
            json!({"message": message, "signature": TestApp::sign(&second, &message)}),
        )
        .await;
    assert_eq!(status, 401, "{problem}");

    let message = app.message(
        &second.address().to_checksum(None),
        &app.nonce().await,
        &statement,
        31337,
        DOMAIN,
    );
    let (status, wallets) = app
        .post(
            "/wallets",
            Some(&token),
            json!({"message": message, "signature": TestApp::sign(&second, &message)}),
        )
        .await;
    assert_eq!(status, 201, "{wallets}");
    assert_eq!(wallets.as_array().map(Vec::len), Some(2));

    // The linked wallet now signs in to the same account.
    let (_, again) = app.sign_in(&second).await;
    assert_eq!(again["account_id"], account.as_str());

    // Another account cannot take it.
    let (stranger_token, stranger) = app.sign_in(&PrivateKeySigner::random()).await;
    let stranger_statement = format!(
        "Link this wallet to Gavel account {}",
        stranger["account_id"].as_str().expect("id")
    );
    let message = app.message(
        &second.address().to_checksum(None),
        &app.nonce().await,
        &stranger_statement,
        31337,
        DOMAIN,
    );
    let (status, problem) = app
        .post(
            "/wallets",
            Some(&stranger_token),
            json!({"message": message, "signature": TestApp::sign(&second, &message)}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("wallet_taken")),
        "{problem}"
    );

    let unlink = |address: String| {
        let request = app
            .client
            .delete(app.url(&format!("/wallets/{address}")))
            .bearer_auth(&token);
        async move { request.send().await.expect("served").status().as_u16() }
    };
    assert_eq!(unlink(second.address().to_checksum(None)).await, 204);
    assert_eq!(
        unlink(first.address().to_checksum(None)).await,
        409,
        "the last wallet stays"
    );
    assert_eq!(unlink("0xnot-an-address".to_owned()).await, 400);
    app.stop().await;
}
