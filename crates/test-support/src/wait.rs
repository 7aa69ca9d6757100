//! Awaiting a condition with a deadline. The condition is re-checked every few milliseconds; the
//! test fails with `what` if the deadline passes first.

use std::future::Future;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

/// Waits until `condition()` holds; panics naming `what` after `deadline`.
pub async fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    wait_until_async(what, deadline, || std::future::ready(condition())).await;
}

/// Like [`wait_until`], for a condition that must itself await (a query, an HTTP call).
pub async fn wait_until_async<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
