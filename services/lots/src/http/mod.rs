//! The HTTP API of `lots`, and its OpenAPI document, generated from these handlers' annotations.

mod error;
mod lots;
mod photos;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use gavel_common::auth::JwtVerifier;
use gavel_common::openapi::ProblemResponses;
use sqlx::PgPool;
use utoipa::OpenApi;

pub use error::ApiError;

use crate::config::PhotoLimits;
use crate::storage::Storage;

#[derive(Clone, Debug)]
pub struct AppState {
    pub pool: PgPool,
    pub engine: crate::changes::Engine,
    pub storage: Storage,
    pub verifier: JwtVerifier,
    pub limits: Arc<PhotoLimits>,
    pub metrics: crate::metrics::LotMetrics,
}

impl FromRef<AppState> for JwtVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Gavel lots", version = "1", description = "Sellers' lots, photos and the public catalogue. Errors are application/problem+json with a stable `code` and the `field` at fault."),
    paths(lots::create, lots::list, lots::show, lots::replace, lots::cancel, photos::upload, photos::serve, photos::remove),
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
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (EdDSA) from wallets")
                    .build(),
            ),
        );
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/lots", post(lots::create).get(lots::list))
        .route(
            "/lots/{lot_id}",
            get(lots::show).put(lots::replace).delete(lots::cancel),
        )
        // The upload enforces its own limit while streaming, so axum's default one is off here.
        .route(
            "/lots/{lot_id}/photos",
            post(photos::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/lots/{lot_id}/photos/{photo_id}",
            get(photos::serve).delete(photos::remove),
        )
        .route(
            "/openapi.json",
            get(|| async { axum::Json(ApiDoc::openapi()) }),
        )
        .fallback(|| async { ApiError::NotFound("route") })
        .with_state(state)
}
