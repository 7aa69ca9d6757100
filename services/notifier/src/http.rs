//! The notifier's HTTP API: one-time link codes for signed-in accounts, and Telegram's webhook.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use gavel_common::auth::{Authenticated, JwtVerifier};
use gavel_common::openapi::ProblemResponses;
use gavel_common::problem::Problem;
use rand::Rng;
use serde_json::json;
use sqlx::PgPool;
use teloxide::types::Update;
use tracing::warn;

use crate::commands::handle_update;
use crate::config::LinksConfig;

/// Codes avoid look-alike characters (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

#[derive(Clone, Debug)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: JwtVerifier,
    pub links: LinksConfig,
    /// Set in webhook mode: the secret Telegram must present, and the bot's username.
    pub webhook: Option<(String, String)>,
    /// The bot's username, which the browser names ("send this to @name"); `None` on a dry run
    /// (no token: messages are logged, not sent).
    pub bot: Option<String>,
}

impl axum::extract::FromRef<AppState> for JwtVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/link-codes", post(link_code))
        .route("/telegram/webhook", post(webhook))
        .route(
            "/openapi.json",
            axum::routing::get(|| async {
                use utoipa::OpenApi as _;
                axum::Json(ApiDoc::openapi())
            }),
        )
        .fallback(|| async { Problem::not_found("route") })
        .with_state(state)
}

/// The notifier's OpenAPI document, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Gavel notifier", version = "1", description = "Telegram link codes for signed-in accounts, and Telegram's webhook. Errors are application/problem+json."),
    paths(link_code, webhook),
    modifiers(&Security, &ProblemResponses)
)]
#[derive(Debug)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// A one-time code the signed-in account sends to the bot as `/link CODE`.
#[utoipa::path(post, path = "/link-codes", tag = "telegram", security(("bearer" = [])),
    responses((status = 201, body = Object, description = "`{code, expires_at, command, bot, bot_url}`: `bot` is the bot's username, null when the notifier runs dry")))]
async fn link_code(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, Problem> {
    let code: String = {
        let mut rng = rand::rng();
        (0..8)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    };
    let ttl = chrono::Duration::from_std(state.links.code_ttl)
        .unwrap_or_else(|_| chrono::Duration::minutes(10));
    let expires_at = Utc::now() + ttl;
    sqlx::query("INSERT INTO link_codes (code, account_id, expires_at) VALUES ($1, $2, $3)")
        .bind(&code)
        .bind(claims.sub)
        .bind(expires_at)
        .execute(&state.pool)
        .await
        .map_err(|error| Problem::internal(&error))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "code": code,
            "expires_at": expires_at,
            "command": format!("/link {code}"),
            "bot": state.bot,
            "bot_url": state.bot.as_ref().map(|bot| format!("https://t.me/{bot}")),
        })),
    )
        .into_response())
}

/// Telegram posts updates here in webhook mode, with the secret set by `setWebhook` (404 when
/// the bot polls instead).
#[utoipa::path(post, path = "/telegram/webhook", tag = "telegram",
    params(("x-telegram-bot-api-secret-token" = String, Header)),
    request_body(content = Object, description = "a Telegram Update"),
    responses((status = 200, description = "applied (or ignored, when it does not parse)"),
              (status = 401, description = "the secret is missing or wrong"),
              (status = 404, description = "the bot is not in webhook mode")))]
async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((secret, bot_name)) = &state.webhook else {
        return Problem::not_found("route").into_response();
    };
    let presented = headers
        .get(SECRET_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if !constant_time_eq(presented, secret.as_bytes()) {
        return Problem::unauthorized("the webhook secret token is missing or wrong")
            .into_response();
    }
    let Ok(update) = serde_json::from_slice::<Update>(&body) else {
        // Telegram would resend an update refused with an error forever: accept and log it.
        warn!(body = %String::from_utf8_lossy(&body), "ignoring an update that does not parse");
        return StatusCode::OK.into_response();
    };
    match handle_update(&state.pool, &update, bot_name, &state.links.public_url).await {
        Ok(_) => StatusCode::OK.into_response(),
        // Telegram retries a failed delivery; the update is applied once when it succeeds.
        Err(error) => Problem::internal(&error).into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
