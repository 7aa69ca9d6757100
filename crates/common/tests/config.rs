//! Layered configuration: defaults, then the file, then `GAVEL_…` variables.

use std::io::Write;
use std::time::Duration;

use gavel_common::config::{ConfigError, ListenConfig, ServiceConfig, ShutdownConfig, load_from};
use gavel_common::db::DatabaseConfig;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    http: ListenConfig,
    #[serde(default)]
    shutdown: ShutdownConfig,
    database: DatabaseConfig,
}

impl ServiceConfig for Config {
    const DEFAULTS: &'static str = r#"http.addr = "0.0.0.0:8080""#;
}

fn file(contents: &str) -> tempfile_like::TempFile {
    tempfile_like::TempFile::with(contents)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn env_overrides_file_which_overrides_defaults() {
    let toml = file(
        r#"
        [database]
        url = "postgres://file@db/lots"
        max_connections = 3

        [shutdown]
        drain_deadline = "7s"
        "#,
    );
    let config: Config = load_from(
        Some(toml.path()),
        env(&[
            ("GAVEL_DATABASE__MAX_CONNECTIONS", "42"),
            ("UNRELATED", "x"),
        ]),
    )
    .expect("valid config");
    assert_eq!(config.http.addr.port(), 8080, "default kept");
    assert_eq!(
        config.shutdown.drain_deadline,
        Duration::from_secs(7),
        "file wins over default"
    );
    assert_eq!(config.database.max_connections, 42, "env wins over file");
    assert_eq!(
        config.database.url.expose().username(),
        "file",
        "file value kept where env is silent"
    );
}

#[test]
fn a_missing_required_secret_names_the_variable_to_set() {
    let toml = file("[database]\nmax_connections = 3\n");
    let error =
        load_from::<Config>(Some(toml.path()), env(&[])).expect_err("database.url is required");
    let message = error.to_string();
    assert!(message.contains("database.url"), "{message}");
    assert!(message.contains("GAVEL_DATABASE__URL"), "{message}");

    let error = load_from::<Config>(None, env(&[])).expect_err("the database section is required");
    assert!(
        error.to_string().contains("GAVEL_DATABASE__<KEY>"),
        "{error}"
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config: Config = load_from(
        None,
        env(&[("GAVEL_DATABASE__URL", "postgres://gavel:s3cr3t-pw@db/lots")]),
    )
    .expect("valid config");
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cr3t-pw"), "{debug}");
    assert!(
        debug.contains("db"),
        "the rest of the URL stays visible: {debug}"
    );
}

#[test]
fn an_unknown_key_is_rejected_by_name() {
    let error = load_from::<Config>(
        None,
        env(&[
            ("GAVEL_DATABASE__URL", "postgres://db/lots"),
            ("GAVEL_DATABASE__MAX_CONECTIONS", "5"),
        ]),
    )
    .expect_err("typo must not pass silently");
    assert!(
        error.to_string().contains("database.max_conections"),
        "{error}"
    );
}

#[test]
fn a_malformed_url_is_rejected_at_load_time() {
    let error = load_from::<Config>(None, env(&[("GAVEL_DATABASE__URL", "not a url")]))
        .expect_err("not a URL");
    let message = error.to_string();
    assert!(
        message.contains("database.url") && message.contains("malformed URL"),
        "{message}"
    );
}

#[test]
fn a_named_config_file_that_does_not_exist_fails() {
    let error = load_from::<Config>(
        Some(std::path::Path::new("/nonexistent/gavel.toml")),
        env(&[]),
    )
    .expect_err("missing file");
    assert!(matches!(error, ConfigError::MissingFile(_)));
}

#[test]
fn a_secret_can_come_from_a_file_named_by_a_file_variable() {
    let secret = file("postgres://gavel:from-a-file@db/lots\n");
    let path = secret.path().display().to_string();
    let config: Config =
        load_from(None, env(&[("GAVEL_DATABASE__URL_FILE", &path)])).expect("valid config");
    assert_eq!(
        config.database.url.expose().password(),
        Some("from-a-file"),
        "the file's contents, without its final newline"
    );
    let error = load_from::<Config>(
        None,
        env(&[("GAVEL_DATABASE__URL_FILE", "/nonexistent/secret")]),
    )
    .expect_err("missing file");
    assert!(
        error.to_string().contains("GAVEL_DATABASE__URL_FILE"),
        "{error}"
    );
}

/// A file in the system temp dir, removed on drop (no extra crate for one helper).
mod tempfile_like {
    use super::*;

    pub struct TempFile(std::path::PathBuf);

    impl TempFile {
        pub fn with(contents: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("gavel-config-{}.toml", uuid::Uuid::new_v4()));
            let mut file = std::fs::File::create(&path).expect("temp dir is writable");
            file.write_all(contents.as_bytes())
                .expect("temp dir is writable");
            Self(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Compose and the chart set single listener fields (`GAVEL_INTERNAL__TOKENS__BIDS`): the
/// listener's address must still come from the defaults (before, the whole section had to be
/// restated and the container died with "missing required setting `internal.addr`").
#[test]
fn one_listener_field_keeps_the_default_address() {
    let config: Config = load_from(
        None,
        env(&[
            ("GAVEL_DATABASE__URL", "postgres://gavel@db/lots"),
            ("GAVEL_HTTP__MAX_CONNECTIONS", "7"),
        ]),
    )
    .expect("valid config");
    assert_eq!(config.http.max_connections, 7);
    assert_eq!(config.http.addr.port(), 8080, "the default address is kept");
}
