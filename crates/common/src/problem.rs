//! The one error body of every Gavel HTTP API: RFC 9457 `application/problem+json`.
//!
//! Services keep their own error enums and convert them into a [`Problem`] in one place. A problem
//! always has a machine-readable `code` (also the last segment of `type`), a human `title`, the
//! HTTP `status`, and optionally a `detail`, the offending `field` and further members.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

pub const CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    title: String,
    detail: Option<String>,
    extensions: Map<String, Value>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, title: impl Into<String>) -> Self {
        Self {
            status,
            code,
            title: title.into(),
            detail: None,
            extensions: Map::new(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Names the input field at fault, e.g. `start_price` or `photos[2]`.
    pub fn with_field(self, field: impl Into<String>) -> Self {
        self.with("field", field.into())
    }

    /// Adds a member to the body, e.g. `available` on `insufficient_funds`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// 400 for input that does not parse or validate.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "The request is not valid",
        )
        .with_detail(detail)
        .with_field(field)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication is required",
        )
        .with_detail(detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such {what}"),
        )
    }

    /// An opaque 500; the cause is logged with its whole chain, never sent to the client.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %crate::error_chain(error), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".to_owned(),
            format!("urn:gavel:problem:{}", self.code).into(),
        );
        body.insert("code".to_owned(), self.code.into());
        body.insert("title".to_owned(), self.title.clone().into());
        body.insert("status".to_owned(), self.status.as_u16().into());
        if let Some(detail) = &self.detail {
            body.insert("detail".to_owned(), detail.clone().into());
        }
        for (key, value) in &self.extensions {
            body.insert(key.clone(), value.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.to_json())).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_body_carries_code_field_and_extensions() {
        let body = Problem::new(
            StatusCode::CONFLICT,
            "insufficient_funds",
            "Not enough funds",
        )
        .with("available", "1000")
        .with_field("amount")
        .to_json();
        assert_eq!(body["type"], "urn:gavel:problem:insufficient_funds");
        assert_eq!(body["status"], 409);
        assert_eq!(body["available"], "1000");
        assert_eq!(body["field"], "amount");
    }

    #[test]
    fn an_internal_problem_hides_its_cause() {
        let cause = std::io::Error::other("password=hunter2");
        let body = Problem::internal(&cause).to_json();
        assert!(!body.to_string().contains("hunter2"));
        assert_eq!(body["status"], 500);
    }
}
