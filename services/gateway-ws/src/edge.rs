//! The edge: who a client is (its address, from the connection or from the trusted proxy in
//! front), and what one address may do — sign in, ask for link codes, open WebSocket
//! connections, watch lots anonymously — before it gets a 429.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use gavel_common::cache::{Cache, WindowLimiter};
use gavel_common::problem::Problem;
use ipnet::IpNet;
use serde::Deserialize;

use crate::routes::Class;

/// The edge's settings (`edge.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// Proxies whose `X-Forwarded-For` is believed (Traefik's pod network, a load balancer). A
    /// request from anywhere else is the client itself; so is one with no such header.
    pub trusted_proxies: Vec<IpNet>,
    /// Nonces plus sign-ins per address per minute.
    pub sign_ins_per_minute: u32,
    /// Telegram link codes per address per minute.
    pub link_codes_per_minute: u32,
    /// New WebSocket connections per address per minute.
    pub connections_per_minute: u32,
    /// Lots one address may watch anonymously at once, across its connections (per replica).
    pub anonymous_subscriptions: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            sign_ins_per_minute: 30,
            link_codes_per_minute: 10,
            connections_per_minute: 60,
            anonymous_subscriptions: 256,
        }
    }
}

/// The address a request comes from: the TCP peer, or — when the peer is a trusted proxy — the
/// last address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_address(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |peer| peer.ip());
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|hop| !is_trusted(hop))
        .unwrap_or(peer)
}

/// The per-address limits, shared by every replica through Redis.
#[derive(Clone, Debug)]
pub struct Edge {
    pub config: EdgeConfig,
    sign_ins: WindowLimiter,
    link_codes: WindowLimiter,
    connections: WindowLimiter,
    anonymous: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Edge {
    pub fn new(config: EdgeConfig, cache: Cache) -> Self {
        Self {
            sign_ins: WindowLimiter::new(
                cache.clone(),
                "sign-in",
                config.sign_ins_per_minute,
                MINUTE,
            ),
            link_codes: WindowLimiter::new(
                cache.clone(),
                "link-code",
                config.link_codes_per_minute,
                MINUTE,
            ),
            connections: WindowLimiter::new(
                cache,
                "ws-connect",
                config.connections_per_minute,
                MINUTE,
            ),
            anonymous: Arc::default(),
            config,
        }
    }

    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        client_address(peer, headers, &self.config.trusted_proxies)
    }

    /// Counts a forwarded request of `class` from `client`; a 429 problem once over the limit.
    pub async fn admit(&self, class: Class, client: IpAddr) -> Result<(), Problem> {
        let limiter = match class {
            Class::Plain => return Ok(()),
            Class::SignIn => &self.sign_ins,
            Class::LinkCode => &self.link_codes,
        };
        self.count(limiter, client).await
    }

    /// Counts a new WebSocket connection from `client`.
    pub async fn admit_connection(&self, client: IpAddr) -> Result<(), Problem> {
        self.count(&self.connections, client).await
    }

    async fn count(&self, limiter: &WindowLimiter, client: IpAddr) -> Result<(), Problem> {
        match limiter.allow(&client.to_string()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(too_many()),
            // The limits protect; they must not take the site down with Redis.
            Err(error) => {
                tracing::warn!(%error, "rate limit unavailable; letting the request through");
                Ok(())
            }
        }
    }

    /// Takes one anonymous watching slot of `client`; `None` when it has none left. The slot is
    /// given back when the returned guard drops.
    pub fn watch_anonymously(&self, client: IpAddr) -> Option<AnonymousSlot> {
        let mut counts = self
            .anonymous
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(client).or_default();
        if *count >= self.config.anonymous_subscriptions {
            return None;
        }
        *count += 1;
        Some(AnonymousSlot {
            counts: self.anonymous.clone(),
            client,
        })
    }
}

/// One anonymous subscription of one address.
#[derive(Debug)]
pub struct AnonymousSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    client: IpAddr,
}

impl Drop for AnonymousSlot {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

pub fn too_many() -> Problem {
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many requests from your address; wait a minute",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            forwarded.parse().expect("a header value"),
        );
        headers
    }

    #[test]
    fn the_forwarded_address_counts_only_behind_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.42.0.0/16".parse().expect("a network")];
        let proxy = Some(SocketAddr::from(([10, 42, 0, 7], 4000)));
        let stranger = Some(SocketAddr::from(([203, 0, 113, 9], 4000)));
        let spoofed = headers("198.51.100.1, 203.0.113.50, 10.42.1.1");
        assert_eq!(
            client_address(proxy, &spoofed, &trusted),
            "203.0.113.50".parse::<IpAddr>().expect("an address"),
            "the last hop before the trusted proxies"
        );
        assert_eq!(
            client_address(stranger, &spoofed, &trusted),
            "203.0.113.9".parse::<IpAddr>().expect("an address"),
            "a client cannot name itself"
        );
        assert_eq!(
            client_address(proxy, &HeaderMap::new(), &trusted),
            "10.42.0.7".parse::<IpAddr>().expect("an address")
        );
    }
}
