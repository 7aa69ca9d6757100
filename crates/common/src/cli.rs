//! What a service binary can be asked to do besides serving:
//!
//! - `<binary> probe <url>`: GET `url` (plain HTTP) and exit 0 on a 2xx answer, 1 otherwise. The
//!   images have no shell and no curl; this is what a container health check runs
//!   (`probe http://127.0.0.1:9081/readyz`).
//! - `<binary> migrate`: apply the database migrations and exit (a Helm hook Job runs this
//!   before an upgrade's pods start). It reads only `database.*` and `log.*` ([`MigrateConfig`]):
//!   the Job needs nothing but the database URL.
//! - `<binary> check-config`: load the whole configuration as `serve` would, say what is wrong
//!   with it, and exit (operators and the chart's tests run this on a rendered configuration).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ServiceConfig;
use crate::db::DatabaseConfig;
use crate::telemetry::LogConfig;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve,
    Migrate,
    CheckConfig,
    Probe(String),
}

#[derive(Debug, thiserror::Error)]
#[error("usage: {binary} [serve | migrate | check-config | probe <url>] (got `{got}`)")]
pub struct Usage {
    binary: String,
    got: String,
}

impl Command {
    /// Reads the process's arguments.
    pub fn from_args() -> Result<Self, Usage> {
        let mut args = std::env::args();
        let binary = args.next().unwrap_or_default();
        Self::parse(&binary, args.collect())
    }

    fn parse(binary: &str, args: Vec<String>) -> Result<Self, Usage> {
        let usage = || Usage {
            binary: binary.to_owned(),
            got: args.join(" "),
        };
        match args.as_slice() {
            [] => Ok(Self::Serve),
            [command] if command == "serve" => Ok(Self::Serve),
            [command] if command == "migrate" => Ok(Self::Migrate),
            [command] if command == "check-config" => Ok(Self::CheckConfig),
            [command, url] if command == "probe" => Ok(Self::Probe(url.clone())),
            _ => Err(usage()),
        }
    }
}

/// What `migrate` reads. Other settings, and the variables that set them, are ignored, so the
/// migration Job of a first install needs only the database URL from an existing Secret.
#[derive(Debug, Deserialize)]
pub struct MigrateConfig {
    pub database: DatabaseConfig,
    #[serde(default)]
    pub log: LogConfig,
}

impl ServiceConfig for MigrateConfig {}

/// GETs `url` and says whether it answered 2xx within a few seconds.
pub fn probe(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let attempt = || -> std::io::Result<bool> {
        let address = std::net::ToSocketAddrs::to_socket_addrs(authority)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.set_write_timeout(Some(Duration::from_secs(3)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 2") || head.starts_with(b"HTTP/1.0 2"))
    };
    attempt().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_anything_else_is_a_usage_error() {
        let args = |list: &[&str]| list.iter().map(|arg| (*arg).to_owned()).collect();
        assert_eq!(
            Command::parse("gavel", args(&[])).ok(),
            Some(Command::Serve)
        );
        assert_eq!(
            Command::parse("gavel", args(&["migrate"])).ok(),
            Some(Command::Migrate)
        );
        assert_eq!(
            Command::parse("gavel", args(&["probe", "http://x/readyz"])).ok(),
            Some(Command::Probe("http://x/readyz".to_owned()))
        );
        assert_eq!(
            Command::parse("gavel", args(&["check-config"])).ok(),
            Some(Command::CheckConfig)
        );
        assert_eq!(
            Command::parse("gavel", args(&["serve"])).ok(),
            Some(Command::Serve)
        );
        assert!(Command::parse("gavel", args(&["serve", "now"])).is_err());
    }

    #[test]
    fn a_probe_of_nothing_listening_fails() {
        assert!(!probe("http://127.0.0.1:1/readyz"));
        assert!(!probe("https://example.test/"));
    }
}
