//! The served OpenAPI document describes routes that exist.

mod common;

#[tokio::test]
async fn every_documented_path_is_routed() {
    let app = common::spawn().await;
    let doc: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("served")
        .json()
        .await
        .expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 7);
    for (path, methods) in paths {
        let concrete = path
            .replace("{address}", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
            .replace("{lot_id}", "0192b6a4-8c3b-7c2e-9a51-5d4b1f0e2a77");
        for method in methods.as_object().expect("methods").keys() {
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = app
                .client
                .request(method.clone(), app.url(&concrete))
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
    app.stop().await;
}
