//! A peer that closes a kept-alive connection as the next request arrives on it, before
//! answering: what a client sees when it sends a request just as a server closes a connection
//! that was idle for too long, or stops.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct ClosingPeer {
    pub url: String,
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

/// How the peer ends a connection when the second request arrives on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// After reading the request: the client sees the connection end (FIN).
    Cleanly,
    /// Before reading it: with its bytes unread the kernel resets the connection (RST).
    WithUnreadRequest,
}

impl ClosingPeer {
    /// Answers the first request on each connection `200 {"ok":true}`, keeps the connection
    /// alive, and closes it without an answer when a second request arrives on it.
    pub async fn start() -> Self {
        Self::closing(Closing::Cleanly).await
    }

    pub async fn closing(how: Closing) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let heads = Arc::<Mutex<Vec<String>>>::default();
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve(stream, seen.clone(), how));
            }
        });
        Self { url, heads, task }
    }

    /// The head (request line and headers) of every request received, answered or not.
    pub fn heads(&self) -> Vec<String> {
        self.heads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ClosingPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, heads: Arc<Mutex<Vec<String>>>, how: Closing) {
    let mut buffer = Vec::new();
    for answered in [true, false] {
        if !answered && how == Closing::WithUnreadRequest {
            // Wait for the request's first bytes, leave them unread, and close.
            let _ = stream.readable().await;
            heads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push("(unread)".to_owned());
            return;
        }
        let Some(head) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        heads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(head);
        if answered {
            let body = r#"{"ok":true}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }
    // Dropping the stream closes the connection with the second request unanswered.
}

/// Reads one request (head and `content-length` body) from `stream`; `None` at the end.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < end + length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    buffer.drain(..end + length);
    Some(head)
}
