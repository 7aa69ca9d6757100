//! Access tokens: EdDSA (Ed25519) JWTs signed with a key only `wallets` holds. The public half is
//! published as a JWKS document so every other service verifies tokens without any shared secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use gavel_common::auth::Claims;
use gavel_types::{AccountId, EthAddress};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::config::TokenConfig;

#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    #[error("`tokens.private_key` is not an Ed25519 private key in PKCS#8 PEM form")]
    NotEd25519,
    #[error(
        "`tokens.previous_public_keys` has an entry that is not an Ed25519 public key in PEM form"
    )]
    BadPrevious,
}

#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    kid: String,
    public_key: [u8; 32],
    /// Earlier keys' public halves, still in the JWKS.
    previous: Vec<[u8; 32]>,
    ttl_seconds: i64,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A freshly minted token and when it expires.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

impl TokenIssuer {
    pub fn from_config(config: &TokenConfig) -> Result<Self, TokenKeyError> {
        let pem = config.private_key.expose();
        let signing = SigningKey::from_pkcs8_pem(pem).map_err(|_| TokenKeyError::NotEd25519)?;
        let key =
            EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|_| TokenKeyError::NotEd25519)?;
        let public_key = signing.verifying_key().to_bytes();
        let previous = config
            .previous_public_keys
            .iter()
            .map(|pem| {
                ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                    .map(|key| key.to_bytes())
                    .map_err(|_| TokenKeyError::BadPrevious)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            key,
            kid: key_id(&public_key),
            public_key,
            previous,
            ttl_seconds: i64::try_from(config.ttl.as_secs()).unwrap_or(900),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    pub fn mint(
        &self,
        account: AccountId,
        wallet: EthAddress,
    ) -> Result<AccessToken, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: account.0,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl_seconds,
            wallet: wallet.to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)?;
        Ok(AccessToken {
            access_token: token,
            token_type: "Bearer",
            expires_in: self.ttl_seconds,
        })
    }

    /// The JWKS document (RFC 7517, OKP keys per RFC 8037): the signing key, then earlier ones.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = std::iter::once(&self.public_key)
            .chain(&self.previous)
            .map(|key| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": key_id(key),
                    "x": URL_SAFE_NO_PAD.encode(key),
                })
            })
            .collect();
        json!({ "keys": keys })
    }

    /// The public key as PEM (SubjectPublicKeyInfo), what other services put in
    /// `auth.jwt_public_key`.
    pub fn public_key_pem(&self) -> String {
        // The fixed DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), then the key.
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&self.public_key);
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
    }
}

/// A short, stable key id derived from the public key, so rotations show up in the JWKS.
fn key_id(public_key: &[u8; 32]) -> String {
    alloy::hex::encode(&alloy::primitives::keccak256(public_key)[..8])
}
