//! `gateway-ws`: the browsers' one origin. It keeps the live WebSocket sessions (protocol in
//! `docs/gateway.md`): fans `auction.*` events out to subscribers, replays what a reconnecting
//! client missed from the `bids` log, places bids, and counts watchers. It also serves the web
//! client and forwards its REST calls to the services.

pub mod config;
pub mod edge;
pub mod fanout;
pub mod hub;
pub mod log;
pub mod metrics;
pub mod presence;
pub mod protocol;
pub mod routes;
pub mod session;
pub mod upstream;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use gavel_common::auth::JwtVerifier;
use gavel_common::cache::Cache;
use gavel_common::health::Readiness;
use gavel_common::metrics::Metrics;
use gavel_common::server::{Service, StartError};
use gavel_messaging::Broker;
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};

pub use config::Config;

use crate::edge::Edge;
use crate::hub::Hub;
use crate::log::{LogMetrics, LotLog};
use crate::metrics::GatewayMetrics;
use crate::session::Context;
use crate::upstream::{Forwarding, Upstreams};

/// What tungstenite reserves for reading per connection (its default is 128 KiB). A frame larger
/// than this still fits: the buffer grows for it, up to `max_frame_bytes`.
pub const READ_BUFFER_BYTES: usize = 1024;

/// What a connection gathers before writing to its socket while it writes a burst of pushes
/// (`session::PUSH_BURST`): a burst of small events takes one write per 8 KiB instead of one per
/// event. Outside a burst every message is flushed at once. The buffer keeps the capacity it grew
/// to (up to about twice this on a busy connection); an idle connection never grows it.
pub const WRITE_BUFFER_BYTES: usize = 8 * 1024;

/// Connects to everything `gateway-ws` needs and assembles the service.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    let metrics = Metrics::new("gateway-ws");
    let gateway_metrics = GatewayMetrics::new(&metrics);
    let verifier = JwtVerifier::from_config(&config.auth)
        .map_err(|e| StartError::new("loading the JWT key", e))?
        .with_metrics(&metrics);
    let cache = Cache::connect(&config.redis)
        .await
        .map_err(|e| StartError::new("connecting to Redis", e))?;
    let edge = Edge::new(config.edge.clone(), cache.clone());
    let upstreams = Upstreams::new(config.upstream.clone())
        .map_err(|e| StartError::new("creating the HTTP client", e))?
        .with_bid_metrics(
            gateway_metrics.bids_waiting.clone(),
            gateway_metrics.bids_busy.clone(),
        );
    let replica = if config.gateway.replica_id.is_empty() {
        uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
    } else {
        config.gateway.replica_id.clone()
    };
    let broker = Broker::new(config.broker.clone(), format!("gateway-ws {replica}"));
    let consuming = Arc::new(AtomicBool::new(false));
    let fanout_ready = consuming.clone();
    let readiness = Readiness::default()
        .with_redis(cache.clone())
        .with_check("rabbitmq", broker.check())
        .with_check("fan-out", move || {
            let ready = fanout_ready.load(Ordering::Acquire);
            async move {
                if ready {
                    Ok(())
                } else {
                    Err("the auction event queue is not consumed yet".to_owned())
                }
            }
        });

    let hub = Arc::new(Hub::default());
    let log = Arc::new(LotLog::new(upstreams.clone(), LogMetrics::new(&metrics)));
    // The sessions close (1001) once the listener has drained, after readiness went false.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let context = Arc::new(Context {
        hub: hub.clone(),
        log: log.clone(),
        edge: edge.clone(),
        upstreams: upstreams.clone(),
        verifier,
        limits: config.gateway.clone(),
        shutdown: shutdown.clone(),
        metrics: gateway_metrics.clone(),
    });
    let router = router(context, Forwarding { upstreams, edge }, &config.web);
    let service = Service::new(router, metrics, readiness)
        .with_send_buffer(config.gateway.socket_send_buffer)
        .with_body_limit(config.upstream.max_body_bytes);
    let cancel = service.cancellation();
    let fanout = fanout::Fanout {
        broker,
        queue: format!("gateway-ws.{replica}"),
        hub: hub.clone(),
        log,
        metrics: gateway_metrics,
        consuming,
    };
    let presence = presence::Presence {
        cache,
        hub,
        replica,
        interval: config.gateway.presence_interval,
    };
    Ok(service
        .with_task("fan-out", fanout.run(cancel.clone()))
        .with_task("presence", presence.run(cancel.clone()))
        .with_task("sessions", async move {
            cancel.cancelled().await;
            shutdown.cancel();
            Ok(())
        }))
}

fn router(context: Arc<Context>, forwarding: Forwarding, web: &config::WebConfig) -> Router {
    let client_config = json!({
        "chain_id": web.chain_id,
        "rpc_url": web.rpc_url,
        "protocol": protocol::VERSION,
        "ws_path": "/ws/v1",
    });
    if !web.dir.join("index.html").is_file() {
        tracing::warn!(dir = %web.dir.display(), "no web client here: run `npm run build` in web/");
    }
    let files = ServeDir::new(&web.dir).fallback(ServeFile::new(web.dir.join("index.html")));
    let policy = content_security_policy(web);
    let client = Router::new()
        .fallback_service(files)
        .layer(axum::middleware::map_response(
            move |mut response: Response| {
                let policy = policy.clone();
                async move {
                    page_headers(response.headers_mut(), policy);
                    response
                }
            },
        ));
    Router::new()
        .route("/ws/v1", get(websocket).with_state(context))
        .route(
            "/api/config",
            get(move || async move { axum::Json(client_config) }),
        )
        .route(
            "/api/{*rest}",
            any(upstream::forward).with_state(forwarding),
        )
        .merge(client)
}

/// The page's Content-Security-Policy: its own scripts, styles and WebSocket; images from itself
/// (photos come through `/api`), data/blob URLs the client makes, and any configured photo
/// origin; the dev chain's RPC when configured. Nobody may frame it.
fn content_security_policy(web: &config::WebConfig) -> HeaderValue {
    let origin = |url: &url::Url| url.origin().ascii_serialization();
    let images: Vec<String> = web.image_origins.iter().map(origin).collect();
    let rpc = web.rpc_url.as_ref().map(origin).unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: {}; \
         connect-src 'self' {rpc}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
        images.join(" ")
    );
    HeaderValue::from_str(&policy.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"))
}

fn page_headers(headers: &mut axum::http::HeaderMap, policy: HeaderValue) {
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
}

async fn websocket(
    State(context): State<Arc<Context>>,
    parts: Parts,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client = context
        .edge
        .client(gavel_common::listener::peer(&parts), &parts.headers);
    if let Err(problem) = context.edge.admit_connection(client).await {
        return problem.into_response();
    }
    let max = context.limits.max_frame_bytes;
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session::serve(socket, context, client))
        .into_response()
}
