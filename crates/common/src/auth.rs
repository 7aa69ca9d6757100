//! Verification of the access tokens that `wallets` mints (EdDSA/Ed25519 JWTs). Services hold
//! only the public key, so none of them can forge a token.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::Problem;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The Ed25519 public key of `wallets`, PEM-encoded (`-----BEGIN PUBLIC KEY-----`).
    pub jwt_public_key: String,
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_audience")]
    pub audience: String,
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
}

/// Checks signature, issuer, audience and expiry of access tokens.
#[derive(Clone)]
pub struct JwtVerifier {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
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
        let key = DecodingKey::from_ed_pem(config.jwt_public_key.as_bytes())
            .map_err(AuthConfigError::BadKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            key: Arc::new(key),
            validation: Arc::new(validation),
        })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, Problem> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| Problem::unauthorized(format!("invalid access token: {error}")))
    }
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
        let token = bearer_token(parts)?;
        JwtVerifier::from_ref(state)
            .verify(token)
            .map(Authenticated)
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
