//! A fresh RabbitMQ vhost per test, created and deleted through the management API, which also
//! lets a test force-close every connection of its vhost to simulate the broker going away.

use std::time::Duration;

use gavel_common::config::SecretUrl;
use gavel_messaging::BrokerConfig;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::Value;

use crate::env_or;

#[derive(Debug)]
pub struct TestVhost {
    pub name: String,
    api: url::Url,
    amqp: url::Url,
    http: reqwest::Client,
}

impl TestVhost {
    pub async fn create() -> Self {
        let api = url::Url::parse(&env_or(
            "GAVEL_TEST_RABBITMQ_API",
            "http://guest:guest@127.0.0.1:15672/api",
        ))
        .expect("GAVEL_TEST_RABBITMQ_API is a URL");
        let amqp = url::Url::parse(&env_or(
            "GAVEL_TEST_AMQP_URL",
            "amqp://guest:guest@127.0.0.1:5672",
        ))
        .expect("GAVEL_TEST_AMQP_URL is a URL");
        let name = format!("gavel-test-{}", uuid::Uuid::new_v4().simple());
        let vhost = Self {
            name,
            api,
            amqp,
            http: reqwest::Client::new(),
        };
        vhost
            .call(
                reqwest::Method::PUT,
                &format!("vhosts/{}", encode(&vhost.name)),
                None,
            )
            .await;
        let user = vhost.amqp.username().to_owned();
        vhost
            .call(
                reqwest::Method::PUT,
                &format!("permissions/{}/{}", encode(&vhost.name), encode(&user)),
                Some(serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"})),
            )
            .await;
        vhost
    }

    /// The AMQP URL of this vhost.
    pub fn url(&self) -> String {
        let mut url = self.amqp.clone();
        url.set_path(&self.name);
        url.to_string()
    }

    /// Broker settings for this vhost, with retry delays short enough for tests.
    pub fn config(&self) -> BrokerConfig {
        let mut config = BrokerConfig::new(SecretUrl::parse(&self.url()).expect("a valid URL"));
        config.retry_delays = vec![
            Duration::from_millis(20),
            Duration::from_millis(40),
            Duration::from_millis(80),
        ];
        config.reconnect_max_backoff = Duration::from_millis(500);
        config.relay_poll_interval = Duration::from_millis(200);
        config
    }

    /// Force-closes every client connection to this vhost; returns how many there were.
    pub async fn close_connections(&self) -> usize {
        let listed = self
            .call(
                reqwest::Method::GET,
                &format!("vhosts/{}/connections", encode(&self.name)),
                None,
            )
            .await;
        let names: Vec<String> = listed
            .as_array()
            .map(|connections| {
                connections
                    .iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for name in &names {
            self.call(
                reqwest::Method::DELETE,
                &format!("connections/{}", encode(name)),
                None,
            )
            .await;
        }
        names.len()
    }

    /// Messages ready in `queue`, read over AMQP (the management API's counts lag).
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        let connection =
            lapin::Connection::connect(&self.url(), lapin::ConnectionProperties::default())
                .await
                .expect("can connect to the test vhost");
        let channel = connection
            .create_channel()
            .await
            .expect("can open a channel");
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("the queue exists");
        let _ = connection.close(200, "done".into()).await;
        declared.message_count()
    }

    /// Waits until `queue` has a consumer. A consumer subscribes only after its queue is declared
    /// and bound, so from then on a published event cannot miss it.
    pub async fn wait_for_consumer(&self, queue: &str) {
        crate::wait_until_async(
            &format!("a consumer on {queue}"),
            Duration::from_secs(30),
            || async {
                let Ok(connection) =
                    lapin::Connection::connect(&self.url(), lapin::ConnectionProperties::default())
                        .await
                else {
                    return false;
                };
                let Ok(channel) = connection.create_channel().await else {
                    return false;
                };
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                let consumers = channel
                    .queue_declare(queue.into(), passive, FieldTable::default())
                    .await
                    .map(|queue| queue.consumer_count());
                let _ = connection.close(200, "done".into()).await;
                consumers.is_ok_and(|count| count > 0)
            },
        )
        .await;
    }

    /// Publishes `envelope` to the events exchange, as its producer would, once `consumer` is
    /// listening; waits for the broker's confirm.
    pub async fn publish(&self, envelope: &gavel_messaging::Envelope, consumer: &str) {
        self.wait_for_consumer(consumer).await;
        let connection =
            lapin::Connection::connect(&self.url(), lapin::ConnectionProperties::default())
                .await
                .expect("can connect to the test vhost");
        let channel = connection
            .create_channel()
            .await
            .expect("can open a channel");
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        let body = serde_json::to_vec(envelope).expect("an envelope serializes");
        let confirmation = channel
            .basic_publish(
                "gavel.events".into(),
                envelope.event_type.as_str().into(),
                Default::default(),
                &body,
                Default::default(),
            )
            .await
            .expect("published")
            .await
            .expect("confirmed");
        assert!(confirmation.is_ack(), "the broker refused the event");
        let _ = connection.close(200, "done".into()).await;
    }

    /// Takes one message from `queue`, if any, acknowledging it.
    pub async fn get(&self, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        let connection =
            lapin::Connection::connect(&self.url(), lapin::ConnectionProperties::default())
                .await
                .expect("can connect to the test vhost");
        let channel = connection
            .create_channel()
            .await
            .expect("can open a channel");
        let message = channel
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("the queue exists");
        let _ = connection.close(200, "done".into()).await;
        message
    }

    /// The type RabbitMQ reports for `queue` (`classic`, `quorum`), from the management API.
    pub async fn queue_type(&self, queue: &str) -> String {
        let info = self
            .call(
                reqwest::Method::GET,
                &format!("queues/{}/{}", encode(&self.name), encode(queue)),
                None,
            )
            .await;
        info["type"].as_str().unwrap_or("missing").to_owned()
    }

    /// Calls the management API at `path` (segments already percent-encoded).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (url, user, password) = api_call(&self.api, path);
        let mut request = self
            .http
            .request(method.clone(), url.as_str())
            .basic_auth(user, Some(password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|error| {
            panic!("RabbitMQ management API unreachable at {url}: {error} (run `bash .ci/stack`)")
        });
        let status = response.status();
        assert!(
            status.is_success() || status == reqwest::StatusCode::NOT_FOUND,
            "{method} {url}: {status}"
        );
        response.json().await.unwrap_or(Value::Null)
    }
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The URL of an API path without credentials, and the credentials for basic auth.
fn api_call(api: &url::Url, path: &str) -> (String, String, String) {
    let mut base = api.clone();
    let user = base.username().to_owned();
    let password = base.password().unwrap_or_default().to_owned();
    let _ = base.set_username("");
    let _ = base.set_password(None);
    (
        format!("{}/{path}", base.as_str().trim_end_matches('/')),
        user,
        password,
    )
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let (url, user, password) = api_call(&self.api, &format!("vhosts/{}", encode(&self.name)));
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                reqwest::Client::new()
                    .delete(url)
                    .basic_auth(user, Some(password))
                    .send()
                    .await
                    .ok()
            })
        })
        .join();
    }
}
