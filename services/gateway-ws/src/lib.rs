//! `gateway-ws`: the browsers' one origin. It keeps the live WebSocket sessions (protocol in
//! `docs/gateway.md`): fans `auction.*` events out to subscribers, replays what a reconnecting
//! client missed from the `bids` log, places bids, and counts watchers. It also serves the web
//! client and forwards its REST calls to the services.

pub mod config;
pub mod fanout;
pub mod hub;
pub mod metrics;
pub mod presence;
pub mod protocol;
pub mod session;
pub mod upstream;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
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

use crate::hub::Hub;
use crate::metrics::GatewayMetrics;
use crate::session::Context;
use crate::upstream::Upstreams;

/// What tungstenite reserves for reading per connection (its default is 128 KiB). A frame larger
/// than this still fits: the buffer grows for it, up to `max_frame_bytes`.
pub const READ_BUFFER_BYTES: usize = 1024;

/// Connects to everything `gateway-ws` needs and assembles the service.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    let metrics = Metrics::new("gateway-ws");
    let gateway_metrics = GatewayMetrics::new(&metrics);
    let verifier = JwtVerifier::from_config(&config.auth)
        .map_err(|e| StartError::new("loading the JWT key", e))?;
    let cache = Cache::connect(&config.redis)
        .await
        .map_err(|e| StartError::new("connecting to Redis", e))?;
    let upstreams = Upstreams::new(config.upstream.clone())
        .map_err(|e| StartError::new("creating the HTTP client", e))?;
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
    // The sessions close (1001) once the listener has drained, after readiness went false.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let context = Arc::new(Context {
        hub: hub.clone(),
        upstreams: upstreams.clone(),
        verifier,
        limits: config.gateway.clone(),
        shutdown: shutdown.clone(),
        metrics: gateway_metrics.clone(),
    });
    let router = router(context, upstreams, &config.web);
    let service = Service::new(router, metrics, readiness)
        .with_send_buffer(config.gateway.socket_send_buffer);
    let cancel = service.cancellation();
    let fanout = fanout::Fanout {
        broker,
        queue: format!("gateway-ws.{replica}"),
        hub: hub.clone(),
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

fn router(context: Arc<Context>, upstreams: Upstreams, web: &config::WebConfig) -> Router {
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
    Router::new()
        .route("/ws/v1", get(websocket).with_state(context))
        .route(
            "/api/config",
            get(move || async move { axum::Json(client_config) }),
        )
        .route("/api/{*rest}", any(upstream::forward).with_state(upstreams))
        .fallback_service(files)
}

async fn websocket(State(context): State<Arc<Context>>, upgrade: WebSocketUpgrade) -> Response {
    let max = context.limits.max_frame_bytes;
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session::serve(socket, context))
        .into_response()
}
