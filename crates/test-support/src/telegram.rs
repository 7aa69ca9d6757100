//! A local Bot API server that speaks Telegram's HTTP protocol as teloxide uses it: `POST
//! /bot<token>/<method>` (any case) with JSON or multipart bodies, answers `{"ok":true,
//! "result":…}` or `{"ok":false,"error_code":…,"description":…,"parameters":…}`. It records every
//! send with the time it arrived (and the bytes of an uploaded photo), long-polls `getUpdates`,
//! records `setMyCommands` and the `allowed_updates` asked for, and can refuse with 429
//! `retry_after` (a number of sends, or every send in a time window, as flood control does),
//! refuse every photo with 400 (as when Telegram cannot fetch a URL or read a file), answer 403 for
//! chats that blocked the bot, fail with 502 (an outage), or hold a request unanswered (to kill a
//! sender mid-request).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, oneshot};

/// One `sendMessage` / `sendPhoto` request as it arrived.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    pub chat_id: i64,
    pub text: String,
    /// The photo as a file id or URL; `upload:<file name>` for bytes sent with the request.
    pub photo: Option<String>,
    /// The bytes of an uploaded photo.
    pub upload: Option<Vec<u8>>,
    pub at: Instant,
    /// The answer it got: 200, 400, 429, 403 or 502.
    pub status: u16,
    /// The `retry_after` of a 429.
    pub retry_after: Option<u32>,
}

#[derive(Debug, Default)]
struct Fake {
    token: String,
    sends: Mutex<Vec<Sent>>,
    updates: Mutex<VecDeque<Value>>,
    updates_ready: Notify,
    next_update: AtomicU32,
    next_message: AtomicI32,
    blocked: Mutex<HashSet<i64>>,
    throttle: Mutex<(usize, u32)>,
    flood_until: Mutex<Option<Instant>>,
    refuse_photos: std::sync::atomic::AtomicBool,
    next_file: AtomicU32,
    commands: Mutex<Option<Value>>,
    allowed_updates: Mutex<Vec<(String, Value)>>,
    outages: Mutex<usize>,
    hold: Mutex<Option<(usize, oneshot::Sender<()>)>>,
    webhook: Mutex<Option<(String, String)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running fake; stops when dropped.
#[derive(Debug)]
pub struct FakeTelegram {
    /// The API base to configure (`telegram.api_url`).
    pub url: String,
    pub token: String,
    fake: Arc<Fake>,
    _stop: oneshot::Sender<()>,
}

impl FakeTelegram {
    pub async fn start() -> Self {
        let token = format!(
            "{}:test-{}",
            4_000_000 + rand_u32() % 1_000_000,
            uuid::Uuid::new_v4().simple()
        );
        let fake = Arc::new(Fake {
            token: token.clone(),
            next_update: AtomicU32::new(1000),
            next_message: AtomicI32::new(1),
            ..Fake::default()
        });
        let app = Router::new()
            .route("/{bot}/{method}", post(dispatch))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url,
            token,
            fake,
            _stop: stop,
        }
    }

    /// Every send so far (including refused ones), in arrival order.
    pub fn sends(&self) -> Vec<Sent> {
        lock(&self.fake.sends).clone()
    }

    /// The sends Telegram accepted (status 200), in arrival order.
    pub fn delivered(&self) -> Vec<Sent> {
        self.sends()
            .into_iter()
            .filter(|sent| sent.status == 200)
            .collect()
    }

    /// A text message from a user in a private chat, to be returned by `getUpdates`.
    pub fn user_says(&self, chat_id: i64, text: &str) {
        let chat = json!({"id": chat_id, "type": "private", "first_name": "Tester"});
        self.push_message(chat_id, chat, text);
    }

    /// A text message in a group chat (negative id).
    pub fn group_says(&self, chat_id: i64, text: &str) {
        let chat = json!({"id": chat_id, "type": "group", "title": "Test group"});
        self.push_message(chat_id, chat, text);
    }

    fn push_message(&self, chat_id: i64, chat: Value, text: &str) {
        let update = self.update(chat_id, chat, text);
        lock(&self.fake.updates).push_back(update);
        self.fake.updates_ready.notify_waiters();
    }

    /// An update as Telegram would post it to a webhook.
    pub fn update(&self, chat_id: i64, chat: Value, text: &str) -> Value {
        let update_id = self.fake.next_update.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({
            "message_id": self.fake.next_message.fetch_add(1, Ordering::Relaxed),
            "date": chrono::Utc::now().timestamp(),
            "chat": chat,
            "from": {"id": chat_id.unsigned_abs(), "is_bot": false, "first_name": "Tester"},
            "text": text,
        });
        if text.starts_with('/') {
            let length = text.split_whitespace().next().map_or(0, str::len);
            message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": length}]);
        }
        json!({"update_id": update_id, "message": message})
    }

    /// From now on, sends to `chat_id` get 403 "bot was blocked by the user".
    pub fn block(&self, chat_id: i64) {
        lock(&self.fake.blocked).insert(chat_id);
    }

    /// The next `count` sends get 429 with `retry_after` seconds.
    pub fn throttle(&self, count: usize, retry_after: u32) {
        *lock(&self.fake.throttle) = (count, retry_after);
    }

    /// The next `count` sends get 502 Bad Gateway, as when Telegram has an outage.
    pub fn outage(&self, count: usize) {
        *lock(&self.fake.outages) = count;
    }

    /// Every send arriving within `window` from now gets 429 with the seconds left of it (at
    /// least 1) as `retry_after`, as Telegram's flood control answers.
    pub fn flood(&self, window: Duration) {
        *lock(&self.fake.flood_until) = Some(Instant::now() + window);
    }

    /// From now on, every `sendPhoto` gets 400, as when Telegram cannot fetch a photo's URL.
    pub fn refuse_photos(&self) {
        self.fake
            .refuse_photos
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The commands registered by `setMyCommands`, if any.
    pub fn commands(&self) -> Option<Value> {
        lock(&self.fake.commands).clone()
    }

    /// The `allowed_updates` of each `getUpdates` or `setWebhook` that gave them: (method, value).
    pub fn allowed_updates(&self) -> Vec<(String, Value)> {
        lock(&self.fake.allowed_updates).clone()
    }

    /// The `nth` accepted send (1-based) is recorded as delivered but never answered; the
    /// receiver fires when it arrives.
    pub fn hold(&self, nth: usize) -> oneshot::Receiver<()> {
        let (signal, arrived) = oneshot::channel();
        *lock(&self.fake.hold) = Some((nth, signal));
        arrived
    }

    /// The webhook registered by `setWebhook`: (url, secret token).
    pub fn webhook(&self) -> Option<(String, String)> {
        lock(&self.fake.webhook).clone()
    }
}

fn rand_u32() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32
}

fn ok(result: Value) -> Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

fn refused(status: StatusCode, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
    if let Some(parameters) = parameters {
        body["parameters"] = parameters;
    }
    (status, axum::Json(body)).into_response()
}

/// The request's parameters, from a JSON or a multipart body.
async fn parameters(request: Request) -> Map<String, Value> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("multipart/"));
    if multipart {
        let mut fields = Map::new();
        if let Ok(mut form) = Multipart::from_request(request, &()).await {
            while let Ok(Some(field)) = form.next_field().await {
                let name = field.name().unwrap_or_default().to_owned();
                // teloxide sends a file as a part with a file name, named in the field
                // `attach://<part>`; the part's bytes are kept as an array of numbers.
                if let Some(file_name) = field.file_name().map(str::to_owned) {
                    let bytes = field.bytes().await.unwrap_or_default();
                    fields.insert(
                        format!("file:{name}"),
                        json!({"file_name": file_name, "bytes": bytes.to_vec()}),
                    );
                } else {
                    let text = field.text().await.unwrap_or_default();
                    fields.insert(name, Value::String(text));
                }
            }
        }
        return fields;
    }
    let body = Bytes::from_request(request, &()).await.unwrap_or_default();
    match serde_json::from_slice(&body) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    }
}

fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

async fn dispatch(
    State(fake): State<Arc<Fake>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    if bot != format!("bot{}", fake.token) {
        return refused(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    }
    let method = method.to_lowercase();
    let parameters = parameters(request).await;
    match method.as_str() {
        "getme" => ok(json!({
            "id": 4_242_424_242u64, "is_bot": true, "first_name": "Gavel", "username": "gavel_test_bot",
            "can_join_groups": true, "can_read_all_group_messages": false,
            "supports_inline_queries": false, "has_main_web_app": false,
        })),
        "sendmessage" | "sendphoto" => send(&fake, &method, &parameters).await,
        "setmycommands" => {
            *lock(&fake.commands) = parameters.get("commands").map(|commands| match commands {
                // A multipart body carries JSON as text.
                Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
                other => other.clone(),
            });
            ok(json!(true))
        }
        "getupdates" => {
            record_allowed_updates(&fake, "getUpdates", &parameters);
            let offset = integer(parameters.get("offset")).unwrap_or(0);
            let timeout = integer(parameters.get("timeout")).unwrap_or(0).clamp(0, 50);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout as u64);
            loop {
                let waiting = fake.updates_ready.notified();
                {
                    let mut updates = lock(&fake.updates);
                    // Confirmed updates (below the offset) are forgotten, as Telegram does.
                    while updates
                        .front()
                        .is_some_and(|update| update["update_id"].as_i64().unwrap_or(0) < offset)
                    {
                        updates.pop_front();
                    }
                    if !updates.is_empty() || tokio::time::Instant::now() >= deadline {
                        return ok(Value::Array(updates.iter().cloned().collect()));
                    }
                }
                let _ = tokio::time::timeout_at(deadline, waiting).await;
            }
        }
        "setwebhook" => {
            record_allowed_updates(&fake, "setWebhook", &parameters);
            let url = parameters
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let secret = parameters
                .get("secret_token")
                .and_then(Value::as_str)
                .unwrap_or_default();
            *lock(&fake.webhook) = Some((url.to_owned(), secret.to_owned()));
            ok(json!(true))
        }
        "deletewebhook" => {
            *lock(&fake.webhook) = None;
            ok(json!(true))
        }
        _ => refused(StatusCode::NOT_FOUND, "Not Found", None),
    }
}

fn record_allowed_updates(fake: &Fake, method: &str, parameters: &Map<String, Value>) {
    if let Some(allowed) = parameters.get("allowed_updates") {
        let allowed = match allowed {
            Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            other => other.clone(),
        };
        lock(&fake.allowed_updates).push((method.to_owned(), allowed));
    }
}

/// Records `sent` as refused with 429 and answers as Telegram's flood control does.
fn too_many_requests(fake: &Fake, mut sent: Sent, retry_after: u32) -> Response {
    sent.status = 429;
    sent.retry_after = Some(retry_after);
    lock(&fake.sends).push(sent);
    refused(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("Too Many Requests: retry after {retry_after}"),
        Some(json!({"retry_after": retry_after})),
    )
}

async fn send(fake: &Fake, method: &str, parameters: &Map<String, Value>) -> Response {
    let chat_id = integer(parameters.get("chat_id")).unwrap_or(0);
    let text = parameters
        .get("text")
        .or_else(|| parameters.get("caption"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut photo = parameters
        .get("photo")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut upload = None;
    if let Some(part) = photo
        .as_deref()
        .and_then(|photo| photo.strip_prefix("attach://"))
        && let Some(file) = parameters.get(&format!("file:{part}"))
    {
        upload = Some(
            file["bytes"]
                .as_array()
                .map(|bytes| {
                    bytes
                        .iter()
                        .filter_map(|byte| byte.as_u64().and_then(|byte| u8::try_from(byte).ok()))
                        .collect::<Vec<u8>>()
                })
                .unwrap_or_default(),
        );
        photo = Some(format!(
            "upload:{}",
            file["file_name"].as_str().unwrap_or("")
        ));
    }
    let mut sent = Sent {
        method: method.to_owned(),
        chat_id,
        text: text.clone(),
        photo: photo.clone(),
        upload: upload.clone(),
        at: Instant::now(),
        status: 200,
        retry_after: None,
    };
    let flood_left = lock(&fake.flood_until)
        .and_then(|until| until.checked_duration_since(sent.at))
        .filter(|left| !left.is_zero());
    if let Some(left) = flood_left {
        let retry_after = u32::try_from(left.as_millis().div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1);
        return too_many_requests(fake, sent, retry_after);
    }
    if method == "sendphoto" && fake.refuse_photos.load(Ordering::Relaxed) {
        sent.status = 400;
        lock(&fake.sends).push(sent);
        return refused(
            StatusCode::BAD_REQUEST,
            "Bad Request: wrong file identifier/HTTP URL specified",
            None,
        );
    }
    {
        let mut throttle = lock(&fake.throttle);
        if throttle.0 > 0 {
            throttle.0 -= 1;
            return too_many_requests(fake, sent, throttle.1);
        }
    }
    {
        let mut outages = lock(&fake.outages);
        if *outages > 0 {
            *outages -= 1;
            sent.status = 502;
            lock(&fake.sends).push(sent);
            return refused(StatusCode::BAD_GATEWAY, "Bad Gateway", None);
        }
    }
    if lock(&fake.blocked).contains(&chat_id) {
        sent.status = 403;
        lock(&fake.sends).push(sent);
        return refused(
            StatusCode::FORBIDDEN,
            "Forbidden: bot was blocked by the user",
            None,
        );
    }
    let delivered = {
        let mut sends = lock(&fake.sends);
        sends.push(sent);
        sends.iter().filter(|sent| sent.status == 200).count()
    };
    let held = {
        let mut hold = lock(&fake.hold);
        match hold.take() {
            Some((nth, signal)) if nth == delivered => {
                let _ = signal.send(());
                true
            }
            other => {
                *hold = other;
                false
            }
        }
    };
    if held {
        std::future::pending::<()>().await;
    }
    let chat = if chat_id < 0 {
        json!({"id": chat_id, "type": "group", "title": "Test group"})
    } else {
        json!({"id": chat_id, "type": "private", "first_name": "Tester"})
    };
    let mut message = json!({
        "message_id": fake.next_message.fetch_add(1, Ordering::Relaxed),
        "date": chrono::Utc::now().timestamp(),
        "chat": chat,
        "from": {"id": 4_242_424_242u64, "is_bot": true, "first_name": "Gavel", "username": "gavel_test_bot"},
    });
    if let Some(photo) = &photo {
        // An upload gets a new file id; a file id sent again names the same photo.
        let file_id = if upload.is_some() || photo.starts_with("http") {
            format!("file-{}", fake.next_file.fetch_add(1, Ordering::Relaxed))
        } else {
            photo.clone()
        };
        message["photo"] = json!([{"file_id": file_id, "file_unique_id": format!("u-{file_id}"), "width": 90, "height": 90, "file_size": 1}]);
        message["caption"] = json!(text);
    } else {
        message["text"] = json!(text);
    }
    ok(message)
}
