//! Service-to-service APIs. They are served on a listener of their own (never the public one, so
//! no path trick at the edge can reach them, and a NetworkPolicy can admit exactly the callers),
//! and every call presents a per-caller bearer token, compared in constant time.
//!
//! - [`InternalConfig`]: where the internal listener binds and which callers it admits.
//! - [`Caller`]: the extractor naming the calling service.
//! - [`ServiceClient`]: the calling side (base URL, token, timeouts, JSON in and out).
//! - [`POOL_IDLE`] and [`send_repeatable`]: how every client of a Gavel listener keeps and
//!   reuses connections without losing a request to a connection the server is closing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::Value;

pub use reqwest::Method;

use crate::config::{ListenConfig, Secret};
use crate::problem::Problem;

/// The internal listener and the callers it admits (`internal.tokens.<caller>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalConfig {
    pub addr: SocketAddr,
    #[serde(default)]
    pub tokens: BTreeMap<String, Secret>,
}

impl InternalConfig {
    /// Every interface on `port`, no callers yet.
    pub fn on_port(port: u16) -> Self {
        Self {
            addr: ([0, 0, 0, 0], port).into(),
            tokens: BTreeMap::new(),
        }
    }

    pub fn listen(&self) -> ListenConfig {
        ListenConfig::new(self.addr)
    }

    pub fn callers(&self) -> Callers {
        Callers(Arc::new(self.tokens.clone()))
    }
}

/// The admitted callers' tokens, a cheap handle for router state.
#[derive(Debug, Clone, Default)]
pub struct Callers(Arc<BTreeMap<String, Secret>>);

/// A service calling an internal API, identified by its bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Callers: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Problem::unauthorized(
                    "the internal API needs `Authorization: Bearer <service token>`",
                )
            })?;
        let callers = Callers::from_ref(state);
        callers
            .0
            .iter()
            .find(|(_, token)| constant_time_eq(token.expose().as_bytes(), presented.as_bytes()))
            .map(|(name, _)| Self(name.clone()))
            .ok_or_else(|| Problem::unauthorized("unknown service token"))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where another service's internal API is, and the token this service presents to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub url: url::Url,
    pub token: Secret,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// How long a client keeps an unused connection to a Gavel listener. A listener closes a
/// kept-alive connection that has been silent for its `header_read_timeout` (10 s unless
/// configured); a client keeping it longer sends requests into connections being closed, and
/// such a request fails with nothing wrong on either side.
pub const POOL_IDLE: Duration = Duration::from_secs(4);

/// Whether the server closed the connection before answering: a kept-alive connection it was
/// closing as the request went out (closed cleanly, or reset because the request's bytes were
/// still unread), or a server stopping. The server may have acted on the request, so only a
/// request safe to repeat may be sent again.
pub fn closed_before_answer(error: &reqwest::Error) -> bool {
    use std::io::ErrorKind;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
            || cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
                )
            })
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Sends `request`, and sends it once more (on another connection) if the server closed the
/// connection before answering. Only for requests safe to repeat: reads, and changes carrying an
/// `Idempotency-Key` the server deduplicates by.
pub async fn send_repeatable(
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let again = request.try_clone();
    match (request.send().await, again) {
        (Err(error), Some(again)) if closed_before_answer(&error) => {
            tracing::debug!(%error, "the connection closed before the answer; sending again");
            again.send().await
        }
        (sent, _) => sent,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the service is unreachable")]
    Unreachable(#[from] reqwest::Error),
}

impl CallError {
    /// Whether the call timed out (the other side may still have acted on it).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Unreachable(error) => error.is_timeout(),
        }
    }
}

/// A JSON client of another service's internal API.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    http: reqwest::Client,
    base: String,
    token: Arc<str>,
}

impl ServiceClient {
    pub fn new(config: &PeerConfig) -> Result<Self, CallError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(POOL_IDLE)
            .build()?;
        Ok(Self {
            http,
            base: config.url.as_str().trim_end_matches('/').to_owned(),
            token: Arc::from(config.token.expose()),
        })
    }

    /// Sends `body` to `path` (with an `Idempotency-Key` when given); returns the status and the
    /// JSON answer (`null` when the answer is not JSON). A read, or a change with a key, is sent
    /// again if the connection closed before the answer ([`send_repeatable`]).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), CallError> {
        let repeatable = key.is_some() || method == Method::GET;
        self.send_as(method, path, key, body, repeatable).await
    }

    async fn send_as(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        repeatable: bool,
    ) -> Result<(u16, Value), CallError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&*self.token);
        if let Some(key) = key {
            request = request.header(crate::idempotency::HEADER, key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = if repeatable {
            send_repeatable(request).await?
        } else {
            request.send().await?
        };
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    pub async fn post(
        &self,
        path: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        self.send(Method::POST, path, key, Some(body)).await
    }

    /// Posts a change the server deduplicates by keys inside `body` (a batch whose items carry
    /// their own keys): safe to send again like a keyed one.
    pub async fn post_keyed_inside(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        self.send_as(Method::POST, path, None, Some(body), true)
            .await
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value), CallError> {
        self.send(Method::GET, path, None, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
