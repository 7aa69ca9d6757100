//! A fresh PostgreSQL database per test, dropped when the test ends (even when it fails).

use gavel_common::config::SecretUrl;
use gavel_common::db::DatabaseConfig;
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::env_or;

#[derive(Debug)]
pub struct TestDatabase {
    pub pool: PgPool,
    name: String,
    server: url::Url,
}

impl TestDatabase {
    /// Creates `gavel_test_<uuid>` on the test server.
    pub async fn create() -> Self {
        let admin = env_or(
            "GAVEL_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        let server = url::Url::parse(&admin).expect("GAVEL_TEST_POSTGRES_URL is a URL");
        let name = format!("gavel_test_{}", uuid::Uuid::new_v4().simple());
        let mut connection = PgConnection::connect(server.as_str())
            .await
            .expect("PostgreSQL is running (run `bash .ci/stack`)");
        connection
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .expect("can create a test database");
        let mut url = server.clone();
        url.set_path(&name);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(20)
            .connect(url.as_str())
            .await
            .expect("can connect to the test database");
        Self { pool, name, server }
    }

    pub fn url(&self) -> String {
        let mut url = self.server.clone();
        url.set_path(&self.name);
        url.to_string()
    }

    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: SecretUrl::parse(&self.url()).expect("a valid URL"),
            max_connections: 10,
            acquire_timeout: std::time::Duration::from_secs(5),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside any async context we could await in, so a short-lived thread with its
        // own runtime drops the database; FORCE ends connections the test left open.
        let server = self.server.to_string();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut connection = PgConnection::connect(&server).await.ok()?;
                connection
                    .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}
