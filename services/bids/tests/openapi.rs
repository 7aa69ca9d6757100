//! The served OpenAPI document describes routes that exist.

mod common;

use std::time::Duration;

#[tokio::test]
async fn every_documented_path_is_routed() {
    let world = common::world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let doc = world.get(&engine, "/openapi.json").await;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 3);
    for (path, methods) in paths {
        let concrete = path.replace("{lot_id}", "0192b6a4-8c3b-7c2e-9a51-5d4b1f0e2a77");
        for method in methods.as_object().expect("methods").keys() {
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = world
                .client
                .request(method.clone(), format!("{}{concrete}", engine.base))
                .send()
                .await
                .expect("served");
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            assert_ne!(
                body["title"], "No such route",
                "{method} {path} is documented but not routed"
            );
        }
    }
    engine.stop().await;
}
