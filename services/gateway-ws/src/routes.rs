//! The public REST routes the gateway forwards, as an explicit allowlist. Nothing else under
//! `/api` reaches a service: not by prefix, not by a path that a service would normalise into
//! another one. A path with a dot segment (`.`, `..`, `%2e%2e`), an encoded slash or backslash,
//! an empty segment or a control character is refused before any matching.
//!
//! Internal APIs are not even candidates: they listen on ports the gateway has no address for.

use axum::http::Method;

/// A service behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Lots,
    Bids,
    Wallets,
    Notifier,
}

impl Upstream {
    pub fn name(self) -> &'static str {
        match self {
            Self::Lots => "lots",
            Self::Bids => "bids",
            Self::Wallets => "wallets",
            Self::Notifier => "notifier",
        }
    }
}

/// What a path segment may be.
#[derive(Debug, Clone, Copy)]
enum Segment {
    Literal(&'static str),
    /// A UUID (lot, photo).
    Id,
    /// An Ethereum address (`0x` and 40 hex digits).
    Address,
}

/// Which rate-limit class a route belongs to (per client address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Plain,
    SignIn,
    LinkCode,
}

struct Route {
    methods: &'static [Method],
    /// The path after `/api`, as segments.
    pattern: &'static [Segment],
    upstream: Upstream,
    /// Segments of the gateway path dropped in front of the upstream path (`auction` for bids).
    strip: usize,
    class: Class,
}

use Segment::{Address, Id, Literal as L};

const GET: &[Method] = &[Method::GET];
const POST: &[Method] = &[Method::POST];

const ROUTES: &[Route] = &[
    route(&[Method::GET, Method::POST], &[L("lots")], Upstream::Lots),
    route(
        &[Method::GET, Method::PUT, Method::DELETE],
        &[L("lots"), Id],
        Upstream::Lots,
    ),
    route(POST, &[L("lots"), Id, L("photos")], Upstream::Lots),
    route(
        &[Method::GET, Method::DELETE],
        &[L("lots"), Id, L("photos"), Id],
        Upstream::Lots,
    ),
    Route {
        class: Class::SignIn,
        ..route(GET, &[L("auth"), L("nonce")], Upstream::Wallets)
    },
    Route {
        class: Class::SignIn,
        ..route(POST, &[L("auth"), L("sign-in")], Upstream::Wallets)
    },
    route(
        &[Method::GET, Method::POST],
        &[L("wallets")],
        Upstream::Wallets,
    ),
    route(
        &[Method::DELETE],
        &[L("wallets"), Address],
        Upstream::Wallets,
    ),
    route(
        GET,
        &[L("wallets"), Address, L("balance")],
        Upstream::Wallets,
    ),
    route(
        &[Method::GET, Method::POST],
        &[L("payments"), Id],
        Upstream::Wallets,
    ),
    Route {
        strip: 1,
        ..route(GET, &[L("auction"), L("lots"), Id], Upstream::Bids)
    },
    Route {
        strip: 1,
        ..route(
            &[Method::GET, Method::POST],
            &[L("auction"), L("lots"), Id, L("bids")],
            Upstream::Bids,
        )
    },
    Route {
        strip: 1,
        ..route(
            GET,
            &[L("auction"), L("lots"), Id, L("events")],
            Upstream::Bids,
        )
    },
    Route {
        strip: 1,
        ..route(
            GET,
            &[L("auction"), L("bidders"), L("me"), L("lots")],
            Upstream::Bids,
        )
    },
    Route {
        class: Class::LinkCode,
        ..route(POST, &[L("link-codes")], Upstream::Notifier)
    },
];

const fn route(
    methods: &'static [Method],
    pattern: &'static [Segment],
    upstream: Upstream,
) -> Route {
    Route {
        methods,
        pattern,
        upstream,
        strip: 0,
        class: Class::Plain,
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub upstream: Upstream,
    /// The path on the upstream service, rebuilt from the checked segments.
    pub path: String,
    pub class: Class,
}

/// Why a path is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Dot segments, encoded separators, empty segments, control characters.
    Malformed,
    NotFound,
    MethodNotAllowed,
}

/// Matches `path` (the whole request path, `/api/...`) and `method` against the allowlist.
pub fn resolve(method: &Method, path: &str) -> Result<Target, Refused> {
    let rest = path.strip_prefix("/api/").ok_or(Refused::NotFound)?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|segment| !well_formed(segment)) {
        return Err(Refused::Malformed);
    }
    let mut path_matched = false;
    for route in ROUTES {
        if !matches(route.pattern, &segments) {
            continue;
        }
        path_matched = true;
        if route.methods.contains(method) {
            return Ok(Target {
                upstream: route.upstream,
                path: format!("/{}", segments[route.strip..].join("/")),
                class: route.class,
            });
        }
    }
    Err(if path_matched {
        Refused::MethodNotAllowed
    } else {
        Refused::NotFound
    })
}

/// A segment is plain: not empty, not a dot segment, and free of percent-encoding, backslashes
/// and control characters (no public route needs any of them in its path).
fn well_formed(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && !segment
            .bytes()
            .any(|byte| byte == b'%' || byte == b'\\' || byte.is_ascii_control())
}

fn matches(pattern: &[Segment], segments: &[&str]) -> bool {
    pattern.len() == segments.len()
        && pattern
            .iter()
            .zip(segments)
            .all(|(expected, actual)| match expected {
                Segment::Literal(literal) => literal == actual,
                Segment::Id => uuid::Uuid::try_parse(actual).is_ok(),
                Segment::Address => {
                    actual.len() == 42
                        && actual.starts_with("0x")
                        && actual[2..].bytes().all(|byte| byte.is_ascii_hexdigit())
                }
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOT: &str = "0192b6a4-8c3b-7c2e-9a51-5d4b1f0e2a77";

    #[test]
    fn public_routes_are_forwarded_to_their_service_with_the_path_rebuilt() {
        let target =
            resolve(&Method::GET, &format!("/api/auction/lots/{LOT}/events")).expect("a route");
        assert_eq!(
            (target.upstream, target.path.as_str()),
            (Upstream::Bids, format!("/lots/{LOT}/events").as_str())
        );
        let target = resolve(&Method::GET, "/api/auction/bidders/me/lots").expect("a route");
        assert_eq!(
            (target.upstream, target.path.as_str()),
            (Upstream::Bids, "/bidders/me/lots")
        );
        let target = resolve(&Method::POST, "/api/auth/sign-in").expect("a route");

        assert_eq!(
            (target.upstream, target.class),
            (Upstream::Wallets, Class::SignIn)
        );
        assert_eq!(
            resolve(&Method::GET, &format!("/api/lots/{LOT}/photos/{LOT}")).map(|t| t.upstream),
            Ok(Upstream::Lots)
        );
    }

    #[test]
    fn tricks_to_reach_internal_paths_are_refused() {
        for path in [
            "/api/wallets/../internal/holds",
            "/api/wallets/%2e%2e/internal/holds",
            "/api/wallets/%2E%2E/internal/holds",
            "/api/lots/./x",
            "/api/lots%2f..%2finternal",
            "/api/lots/..%5cinternal",
            "/api/lots//x",
        ] {
            assert_eq!(
                resolve(&Method::GET, path),
                Err(Refused::Malformed),
                "{path}"
            );
        }
        for path in [
            "/api/internal/holds",
            "/api/wallets/x/internal",
            "/api/auction/internal/lots/x",
        ] {
            assert_eq!(
                resolve(&Method::GET, path),
                Err(Refused::NotFound),
                "{path}"
            );
        }
        assert_eq!(
            resolve(&Method::PATCH, "/api/lots"),
            Err(Refused::MethodNotAllowed)
        );
        assert_eq!(
            resolve(&Method::GET, "/api/lots/not-a-uuid"),
            Err(Refused::NotFound)
        );
    }
}
