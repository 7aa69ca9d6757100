//! One RabbitMQ connection per process, re-opened on demand after the broker goes away.
//!
//! Relays and consumers ask for a fresh [`lapin::Channel`] whenever theirs fails; the first caller
//! after a loss reconnects, the others wait for it. Backoff between attempts is the caller's
//! business (see [`Backoff`]), so that each loop can also watch its cancellation token.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;

#[derive(Clone)]
pub struct Broker {
    config: Arc<BrokerConfig>,
    name: String,
    connection: Arc<Mutex<Option<Connection>>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.config.url)
            .field("name", &self.name)
            .finish()
    }
}

impl Broker {
    /// `name` shows up as the connection name in RabbitMQ's management UI.
    pub fn new(config: BrokerConfig, name: impl Into<String>) -> Self {
        Self {
            config: Arc::new(config),
            name: name.into(),
            connection: Arc::default(),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// A new channel on the shared connection, reconnecting first if the connection is gone.
    pub async fn channel(&self) -> Result<Channel, lapin::Error> {
        let mut connection = self.connection.lock().await;
        if let Some(open) = connection.as_ref().filter(|open| open.status().connected()) {
            match open.create_channel().await {
                Ok(channel) => return Ok(channel),
                Err(error) => tracing::warn!(%error, "cannot open a channel; reconnecting"),
            }
        }
        let properties =
            ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let fresh = Connection::connect(self.config.url.expose().as_str(), properties).await?;
        tracing::info!(broker = %self.config.url, "connected to RabbitMQ");
        let channel = fresh.create_channel().await?;
        *connection = Some(fresh);
        Ok(channel)
    }

    /// [`Broker::ping`] as a readiness check (`Readiness::with_check("rabbitmq", broker.check())`).
    pub fn check(
        &self,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
    + Send
    + Sync
    + 'static {
        let broker = self.clone();
        move || Box::pin(broker.clone().ping())
    }

    /// The readiness check: connected, or able to connect now.
    pub async fn ping(self) -> Result<(), String> {
        let channel = self.channel().await.map_err(|error| error.to_string())?;
        // Closing a probe channel is best effort; the broker drops it with the connection anyway.
        let _ = channel.close(200, "readiness probe".into()).await;
        Ok(())
    }
}

/// Exponential backoff between reconnection attempts, capped, and cut short by cancellation.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Self {
            next: Duration::from_millis(100),
            max,
        }
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }

    /// Waits out the current delay; returns `false` when cancelled meanwhile.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}
