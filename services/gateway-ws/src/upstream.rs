//! The services behind the gateway: the `bids` calls the sessions make, and the forwarding of the
//! browser's REST calls.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gavel_common::internal::send_repeatable;
use gavel_common::problem::Problem;
use gavel_messaging::Envelope;
use gavel_types::LotId;
use prometheus::{IntCounter, IntGauge};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::config::UpstreamConfig;
use crate::edge::Edge;
use crate::protocol;
use crate::routes::{self, Refused, Target, Upstream};

/// At most this many events are replayed; a client further behind gets a snapshot.
pub const REPLAY_LIMIT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach {service}: {source}")]
    Unreachable {
        service: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{service} answered {status}")]
    Status {
        service: &'static str,
        status: StatusCode,
    },
    /// `upstream.max_bids_in_flight` bids already wait on `bids`.
    #[error("{service} already has {limit} bids in flight from this gateway")]
    Busy { service: &'static str, limit: usize },
    /// An answer that lacks what it must carry.
    #[error("{service} answered without {what}")]
    Malformed {
        service: &'static str,
        what: &'static str,
    },
    /// A shared call (see [`crate::log`]) failed for everyone who waited on it.
    #[error("{service} call failed: {message}")]
    Shared {
        service: &'static str,
        message: String,
    },
}

/// The lot as `bids` has it, with the sequence of its last event.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub sequence: i64,
    pub lot: Value,
}

/// What a bid came to.
#[derive(Debug)]
pub enum BidOutcome {
    /// 201: `result` is the bids answer; `replayed` when it answers an earlier request.
    Placed {
        status: u16,
        result: Value,
        replayed: bool,
    },
    /// A refusal with its problem body (too low, insufficient funds, unauthorized, …).
    Refused { status: u16, problem: Value },
}

/// Counts one bid in `ws_bids_waiting` while it lives.
struct Waiting<'a>(&'a IntGauge);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One bid's place in its lot's count of bids waiting on `bids`.
struct LotSlot<'a> {
    counts: &'a Mutex<HashMap<LotId, usize>>,
    lot: LotId,
}

impl<'a> LotSlot<'a> {
    fn take(counts: &'a Mutex<HashMap<LotId, usize>>, lot: LotId, limit: usize) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = map.entry(lot).or_default();
        if *count >= limit.max(1) {
            return None;
        }
        *count += 1;
        Some(Self { counts, lot })
    }
}

impl Drop for LotSlot<'_> {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.lot) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.lot);
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Upstreams {
    http: reqwest::Client,
    config: UpstreamConfig,
    /// One permit per bid waiting on `bids`: each holds one HTTP/1 connection.
    bids_in_flight: Arc<Semaphore>,
    /// Bids waiting on `bids`, per lot.
    per_lot: Arc<Mutex<HashMap<LotId, usize>>>,
    /// `ws_bids_waiting` and `ws_bids_engine_busy_total`, when metrics are kept.
    bid_metrics: Option<(IntGauge, IntCounter)>,
}

impl Upstreams {
    pub fn new(config: UpstreamConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(gavel_common::internal::POOL_IDLE)
            .build()?;
        let bids_in_flight = Arc::new(Semaphore::new(config.max_bids_in_flight.max(1)));
        Ok(Self {
            http,
            config,
            bids_in_flight,
            per_lot: Arc::default(),
            bid_metrics: None,
        })
    }

    /// Counts bids waiting on `bids` in `waiting` and those turned away in `busy`.
    pub fn with_bid_metrics(mut self, waiting: IntGauge, busy: IntCounter) -> Self {
        self.bid_metrics = Some((waiting, busy));
        self
    }

    fn bids_url(&self, path: &str) -> String {
        format!("{}{path}", self.config.bids.as_str().trim_end_matches('/'))
    }

    fn unreachable(source: reqwest::Error) -> UpstreamError {
        UpstreamError::Unreachable {
            service: "bids",
            source,
        }
    }

    /// `None` when bids does not know the lot.
    pub async fn snapshot(&self, lot_id: LotId) -> Result<Option<Snapshot>, UpstreamError> {
        let response = send_repeatable(
            self.http
                .get(self.bids_url(&format!("/lots/{lot_id}")))
                .timeout(self.config.timeout),
        )
        .await
        .map_err(Self::unreachable)?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            status => {
                return Err(UpstreamError::Status {
                    service: "bids",
                    status,
                });
            }
        }
        let lot: Value = response.json().await.map_err(Self::unreachable)?;
        let sequence = lot["sequence"].as_i64().ok_or(UpstreamError::Malformed {
            service: "bids",
            what: "the lot's sequence",
        })?;
        Ok(Some(Snapshot { sequence, lot }))
    }

    /// The events of `lot_id` after `since`, in order: at most [`REPLAY_LIMIT`].
    pub async fn events_since(
        &self,
        lot_id: LotId,
        since: i64,
    ) -> Result<Vec<Envelope>, UpstreamError> {
        #[derive(serde::Deserialize)]
        struct Page {
            events: Vec<Envelope>,
        }
        let response = send_repeatable(
            self.http
                .get(self.bids_url(&format!(
                    "/lots/{lot_id}/events?since={since}&limit={REPLAY_LIMIT}"
                )))
                .timeout(self.config.timeout),
        )
        .await
        .map_err(Self::unreachable)?;
        if !response.status().is_success() {
            return Err(UpstreamError::Status {
                service: "bids",
                status: response.status(),
            });
        }
        let page: Page = response.json().await.map_err(Self::unreachable)?;
        Ok(page.events)
    }

    /// Places a bid as the token's holder, with the client's id as the idempotency key.
    pub async fn place(
        &self,
        token: &str,
        bid: &protocol::Bid,
    ) -> Result<BidOutcome, UpstreamError> {
        // Past the bound the engine is behind: say so now rather than queue another
        // connection behind it (the client resends the same bid id later).
        let (Ok(_permit), Some(_lot_slot)) = (
            self.bids_in_flight.try_acquire(),
            LotSlot::take(
                &self.per_lot,
                bid.lot_id,
                self.config.max_bids_in_flight_per_lot,
            ),
        ) else {
            if let Some((_, busy)) = &self.bid_metrics {
                busy.inc();
            }
            return Err(UpstreamError::Busy {
                service: "bids",
                limit: self.config.max_bids_in_flight,
            });
        };
        let _waiting = self
            .bid_metrics
            .as_ref()
            .map(|(waiting, _)| Waiting::new(waiting));
        let mut body = json!({"amount": bid.amount});
        if let Some(max) = bid.max_amount {
            body["max_amount"] = json!(max);
        }
        // The bid's id is its idempotency key: sending it again cannot place it twice.
        let response = send_repeatable(
            self.http
                .post(self.bids_url(&format!("/lots/{}/bids", bid.lot_id)))
                .bearer_auth(token)
                .header("idempotency-key", &bid.id)
                .json(&body)
                .timeout(self.config.timeout),
        )
        .await
        .map_err(Self::unreachable)?;
        let status = response.status();
        let replayed = response.headers().contains_key("idempotent-replayed");
        if status.is_server_error() {
            return Err(UpstreamError::Status {
                service: "bids",
                status,
            });
        }
        let value: Value = response.json().await.unwrap_or(Value::Null);
        Ok(if status.is_success() {
            BidOutcome::Placed {
                status: status.as_u16(),
                result: value,
                replayed,
            }
        } else {
            BidOutcome::Refused {
                status: status.as_u16(),
                problem: value,
            }
        })
    }

    /// Forwards a browser's REST call to `target` (a route of the allowlist), as `client`.
    pub async fn forward(&self, target: &Target, client: IpAddr, request: Request) -> Response {
        let service = target.upstream.name();
        let base = match target.upstream {
            Upstream::Lots => &self.config.lots,
            Upstream::Bids => &self.config.bids,
            Upstream::Wallets => &self.config.wallets,
            Upstream::Notifier => match &self.config.notifier {
                Some(notifier) => notifier,
                None => return Problem::not_found("route").into_response(),
            },
        };
        let mut url = format!("{}{}", base.as_str().trim_end_matches('/'), target.path);
        if let Some(query) = request.uri().query() {
            url.push('?');
            url.push_str(query);
        }
        let uploading = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("multipart/"));
        let timeout = if uploading {
            self.config.timeout * 4
        } else {
            self.config.timeout
        };
        let (parts, body) = request.into_parts();
        let mut upstream = self
            .http
            .request(parts.method, url)
            .timeout(timeout)
            .headers(forwarded(&parts.headers, &REQUEST_HEADERS))
            .header("x-forwarded-for", client.to_string())
            .body(reqwest::Body::wrap_stream(body.into_data_stream()));
        if let Some(length) = parts.headers.get(header::CONTENT_LENGTH) {
            upstream = upstream.header(header::CONTENT_LENGTH, length);
        }
        match upstream.send().await {
            Ok(answer) => {
                let status = answer.status();
                let headers = forwarded(answer.headers(), &RESPONSE_HEADERS);
                let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
                *response.status_mut() = status;
                response.headers_mut().extend(headers);
                response
            }
            Err(error) => {
                tracing::warn!(service, error = %gavel_common::error_chain(&error), "forwarding failed");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    format!("{service} cannot be reached; try again shortly"),
                )
                .into_response()
            }
        }
    }
}

const REQUEST_HEADERS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("x-request-id"),
];

const RESPONSE_HEADERS: [HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    header::LOCATION,
    header::X_CONTENT_TYPE_OPTIONS,
    header::CONTENT_SECURITY_POLICY,
    header::CONTENT_DISPOSITION,
    header::WWW_AUTHENTICATE,
    HeaderName::from_static("cross-origin-resource-policy"),
    HeaderName::from_static("idempotent-replayed"),
];

fn forwarded(headers: &HeaderMap, names: &[HeaderName]) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in names {
        for value in headers.get_all(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// What the forwarding handler needs.
#[derive(Debug, Clone)]
pub struct Forwarding {
    pub upstreams: Upstreams,
    pub edge: Edge,
}

/// The handler of `/api/{*rest}`: the allowlist, the per-address limits, then the service.
pub async fn forward(State(forwarding): State<Forwarding>, request: Request) -> Response {
    let target = match routes::resolve(request.method(), request.uri().path()) {
        Ok(target) => target,
        Err(Refused::Malformed) => {
            return Problem::invalid(
                "path",
                "dot segments, encoded separators and empty segments are not allowed",
            )
            .into_response();
        }
        Err(Refused::NotFound) => return Problem::not_found("route").into_response(),
        Err(Refused::MethodNotAllowed) => {
            return Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This resource does not take that method",
            )
            .into_response();
        }
    };
    let (mut parts, body) = request.into_parts();
    let client = forwarding
        .edge
        .client(gavel_common::listener::peer(&parts), &parts.headers);
    if let Err(problem) = forwarding.edge.admit(target.class, client).await {
        return problem.into_response();
    }
    parts.extensions.clear();
    forwarding
        .upstreams
        .forward(&target, client, Request::from_parts(parts, body))
        .await
}
