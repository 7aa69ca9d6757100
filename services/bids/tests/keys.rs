//! Signing keys rotate without restarts: `bids` verifies tokens against `wallets`' JWKS, and
//! learns a new key the first time a token names it.

mod common;

use std::time::Duration;

use common::world;
use gavel_common::config::{ListenConfig, Secret};
use gavel_common::server::{Addresses, Listeners, Running};
use gavel_test_support::auth;
use gavel_types::{AccountId, EthAddress, LotId};
use gavel_wallets::tokens::TokenIssuer;

/// A `wallets` answering on `port`, signing with `private_key` and still publishing `previous`.
async fn wallets_on(
    world: &common::World,
    port: u16,
    private_key: &str,
    previous: &[&str],
) -> (Running, TokenIssuer) {
    let mut config = gavel_wallets::testing::config(
        world.wallets_db.config(),
        world.vhost.config(),
        world.redis.clone(),
        &world.chain.url,
        &gavel_wallets::testing::Options {
            confirmations: 1,
            balance_cache_ttl: Duration::from_secs(2),
            payment_window: Duration::from_secs(3600),
            bids_token: "unused".to_owned(),
            private_key: private_key.to_owned(),
        },
    );
    config.http = ListenConfig::new(([127, 0, 0, 1], port).into());
    config.tokens.previous_public_keys = previous.iter().map(|pem| (*pem).to_owned()).collect();
    let issuer = TokenIssuer::from_config(&config.tokens).expect("a key");
    let service = gavel_wallets::build(&config).await.expect("wallets builds");
    let listeners = Listeners::bind(Addresses {
        http: &config.http,
        admin: &ListenConfig::loopback(),
        internal: Some(&config.internal.listen()),
    })
    .await
    .expect("binds");
    let running = Running::start_on(service, listeners, config.shutdown.clone())
        .await
        .expect("starts");
    (running, issuer)
}

#[tokio::test]
async fn a_key_rotation_needs_no_restart_of_the_services_that_verify_tokens() {
    let world = world(Duration::from_secs(3600)).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let (old_wallets, old_issuer) = wallets_on(&world, port, auth::PRIVATE_KEY_PEM, &[]).await;

    // bids knows no key but the JWKS address.
    let mut config = world.config(100);
    config.auth.jwt_public_key = None;
    config.auth.jwks_url = Some(
        format!("http://127.0.0.1:{port}/.well-known/jwks.json")
            .parse()
            .expect("url"),
    );
    config.auth.jwks_refresh = Duration::ZERO;
    let engine = world.engine_with(config, Default::default()).await;
    let wallet = EthAddress::from_alloy(alloy_primitives::Address::repeat_byte(0x42));
    let answer = |token: String| {
        let (world, engine) = (&world, &engine);
        async move {
            // A bid on a lot nobody knows: 404 once the token verified, 401 before.
            world
                .client
                .post(format!("{}/lots/{}/bids", engine.base, LotId::new()))
                .bearer_auth(token)
                .header("idempotency-key", "k")
                .json(&serde_json::json!({"amount": "1"}))
                .send()
                .await
                .expect("served")
                .status()
                .as_u16()
        }
    };
    let before = old_issuer
        .mint(AccountId::new(), wallet)
        .expect("minted")
        .access_token;
    assert_eq!(answer(before.clone()).await, 404);

    // The rotation: wallets restarts with a new key, publishing the old one as previous.
    old_wallets.stop().await.expect("stops");
    let (new_wallets, new_issuer) = wallets_on(
        &world,
        port,
        auth::NEXT_PRIVATE_KEY_PEM,
        &[auth::PUBLIC_KEY_PEM],
    )
    .await;
    let after = new_issuer
        .mint(AccountId::new(), wallet)
        .expect("minted")
        .access_token;
    assert_eq!(
        answer(after).await,
        404,
        "the new key is learnt from the JWKS"
    );
    assert_eq!(
        answer(before).await,
        404,
        "tokens of the old key verify until they expire"
    );

    // A key the JWKS does not publish is refused.
    let stranger = TokenIssuer::from_config(&gavel_wallets::config::TokenConfig {
        private_key: Secret::new(
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIEY5Hdu61dgVraSroQKZqEidjKXvty++zkYoRmCCMaFV\n-----END PRIVATE KEY-----\n",
        ),
        previous_public_keys: Vec::new(),
        ttl: Duration::from_secs(60),
        issuer: "gavel-wallets".to_owned(),
        audience: "gavel".to_owned(),
    })
    .expect("a key");
    let forged = stranger
        .mint(AccountId::new(), wallet)
        .expect("minted")
        .access_token;
    assert_eq!(answer(forged).await, 401);
    engine.stop().await;
    new_wallets.stop().await.expect("stops");
}
