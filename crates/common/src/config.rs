//! Typed, layered configuration.
//!
//! Values come from four layers, later ones winning: the defaults written on the config structs
//! (`#[serde(default …)]`), the service's [`ServiceConfig::DEFAULTS`] (where its listeners bind),
//! an optional TOML file named by `GAVEL_CONFIG`, and environment
//! variables `GAVEL_SECTION__KEY` (double underscore between levels), which map one to one onto the
//! Helm values and Kubernetes Secrets. Every struct denies unknown keys so that a typo fails
//! start-up instead of being silently ignored.
//!
//! A variable ending in `_FILE` names a file whose contents are the value of the variable without
//! the suffix (`GAVEL_TOKENS__PRIVATE_KEY_FILE=/run/secrets/jwt-key`): secrets mounted as files
//! (Docker and Kubernetes secrets) never pass through the environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use url::Url;

/// The prefix of every environment variable Gavel reads.
pub const ENV_PREFIX: &str = "GAVEL_";
/// The variable naming the optional config file.
pub const FILE_VAR: &str = "GAVEL_CONFIG";

/// Why configuration could not be loaded. The message names the key and the variable to set.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration:\n{0}")]
    Invalid(String),
    #[error("{variable} names {path}, which cannot be read: {source}")]
    SecretFile {
        variable: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A configuration [`load`] can read.
pub trait ServiceConfig: DeserializeOwned {
    /// Settings beneath the file and the environment, as TOML: a service's listener addresses
    /// live here rather than on the structs, so that a layer may set one field of a listener
    /// (`GAVEL_HTTP__MAX_CONNECTIONS`, `GAVEL_INTERNAL__TOKENS__BIDS`) without restating where
    /// it binds.
    const DEFAULTS: &'static str = "";
}

/// Loads `T` from the process environment and the file named by `GAVEL_CONFIG`, if any.
pub fn load<T: ServiceConfig>() -> Result<T, ConfigError> {
    let file = std::env::var_os(FILE_VAR).map(PathBuf::from);
    load_from(file.as_deref(), std::env::vars())
}

/// Loads `T` from an explicit file and set of environment variables; [`load`] is this applied to
/// the real process. Variables without the `GAVEL_` prefix are ignored.
pub fn load_from<T: ServiceConfig>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let mut figment = Figment::from(Toml::string(T::DEFAULTS));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile(path.to_owned()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && name != FILE_VAR)
        .map(|(name, value)| match name.strip_suffix("_FILE") {
            Some(base) => std::fs::read_to_string(&value)
                .map(|contents| (base.to_owned(), contents.trim_end_matches('\n').to_owned()))
                .map_err(|source| ConfigError::SecretFile {
                    variable: name.clone(),
                    path: PathBuf::from(&value),
                    source,
                }),
            None => Ok((name, value)),
        })
        .collect::<Result<_, _>>()?;
    // Sorted so that the merge order, and therefore any error, is reproducible.
    env.sort();
    for (name, raw) in env {
        let key = env_key(&name);
        // Parsing is infallible: anything that is not a number, bool, array or table stays a string.
        let value: Value = raw.parse().unwrap_or_else(|never| match never {});
        figment = figment.merge(Serialized::default(&key, value));
    }
    figment
        .extract()
        .map_err(|errors| ConfigError::Invalid(describe(errors)))
}

/// `GAVEL_DATABASE__MAX_CONNECTIONS` → `database.max_connections`.
fn env_key(name: &str) -> String {
    name[ENV_PREFIX.len()..]
        .to_ascii_lowercase()
        .replace("__", ".")
}

/// `database.max_connections` → `GAVEL_DATABASE__MAX_CONNECTIONS`.
pub fn env_var_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_ascii_uppercase().replace('.', "__")
    )
}

fn describe(errors: figment::Error) -> String {
    use figment::error::Kind;
    errors
        .into_iter()
        .map(|error| {
            let mut path = error.path.clone();
            match &error.kind {
                Kind::MissingField(field) => {
                    path.push(field.to_string());
                    let key = path.join(".");
                    if path.len() == 1 {
                        // Every top-level key is a section: name the variables that fill it.
                        return format!(
                            "- missing required section `{key}`: set {}__<KEY> variables or a [{key}] table in the config file",
                            env_var_for(&key)
                        );
                    }
                    format!(
                        "- missing required setting `{key}`: set {} or `{key}` in the config file",
                        env_var_for(&key)
                    )
                }
                Kind::UnknownField(field, expected) => {
                    path.push(field.clone());
                    format!(
                        "- unknown setting `{}` (expected one of: {})",
                        path.join("."),
                        expected.join(", ")
                    )
                }
                other => format!("- `{}`: {other}", path.join(".")),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A URL that may carry credentials. It parses at load time, so a malformed URL fails start-up, and
/// its `Debug`/`Display` mask the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Url);

impl SecretUrl {
    pub fn parse(raw: &str) -> Result<Self, url::ParseError> {
        Url::parse(raw).map(Self)
    }

    /// The full URL, password included. Call only where the URL is handed to a client library.
    pub fn expose(&self) -> &Url {
        &self.0
    }

    fn redacted(&self) -> Url {
        let mut url = self.0.clone();
        if url.password().is_some() {
            // Setting a password only fails for URLs that cannot have one, which this one has.
            let _ = url.set_password(Some("REDACTED"));
        }
        url
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.redacted().fmt(f)
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw)
            .map_err(|error| serde::de::Error::custom(format!("malformed URL: {error}")))
    }
}

/// A secret string (a key, a token) that prints as `[REDACTED]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Where a listener binds, and what it allows a connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    pub addr: std::net::SocketAddr,
    /// A client must send a request's headers within this (also how long an idle keep-alive
    /// connection is kept): a connection dribbling headers is closed.
    #[serde(default = "default_header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_connections() -> usize {
    4096
}

impl ListenConfig {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            header_read_timeout: default_header_read_timeout(),
            max_connections: default_max_connections(),
        }
    }

    /// `0.0.0.0:port`: every interface, as a container wants.
    pub fn all_interfaces(port: u16) -> Self {
        Self::new(([0, 0, 0, 0], port).into())
    }

    /// An ephemeral loopback port, for tests.
    pub fn loopback() -> Self {
        Self::new(([127, 0, 0, 1], 0).into())
    }
}

/// How the service stops.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long `/readyz` reports not-ready before the listener closes, so that load balancers
    /// stop routing here first (a few seconds in Kubernetes, zero locally).
    #[serde(with = "humantime_serde")]
    pub readiness_grace: Duration,
    /// How long in-flight requests get to finish once the listener has closed.
    #[serde(with = "humantime_serde")]
    pub drain_deadline: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            readiness_grace: Duration::ZERO,
            drain_deadline: Duration::from_secs(20),
        }
    }
}

/// A service's listener ports: public, admin and (bids, wallets) internal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub http: u16,
    pub admin: u16,
    pub internal: Option<u16>,
}

impl Ports {
    /// The ports `deploy/services.json` gives `service`. The images, the compose stack and the
    /// chart are checked against that manifest; each service's defaults are checked against it
    /// with this.
    pub fn from_manifest(manifest: &str, service: &str) -> Option<Self> {
        let manifest: serde_json::Value = serde_json::from_str(manifest).ok()?;
        let entry = &manifest["services"][service];
        let port = |key: &str| {
            entry[key]
                .as_u64()
                .and_then(|port| u16::try_from(port).ok())
        };
        Some(Self {
            http: port("http")?,
            admin: port("admin")?,
            internal: port("internal"),
        })
    }

    /// The ports the repository's `deploy/services.json` gives `service` (for the services'
    /// unit tests, which run in a checkout).
    pub fn from_deploy_manifest(service: &str) -> Option<Self> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/services.json");
        let manifest = std::fs::read_to_string(path).ok()?;
        Self::from_manifest(&manifest, service)
    }

    /// The ports a service's [`ServiceConfig::DEFAULTS`] bind.
    pub fn from_defaults<T: ServiceConfig>() -> Option<Self> {
        let defaults = Figment::from(Toml::string(T::DEFAULTS));
        let port = |key: &str| {
            defaults
                .extract_inner::<std::net::SocketAddr>(key)
                .ok()
                .map(|addr| addr.port())
        };
        Some(Self {
            http: port("http.addr")?,
            admin: port("admin.addr")?,
            internal: port("internal.addr"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_map_to_nested_keys_and_back() {
        assert_eq!(
            env_key("GAVEL_DATABASE__MAX_CONNECTIONS"),
            "database.max_connections"
        );
        assert_eq!(
            env_var_for("database.max_connections"),
            "GAVEL_DATABASE__MAX_CONNECTIONS"
        );
    }

    #[test]
    fn secret_url_hides_its_password() {
        let url = SecretUrl::parse("postgres://gavel:hunter2@db:5432/lots").expect("valid url");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(!url.to_string().contains("hunter2"));
        assert_eq!(url.expose().password(), Some("hunter2"));
    }
}
