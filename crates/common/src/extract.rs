//! Extractors whose rejections are [`Problem`]s naming the field at fault, instead of axum's
//! plain-text defaults.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Like `axum::Json`, but a body that fails to deserialize is a 400 problem whose `field` is the
/// path to the offending value (`rules.start_price`, `photos[2]`), and a wrong content type is 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                let essence = value.split(';').next().unwrap_or_default().trim();
                essence == "application/json" || essence.ends_with("+json")
            });
        if !is_json {
            return Err(Problem::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Expected a JSON body",
            )
            .with_detail("send `Content-Type: application/json`"));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                Problem::new(
                    rejection.status(),
                    "unreadable_body",
                    "The request body could not be read",
                )
                .with_detail(rejection.body_text())
            })?;
        parse(&bytes).map(Json)
    }
}

/// Like `axum::extract::Query`, but a query string that does not deserialize is a 400 problem
/// naming the parameter at fault.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Deserializes a query string, reporting the parameter of the first bad value.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, Problem> {
    let deserializer =
        serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        // An unknown parameter is reported at the root; its name is in the message.
        let field = if path == "." {
            message
                .split('`')
                .nth(1)
                .map_or_else(|| "query".to_owned(), str::to_owned)
        } else {
            path
        };
        Problem::invalid(field, message)
    })
}

/// Deserializes JSON bytes, reporting the path of the first bad value.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        // serde_path_to_error writes `.` for the root and `?` where JSON broke off before a key.
        let field = if path == "." || path.starts_with('?') {
            "body".to_owned()
        } else {
            path
        };
        Problem::invalid(field, error.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Lot {
        title: String,
        rules: Rules,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Rules {
        start_price: u64,
    }

    #[test]
    fn a_bad_nested_value_is_reported_by_its_path() {
        let problem = parse::<Lot>(br#"{"title":"x","rules":{"start_price":"ten"}}"#)
            .expect_err("a string is not a u64");
        let body = problem.to_json();
        assert_eq!(body["field"], "rules.start_price");
        assert_eq!(problem.status(), 400);
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
    }

    #[test]
    fn a_bad_query_parameter_is_named() {
        let problem = parse_query::<Page>("limit=many").expect_err("not a number");
        assert_eq!(problem.to_json()["field"], "limit");
        let problem = parse_query::<Page>("limti=5").expect_err("unknown");
        assert_eq!(problem.to_json()["field"], "limti");
        assert_eq!(problem.status(), 400);
        assert!(parse_query::<Page>("limit=5").is_ok());
    }

    #[test]
    fn malformed_json_is_reported_against_the_body() {
        let problem = parse::<Lot>(b"{").expect_err("truncated JSON");
        assert_eq!(problem.to_json()["field"], "body");
    }
}
