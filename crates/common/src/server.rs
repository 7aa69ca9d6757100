//! Running a service: the public listener, the internal listener (service-to-service APIs, for
//! the services that have one), the admin listener (`/healthz`, `/readyz`, `/metrics`) and the
//! background tasks, all supervised together until the shutdown future resolves or one of them
//! stops; then a drain in a fixed order.
//!
//! The caller injects the listeners and the shutdown future: production binds the configured
//! addresses and passes [`signal`], tests bind port 0 and pass whatever future they control.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::BoxError;
use crate::config::{ListenConfig, ShutdownConfig};
use crate::health::Readiness;
use crate::listener::{ConnectionLimits, serve};
use crate::metrics::Metrics;

/// A long-running task of a service (an outbox relay, a consumer). It must return once the
/// service's cancellation token fires; returning earlier counts as a failure and stops the service.
pub type Task = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// The bound listeners of a service, and how each treats its connections.
#[derive(Debug)]
pub struct Listeners {
    pub http: TcpListener,
    pub admin: TcpListener,
    /// The service-to-service API's listener, for services that serve one.
    pub internal: Option<TcpListener>,
    pub http_limits: ConnectionLimits,
    pub internal_limits: ConnectionLimits,
    pub admin_limits: ConnectionLimits,
}

/// Where each listener of a service binds.
#[derive(Debug, Clone, Copy)]
pub struct Addresses<'a> {
    pub http: &'a ListenConfig,
    pub admin: &'a ListenConfig,
    pub internal: Option<&'a ListenConfig>,
}

impl Listeners {
    pub async fn bind(addresses: Addresses<'_>) -> std::io::Result<Self> {
        let internal = match addresses.internal {
            Some(internal) => Some(TcpListener::bind(internal.addr).await?),
            None => None,
        };
        Ok(Self {
            http: TcpListener::bind(addresses.http.addr).await?,
            admin: TcpListener::bind(addresses.admin.addr).await?,
            internal,
            http_limits: ConnectionLimits::of(addresses.http),
            internal_limits: ConnectionLimits::of(addresses.internal.unwrap_or(addresses.http)),
            admin_limits: ConnectionLimits::of(addresses.admin),
        })
    }

    /// Each on an ephemeral loopback port, with the default limits, for tests.
    pub async fn ephemeral() -> std::io::Result<Self> {
        Self::ephemeral_with(&ListenConfig::loopback()).await
    }

    /// Each on an ephemeral loopback port, the public one with `http`'s limits.
    pub async fn ephemeral_with(http: &ListenConfig) -> std::io::Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let defaults = ConnectionLimits::of(&ListenConfig::loopback());
        Ok(Self {
            http: TcpListener::bind(any).await?,
            admin: TcpListener::bind(any).await?,
            internal: Some(TcpListener::bind(any).await?),
            http_limits: ConnectionLimits::of(http),
            internal_limits: defaults.clone(),
            admin_limits: defaults,
        })
    }

    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    pub fn internal_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.internal {
            Some(listener) => listener.local_addr(),
            None => Err(std::io::Error::other("no internal listener")),
        }
    }
}

/// Everything [`run`] needs: the public router and what the admin listener reports.
pub struct Service {
    router: Router,
    internal: Option<Router>,
    metrics: Metrics,
    readiness: Readiness,
    cancel: CancellationToken,
    tasks: Vec<(&'static str, Task)>,
    send_buffer: Option<usize>,
    body_limit: usize,
}

/// The default largest request body a public listener reads (a service that takes uploads
/// raises it for itself).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tasks: Vec<_> = self.tasks.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Service")
            .field("readiness", &self.readiness)
            .field("tasks", &tasks)
            .finish()
    }
}

impl Service {
    pub fn new(router: Router, metrics: Metrics, readiness: Readiness) -> Self {
        Self {
            router,
            internal: None,
            metrics,
            readiness,
            cancel: CancellationToken::new(),
            tasks: Vec::new(),
            send_buffer: None,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// The token background tasks watch; it fires once the public listener has drained.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub fn with_task(
        mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), BoxError>> + Send + 'static,
    ) -> Self {
        self.tasks.push((name, Box::pin(task)));
        self
    }

    /// Serves `router` on the internal listener (service-to-service APIs).
    pub fn with_internal(mut self, router: Router) -> Self {
        self.internal = Some(router);
        self
    }

    /// The largest request body the public and internal listeners read: a larger declared body is
    /// refused at once (413), a larger streamed one is cut off there.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Caps the kernel's send buffer (`SO_SNDBUF`) of every accepted public connection, so a
    /// client that stops reading blocks writes to it after this much instead of several MiB.
    pub fn with_send_buffer(mut self, bytes: Option<usize>) -> Self {
        self.send_buffer = bytes;
        self
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }
}

/// A service could not start: `what` it was doing, and why.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed")]
pub struct StartError {
    pub what: &'static str,
    #[source]
    pub source: BoxError,
}

impl StartError {
    pub fn new(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self {
            what,
            source: source.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("background task `{name}` stopped: {reason}")]
    TaskStopped { name: &'static str, reason: String },
    #[error("{listener} listener failed")]
    Listener {
        listener: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Resolves on SIGTERM (what Kubernetes sends) or ctrl-c.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("ctrl-c received"),
        () = terminate => info!("SIGTERM received"),
    }
}

/// What `main` does once the service is built: bind the configured listeners, say where they are,
/// and run until SIGTERM or ctrl-c.
pub async fn serve_until_signalled(
    service: Service,
    addresses: Addresses<'_>,
    shutdown: &ShutdownConfig,
) -> Result<(), ServeError> {
    let listeners = Listeners::bind(addresses)
        .await
        .map_err(|source| ServeError::Listener {
            listener: "public, internal or admin",
            source,
        })?;
    let (http_addr, admin_addr) = (listeners.http_addr(), listeners.admin_addr());
    if let (Ok(http), Ok(admin)) = (http_addr, admin_addr) {
        match listeners.internal_addr() {
            Ok(internal) => info!(%http, %internal, %admin, "listening"),
            Err(_) => info!(%http, %admin, "listening"),
        }
    }
    run(service, listeners, signal(), shutdown).await
}

/// Serves until `shutdown` resolves or a task or listener stops, then drains:
/// 1. readiness turns false (and stays so for `readiness_grace`, so balancers notice);
/// 2. the public and internal listeners stop accepting and in-flight requests get
///    `drain_deadline` to finish;
/// 3. background tasks are cancelled and awaited (same deadline);
/// 4. the admin listener closes last, so probes see "not ready" until the end.
pub async fn run(
    service: Service,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
    config: &ShutdownConfig,
) -> Result<(), ServeError> {
    let Service {
        router,
        internal,
        metrics,
        readiness,
        cancel,
        tasks: task_list,
        send_buffer,
        body_limit,
    } = service;
    let public = crate::http::instrument(router, metrics.clone(), body_limit);
    let admin = admin_router(metrics.clone(), readiness.clone());

    let http_stop = CancellationToken::new();
    let admin_stop = CancellationToken::new();
    let http_limits = ConnectionLimits {
        send_buffer,
        ..listeners.http_limits
    };
    let mut http = tokio::spawn(serve(
        listeners.http,
        public,
        http_limits,
        http_stop.clone(),
    ));
    // The internal listener drains with the public one; without an internal router it never
    // starts, and a listener bound for it is dropped (closed) here.
    let internal_server = match (internal, listeners.internal) {
        (Some(router), Some(listener)) => {
            let router = crate::http::instrument(router, metrics.clone(), body_limit);
            Some(tokio::spawn(serve(
                listener,
                router,
                listeners.internal_limits,
                http_stop.clone(),
            )))
        }
        _ => None,
    };
    let mut internal_done = internal_server.is_none();
    let mut internal_server =
        internal_server.unwrap_or_else(|| tokio::spawn(std::future::pending()));
    let mut admin_server = tokio::spawn(serve(
        listeners.admin,
        admin,
        listeners.admin_limits,
        admin_stop.clone(),
    ));
    let mut tasks = JoinSet::new();
    for (name, task) in task_list {
        tasks.spawn(async move { (name, task.await) });
    }

    // A JoinHandle must not be polled again once it has completed, hence the two flags.
    let (mut http_done, mut admin_done) = (false, false);
    let mut failure = tokio::select! {
        () = shutdown => None,
        Some(joined) = tasks.join_next() => Some(task_failure(joined)),
        joined = &mut http => {
            http_done = true;
            Some(listener_failure("public", joined))
        }
        joined = &mut internal_server, if !internal_done => {
            internal_done = true;
            Some(listener_failure("internal", joined))
        }
        joined = &mut admin_server => {
            admin_done = true;
            Some(listener_failure("admin", joined))
        }
    };
    if let Some(error) = &failure {
        error!(%error, "stopping the service");
    }
    info!("draining");
    readiness.start_draining();
    if !config.readiness_grace.is_zero() {
        tokio::time::sleep(config.readiness_grace).await;
    }

    http_stop.cancel();
    let drain = async {
        if !http_done {
            let _ = (&mut http).await;
        }
        if !internal_done {
            let _ = (&mut internal_server).await;
        }
    };
    match tokio::time::timeout(config.drain_deadline, drain).await {
        Ok(()) => info!("in-flight requests drained"),
        Err(_) => {
            warn!(deadline = ?config.drain_deadline, "drain deadline passed; dropping in-flight requests");
            http.abort();
            internal_server.abort();
        }
    }

    cancel.cancel();
    let wait_tasks = async {
        while let Some(joined) = tasks.join_next().await {
            let (name, result) = match joined {
                Ok(done) => done,
                Err(error) => ("unknown", Err(error.into())),
            };
            match result {
                Ok(()) => info!(task = name, "task stopped"),
                Err(error) => warn!(task = name, %error, "task stopped with an error"),
            }
        }
    };
    if tokio::time::timeout(config.drain_deadline, wait_tasks)
        .await
        .is_err()
    {
        warn!("background tasks did not stop in time; aborting them");
        tasks.abort_all();
    }

    admin_stop.cancel();
    if !admin_done
        && tokio::time::timeout(config.drain_deadline, &mut admin_server)
            .await
            .is_err()
    {
        admin_server.abort();
    }
    internal_server.abort();
    info!("stopped");
    failure.take().map_or(Ok(()), Err)
}

fn task_failure(
    joined: Result<(&'static str, Result<(), BoxError>), tokio::task::JoinError>,
) -> ServeError {
    match joined {
        Ok((name, Ok(()))) => ServeError::TaskStopped {
            name,
            reason: "returned early".to_owned(),
        },
        Ok((name, Err(error))) => ServeError::TaskStopped {
            name,
            reason: error.to_string(),
        },
        Err(error) => ServeError::TaskStopped {
            name: "unknown",
            reason: error.to_string(),
        },
    }
}

fn listener_failure(
    listener: &'static str,
    joined: Result<std::io::Result<()>, tokio::task::JoinError>,
) -> ServeError {
    let source = match joined {
        Ok(Ok(())) => std::io::Error::other("listener closed unexpectedly"),
        Ok(Err(error)) => error,
        Err(error) => std::io::Error::other(error),
    };
    ServeError::Listener { listener, source }
}

/// `/healthz` (the process is alive), `/readyz` (dependencies reachable and not draining) and
/// `/metrics`. Kept off the public listener so that neither probes nor scrapes are exposed.
pub fn admin_router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(readiness))
        .route("/metrics", get(render_metrics).with_state(metrics))
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let report = readiness.report().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

async fn render_metrics(State(metrics): State<Metrics>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

/// A service running on ephemeral loopback ports (tests, tools that embed a service).
#[derive(Debug)]
pub struct Running {
    /// `http://127.0.0.1:<port>` of the public listener.
    pub base: String,
    /// The internal listener (served only when the service has an internal router).
    pub internal: String,
    pub admin: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
}

impl Running {
    /// Binds loopback ports and runs `service` on this runtime until [`Running::stop`].
    pub async fn start(service: Service, shutdown: ShutdownConfig) -> std::io::Result<Self> {
        Self::start_on(service, Listeners::ephemeral().await?, shutdown).await
    }

    /// Runs `service` on `listeners` (bound by the caller) until [`Running::stop`].
    pub async fn start_on(
        service: Service,
        listeners: Listeners,
        shutdown: ShutdownConfig,
    ) -> std::io::Result<Self> {
        let url = |addr: SocketAddr| format!("http://{addr}");
        let (base, internal, admin) = (
            url(listeners.http_addr()?),
            url(listeners.internal_addr()?),
            url(listeners.admin_addr()?),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            run(
                service,
                listeners,
                async { stopped.await.unwrap_or(()) },
                &shutdown,
            )
            .await
        });
        Ok(Self {
            base,
            internal,
            admin,
            stop: Some(stop),
            done: Some(done),
        })
    }

    /// Drains and stops the service; returns how it stopped.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.done.take() {
            Some(done) => done.await.unwrap_or_else(|error| {
                Err(ServeError::TaskStopped {
                    name: "server",
                    reason: error.to_string(),
                })
            }),
            None => Ok(()),
        }
    }
}
