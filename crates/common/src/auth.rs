//! Verification of the access tokens that `wallets` mints (EdDSA/Ed25519 JWTs). Services hold
//! only public keys, so none of them can forge a token.
//!
//! Keys come from `wallets`' JWKS (`auth.jwks_url`), cached by key id and fetched again when a
//! token names a key id not seen yet (at most once per `auth.jwks_refresh`, so forged key ids
//! cannot hammer `wallets`): a key rotation needs no restart anywhere. The key configured in
//! `auth.jwt_public_key`, when set, is the fallback for tokens whose key the JWKS does not give.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use prometheus::IntCounterVec;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::Problem;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// An Ed25519 public key of `wallets`, PEM-encoded (`-----BEGIN PUBLIC KEY-----`): the
    /// fallback when the JWKS is not set or does not answer.
    #[serde(default)]
    pub jwt_public_key: Option<String>,
    /// `wallets`' JWKS, e.g. `http://wallets:8083/.well-known/jwks.json`.
    #[serde(default)]
    pub jwks_url: Option<url::Url>,
    /// The JWKS is fetched again at most this often (for a key id it does not know yet).
    #[serde(default = "default_jwks_refresh", with = "humantime_serde")]
    pub jwks_refresh: Duration,
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_audience")]
    pub audience: String,
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(30)
}

impl AuthConfig {
    /// Verification with one fixed key (tests, and `wallets` checking its own tokens).
    pub fn with_key(pem: impl Into<String>) -> Self {
        Self {
            jwt_public_key: Some(pem.into()),
            jwks_url: None,
            jwks_refresh: default_jwks_refresh(),
            issuer: default_issuer(),
            audience: default_audience(),
        }
    }
}

fn default_issuer() -> String {
    "gavel-wallets".to_owned()
}

fn default_audience() -> String {
    "gavel".to_owned()
}

/// The claims of a Gavel access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id.
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// The wallet the holder signed in with (EIP-55 checksummed).
    pub wallet: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("`auth.jwt_public_key` is not an Ed25519 public key in PEM form")]
    BadKey(#[source] jsonwebtoken::errors::Error),
    #[error("set `auth.jwks_url` (GAVEL_AUTH__JWKS_URL), `auth.jwt_public_key`, or both")]
    NoKey,
    #[error("cannot create the JWKS client")]
    Client(#[source] reqwest::Error),
}

/// Checks signature, issuer, audience and expiry of access tokens. Cheap to clone.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
    /// `gavel_auth_token_failures_total{reason}` once [`JwtVerifier::with_metrics`] registered it.
    failures: IntCounterVec,
}

/// Why a presented token was refused: the `reason` label of `gavel_auth_token_failures_total`.
const FAILURE_REASONS: [&str; 7] = [
    "missing",
    "malformed",
    "expired",
    "bad_signature",
    "wrong_claims",
    "unknown_key",
    "other",
];

fn failure_reason(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => "expired",
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => "bad_signature",
        ErrorKind::InvalidIssuer
        | ErrorKind::InvalidAudience
        | ErrorKind::InvalidSubject
        | ErrorKind::MissingRequiredClaim(_) => "wrong_claims",
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::MissingAlgorithm => "malformed",
        _ => "other",
    }
}

struct Inner {
    fallback: Option<DecodingKey>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    jwks: Option<Jwks>,
    validation: Validation,
}

struct Jwks {
    url: url::Url,
    http: reqwest::Client,
    refresh: Duration,
    /// When the JWKS was last fetched; held across a fetch (by the fetching task, not by the
    /// request that started it), so that requests naming a key not known yet wait for the fetch
    /// in flight instead of being refused while it runs.
    fetched: Arc<tokio::sync::Mutex<Option<Instant>>>,
    /// Fetches finished so far: a request that waited through one does not start another.
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &"EdDSA")
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    pub fn from_config(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        let fallback = config
            .jwt_public_key
            .as_deref()
            .map(|pem| DecodingKey::from_ed_pem(pem.as_bytes()).map_err(AuthConfigError::BadKey))
            .transpose()?;
        let jwks = match &config.jwks_url {
            Some(url) => Some(Jwks {
                url: url.clone(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .pool_idle_timeout(crate::internal::POOL_IDLE)
                    .build()
                    .map_err(AuthConfigError::Client)?,
                refresh: config.jwks_refresh,
                fetched: Arc::default(),
                generation: std::sync::atomic::AtomicU64::new(0),
            }),
            None => None,
        };
        if fallback.is_none() && jwks.is_none() {
            return Err(AuthConfigError::NoKey);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            inner: Arc::new(Inner {
                fallback,
                keys: RwLock::default(),
                jwks,
                validation,
            }),
            failures: crate::metrics::counter_vec(
                "auth_token_failures_total",
                "Access tokens refused, by reason.",
                "reason",
                &FAILURE_REASONS,
            ),
        })
    }

    /// Counts refused tokens in `metrics` (`gavel_auth_token_failures_total{reason}`).
    #[must_use]
    pub fn with_metrics(self, metrics: &crate::metrics::Metrics) -> Self {
        metrics.register(self.failures.clone());
        self
    }

    fn refused(&self, reason: &'static str) {
        self.failures.with_label_values(&[reason]).inc();
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, Problem> {
        let invalid = |error: jsonwebtoken::errors::Error| {
            self.refused(failure_reason(&error));
            Problem::unauthorized(format!("invalid access token: {error}"))
        };
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        if let Some(kid) = &header.kid {
            if let Some(claims) = self.with_known_key(kid, token) {
                return claims.map_err(invalid);
            }
            if self.refresh(kid).await
                && let Some(claims) = self.with_known_key(kid, token)
            {
                return claims.map_err(invalid);
            }
        }
        match &self.inner.fallback {
            Some(key) => jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation)
                .map(|data| data.claims)
                .map_err(invalid),
            None => {
                self.refused("unknown_key");
                Err(Problem::unauthorized(
                    "invalid access token: signed with a key this service does not know",
                ))
            }
        }
    }

    fn with_known_key(
        &self,
        kid: &str,
        token: &str,
    ) -> Option<Result<Claims, jsonwebtoken::errors::Error>> {
        let keys = self
            .inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let key = keys.get(kid)?;
        Some(
            jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation)
                .map(|data| data.claims),
        )
    }

    /// Fetches the JWKS again for a token naming `kid`, unless a fetch that finished while this
    /// request waited for its turn already answered (bringing `kid` or not), or the JWKS was
    /// fetched less than `jwks_refresh` ago; returns whether `kid` may be known now.
    async fn refresh(&self, kid: &str) -> bool {
        use std::sync::atomic::Ordering;
        let Some(jwks) = &self.inner.jwks else {
            return false;
        };
        let seen = jwks.generation.load(Ordering::Acquire);
        // One fetch at a time; whoever waited for it looks again before fetching.
        let mut fetched = jwks.fetched.clone().lock_owned().await;
        if self.inner.knows(kid) {
            return true;
        }
        if jwks.generation.load(Ordering::Acquire) != seen
            || fetched.is_some_and(|at| at.elapsed() < jwks.refresh)
        {
            return false;
        }
        *fetched = Some(Instant::now());
        // The fetch runs as a task of its own, holding the turn: a request that goes away while
        // it runs (a client disconnecting) does not abandon the fetch the others wait for.
        let inner = self.inner.clone();
        let fetch = tokio::spawn(async move {
            let _turn = fetched;
            let refreshed = inner.fetch_keys().await;
            if let Some(jwks) = &inner.jwks {
                jwks.generation.fetch_add(1, Ordering::Release);
            }
            refreshed
        });
        fetch.await.unwrap_or(false) && self.inner.knows(kid)
    }
}

impl Inner {
    fn knows(&self, kid: &str) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(kid)
    }

    /// Replaces the known keys with the JWKS's; `false` when it cannot be fetched.
    async fn fetch_keys(&self) -> bool {
        let Some(jwks) = &self.jwks else {
            return false;
        };
        let set = match fetch_jwks(jwks).await {
            Ok(set) => set,
            Err(error) => {
                tracing::warn!(url = %jwks.url, %error, "cannot fetch the JWKS; using the keys known so far");
                return false;
            }
        };
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) {
                keys.insert(kid.clone(), key);
            }
        }
        tracing::info!(keys = keys.len(), "fetched the JWKS");
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        true
    }
}

async fn fetch_jwks(jwks: &Jwks) -> Result<jsonwebtoken::jwk::JwkSet, reqwest::Error> {
    crate::internal::send_repeatable(jwks.http.get(jwks.url.clone()))
        .await?
        .error_for_status()?
        .json()
        .await
}

/// The signed-in caller. Rejects with 401 when the bearer token is missing or does not verify.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl<S> FromRequestParts<S> for Authenticated
where
    JwtVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = JwtVerifier::from_ref(state);
        let token = bearer_token(parts).inspect_err(|_| {
            let reason = if parts.headers.contains_key(header::AUTHORIZATION) {
                "malformed"
            } else {
                "missing"
            };
            verifier.refused(reason);
        })?;
        verifier.verify(token).await.map(Authenticated)
    }
}

/// Signed in or anonymous: no `Authorization` header is `None`; a header that does not verify is
/// still a 401 (a broken token should not silently downgrade to anonymous).
impl<S> axum::extract::OptionalFromRequestParts<S> for Authenticated
where
    JwtVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, Problem> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("missing `Authorization: Bearer <token>` header"))?;
    value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer <token>`"))
}
