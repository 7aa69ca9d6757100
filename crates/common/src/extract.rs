//! Extractors whose rejections are [`Problem`]s naming the field at fault, instead of axum's
//! plain-text defaults.

use axum::extract::{FromRequest, Request};
use axum::http::header;
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

    #[test]
    fn malformed_json_is_reported_against_the_body() {
        let problem = parse::<Lot>(b"{").expect_err("truncated JSON");
        assert_eq!(problem.to_json()["field"], "body");
    }
}
