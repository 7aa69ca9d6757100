//! A test-only Ed25519 key pair and a token minter, standing in for `wallets` in the tests of
//! services that only verify tokens. Never used outside tests.

use gavel_common::auth::{AuthConfig, Claims};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

pub const PRIVATE_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEID3xqlZZj1BEL0SDovjH77VVReaPqLSi554T0MQZOLzL
-----END PRIVATE KEY-----
";

pub const PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAYVKwLx9k6cSO4Qaqt7svsbaGo2bQkxqkoE/0vTCo2ek=
-----END PUBLIC KEY-----
";

/// A second key pair, for key rotation tests.
pub const NEXT_PRIVATE_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIOs+yUvydMUiCpaweFk7hKwyJItEWjRY2rbkSaFoQ6Gi
-----END PRIVATE KEY-----
";

pub const NEXT_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEALpc3fj2X7JZfAcyvNOftlQg/09sYmRqKkgQIP20TAwM=
-----END PUBLIC KEY-----
";

pub fn auth_config() -> AuthConfig {
    AuthConfig::with_key(PUBLIC_KEY_PEM)
}

/// Valid claims for `account`, expiring in an hour.
pub fn claims(account: Uuid, wallet: &str) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: account,
        iss: "gavel-wallets".to_owned(),
        aud: "gavel".to_owned(),
        iat: now,
        exp: now + 3600,
        wallet: wallet.to_owned(),
    }
}

/// Signs `claims` with the test key.
pub fn mint(claims: &Claims) -> String {
    let key = EncodingKey::from_ed_pem(PRIVATE_KEY_PEM.as_bytes()).expect("the test key is valid");
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).expect("claims serialize")
}
